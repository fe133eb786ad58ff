/**
 * Draws a detection result on its image: semi-transparent masks (one colour per instance), box outlines and
 * "class score" labels kept inside the image. Masks, boxes and label backgrounds are painted into one raw
 * RGBA overlay (a typed array); the label text is an SVG overlay that sharp renders with the system fonts
 * (DejaVu Sans / sans-serif). One sharp composite writes PNG or JPEG.
 *
 * Orientation: a path or encoded bytes are decoded with the EXIF orientation applied (what viewers show), so
 * the detections must be in that image's pixel coordinates: `fasternet detect` runs the model on the
 * auto-oriented pixels for this reason. Raw pixels are drawn on as given.
 */
import { decodeImage, loadSharp } from '../image/decode.ts';
import type { ImageU8 } from '../core/tensor.ts';
import { decode as rleDecode, fromCocoRle } from '../postprocess/mask.ts';
import type { Detection, DetectResult, ImageInput } from './detect.ts';
import { UserError } from '../core/errors.ts';

export interface AnnotateOptions {
  /** Draw detections scoring at least this (default 0.5). */
  scoreThreshold?: number;
  /** Mask opacity, 0..1 (default 0.45). */
  maskAlpha?: number;
  /** Output encoding (default png). */
  format?: 'png' | 'jpeg';
  /** Label font size in pixels (default: 11 px at 256 px, scaled with the shorter image side). */
  fontSize?: number;
}

/** Visually distinct colours (Tableau-like), cycled per instance. */
export const PALETTE: ReadonlyArray<[number, number, number]> = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
  [210, 245, 60], [255, 225, 25], [0, 128, 128], [170, 110, 40], [128, 0, 0], [170, 255, 195], [128, 128, 0],
  [0, 0, 128], [250, 190, 212],
];

export interface LabelBox {
  x: number;
  y: number;
  width: number;
  height: number;
  text: string;
}

type Rect = Omit<LabelBox, 'text'>;

function overlapArea(a: Rect, b: Rect): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/**
 * Where a label of `w` x `h` goes for box `b`, clamped into the image. Preferred: above the box, else inside
 * its top. Labels already placed (`taken`) are avoided by trying, in order, above, inside top, below and
 * inside bottom, each at the box's left and right edges; the first free spot wins, else the least covered
 * one, so crowded scenes stay readable instead of stacking labels on one another.
 */
export function placeLabel(
  b: [number, number, number, number], w: number, h: number, imgW: number, imgH: number, taken: readonly Rect[] = [],
): { x: number; y: number } {
  const [x1, y1, x2, y2] = b.map(Math.round);
  const clampX = (x: number) => Math.max(0, Math.min(x, imgW - w));
  const clampY = (y: number) => Math.max(0, Math.min(y, imgH - h));
  const above = y1 - h >= 0 ? y1 - h : y1; // near the top edge: inside the box
  const ys = [above, y1, y2, y2 - h];
  const xs = [x1, x2 - w];
  let best = { x: 0, y: 0 }; // always replaced: the first candidate's cover is finite
  let bestCover = Infinity;
  for (const yy of ys) {
    for (const xx of xs) {
      const cand = { x: clampX(xx), y: clampY(yy), width: w, height: h };
      let cover = 0;
      for (const t of taken) cover += overlapArea(cand, t);
      if (cover === 0) return { x: cand.x, y: cand.y };
      if (cover < bestCover) { bestCover = cover; best = { x: cand.x, y: cand.y }; }
    }
  }
  return best;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' }[c]!));
}

function maskBitmap(d: Detection, h: number, w: number): Uint8Array {
  if (d.bitmap && d.bitmap.length === h * w) return d.bitmap;
  const rle = fromCocoRle(d.mask);
  if (rle.h !== h || rle.w !== w) throw new UserError(`annotate: a mask is ${rle.w}x${rle.h}, the image ${w}x${h}`);
  return rleDecode(rle); // row-major
}

async function toImage(image: ImageInput | ImageU8): Promise<ImageU8> {
  if (typeof image === 'string' || image instanceof Uint8Array) return decodeImage(image, { autoOrient: true });
  const channels = image.channels ?? 3;
  if (channels !== 3 || image.data.length !== image.width * image.height * 3) throw new UserError('annotate: raw images must be RGB, width*height*3 bytes');
  return { data: image.data, width: image.width, height: image.height, channels: 3 };
}

/**
 * The layers of an annotation: the RGBA overlay (masks, box outlines, label backgrounds) and the labels.
 * Exposed for tests; `annotate` composites them.
 */
export function annotationLayers(
  width: number, height: number, detections: Detection[], o: AnnotateOptions = {},
): { overlay: Uint8Array; labels: LabelBox[]; fontSize: number; colors: Array<[number, number, number]> } {
  const thr = o.scoreThreshold ?? 0.5;
  const alpha = Math.round(255 * Math.min(1, Math.max(0, o.maskAlpha ?? 0.45)));
  const short = Math.min(width, height);
  const fontSize = o.fontSize ?? Math.max(9, Math.round((11 * short) / 256));
  const line = Math.max(1, Math.round(short / 200));
  const overlay = new Uint8Array(width * height * 4);
  // Lowest score first, so the most confident instance ends up on top.
  const shown = detections.filter((d) => d.score >= thr).sort((a, b) => a.score - b.score);
  const colors = shown.map((_, i) => PALETTE[i % PALETTE.length] as [number, number, number]);
  const fill = (x0: number, y0: number, x1: number, y1: number, c: [number, number, number], a: number) => {
    const xa = Math.max(0, x0), ya = Math.max(0, y0), xb = Math.min(width, x1), yb = Math.min(height, y1);
    for (let y = ya; y < yb; y++) {
      for (let x = xa; x < xb; x++) {
        const p = (y * width + x) * 4;
        overlay[p] = c[0]; overlay[p + 1] = c[1]; overlay[p + 2] = c[2]; overlay[p + 3] = a;
      }
    }
  };
  shown.forEach((d, i) => {
    const m = maskBitmap(d, height, width);
    const c = colors[i];
    for (let p = 0; p < m.length; p++) {
      if (!m[p]) continue;
      const q = p * 4;
      overlay[q] = c[0]; overlay[q + 1] = c[1]; overlay[q + 2] = c[2]; overlay[q + 3] = alpha;
    }
  });
  const padX = Math.max(2, Math.round(fontSize / 4));
  const lh = Math.round(fontSize * 1.3);
  shown.forEach((d, i) => {
    const c = colors[i];
    const [x1, y1, x2, y2] = d.box.map(Math.round);
    fill(x1, y1, x2, y1 + line, c, 255);
    fill(x1, y2 - line, x2, y2, c, 255);
    fill(x1, y1, x1 + line, y2, c, 255);
    fill(x2 - line, y1, x2, y2, c, 255);
  });
  // Labels go over every box outline. The most confident instance picks its spot first, so it keeps the
  // place right above its box; `shown` is in ascending score order, hence the reverse walk.
  const labels: LabelBox[] = new Array(shown.length);
  for (let i = shown.length - 1; i >= 0; i--) {
    const d = shown[i];
    const text = `${d.labelName} ${d.score.toFixed(2)}`;
    // DejaVu Sans averages ~0.6 em per character at these sizes.
    const w = Math.min(width, Math.ceil(text.length * fontSize * 0.6) + 2 * padX);
    const h = Math.min(height, lh);
    const { x, y } = placeLabel(d.box, w, h, width, height, labels.slice(i + 1));
    labels[i] = { x, y, width: w, height: h, text };
  }
  labels.forEach((l, i) => fill(l.x, l.y, l.x + l.width, l.y + l.height, colors[i], 255));
  return { overlay, labels, fontSize, colors };
}

/** Black or white text, whichever reads better on `c`. */
function textColor(c: [number, number, number]): string {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 150 ? '#000' : '#fff';
}

/** The image with `result`'s detections drawn on it, encoded as PNG (default) or JPEG. */
export async function annotate(image: ImageInput | ImageU8, result: DetectResult | Detection[], o: AnnotateOptions = {}): Promise<Buffer> {
  const img = await toImage(image);
  const { width, height } = img;
  const detections = Array.isArray(result) ? result : result.detections;
  if (!Array.isArray(result) && result.unappliedOrientation) {
    throw new UserError(`annotate: the detections were made on the stored pixels of an image with EXIF orientation ${result.unappliedOrientation} (the model's flavor ignores EXIF); detect on decodeImage(path, { autoOrient: true }) to draw them`);
  }
  if (!Array.isArray(result) && (result.width !== width || result.height !== height)) {
    throw new UserError(`annotate: the detections are for a ${result.width}x${result.height} image, this one is ${width}x${height} (detect on the EXIF-oriented image: decodeImage(path, { autoOrient: true }))`);
  }
  const { overlay, labels, fontSize, colors } = annotationLayers(width, height, detections, o);
  const padX = Math.max(2, Math.round(fontSize / 4));
  const texts = labels.map((l, i) => `<text x="${l.x + padX}" y="${l.y + Math.round(l.height * 0.78)}" fill="${textColor(colors[i])}">${escapeXml(l.text)}</text>`);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="DejaVu Sans, sans-serif" font-size="${fontSize}">${texts.join('')}</g></svg>`;
  const sharp = await loadSharp();
  const pipeline = sharp(img.data, { raw: { width, height, channels: 3 } }).composite([
    { input: Buffer.from(overlay.buffer, overlay.byteOffset, overlay.byteLength), raw: { width, height, channels: 4 } },
    { input: Buffer.from(svg) },
  ]);
  return (o.format === 'jpeg' ? pipeline.jpeg({ quality: 92 }) : pipeline.png()).toBuffer();
}
