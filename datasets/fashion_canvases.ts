/**
 * "Fashion-MNIST canvases": a seeded instance-segmentation data set built from real Fashion-MNIST items.
 * Each canvas holds several items at varied scales, tinted, on a textured background, painted in order so
 * later items occlude earlier ones. An item's mask is its silhouette (grey level above a threshold, holes
 * filled) minus what later items cover; annotations are COCO instances with compressed RLE.
 */
import { mulberry32 } from '../core/random.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSharp } from '../image/decode.ts';
import { FASHION_MNIST_CLASSES, type ItemSet } from './fashion_mnist.ts';
import { area as rleArea, encode, toBbox, toCocoRle } from '../postprocess/mask.ts';

export interface CanvasOptions {
  /** Canvas height = width in pixels. */
  size: number;
  minItems: number;
  maxItems: number;
  /** Side of the scaled 28x28 item frame in pixels, drawn log-uniformly in [minScale, maxScale]. */
  minScale: number;
  maxScale: number;
  /** Resized grey level (0..255) above which a pixel belongs to the item before hole filling. */
  threshold: number;
  /** An earlier item must keep at least this many visible pixels ... */
  minVisibleArea: number;
  /** ... and at least this fraction of its silhouette, or the new item is placed elsewhere. */
  minVisibleFraction: number;
  /** Placement attempts per item before the item is skipped. */
  placementTries: number;
  /** Up to this many plain shapes (not objects) are painted on the background. */
  maxDistractors: number;
}

export const DEFAULT_CANVAS_OPTIONS: Readonly<CanvasOptions> = {
  size: 256,
  minItems: 2,
  maxItems: 6,
  minScale: 40,
  maxScale: 128,
  threshold: 30,
  minVisibleArea: 120,
  minVisibleFraction: 0.4,
  placementTries: 20,
  maxDistractors: 3,
};

export interface Placement {
  /** Position of the item in the ItemSet passed to the generator. */
  item: number;
  /** Index of the item in its Fashion-MNIST file and that file's split. */
  sourceIndex: number;
  sourceSplit: string;
  /** Fashion-MNIST label 0..9 (COCO category id = label + 1). */
  label: number;
  /** Top-left corner and side of the scaled 28x28 frame on the canvas. */
  x: number;
  y: number;
  size: number;
  /** RGB tint; a silhouette pixel with resized grey level v gets round(tint * (0.3 + 0.7 * v / 255)). */
  tint: [number, number, number];
}

export interface CanvasSample {
  width: number;
  height: number;
  /** RGB, row-major, 3 bytes per pixel. */
  image: Uint8Array;
  /** Items in paint order (later ones occlude earlier ones). */
  placements: Placement[];
  /** Visible mask (row-major, 0/1) of each placement. */
  masks: Uint8Array[];
}

// ---------------------------------------------------------------- random numbers

export { mulberry32 };

/** Seed of canvas `index` in a split with seed `seed`, so any canvas can be regenerated on its own. */
export function canvasSeed(seed: number, index: number): number {
  // splitmix32-style mixing of the pair
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) + Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

// ---------------------------------------------------------------- item geometry

/**
 * Bilinear resize of a uint8 grey image, half-pixel centres (align_corners=False, no antialias: the same
 * sampling as torch.nn.functional.interpolate(mode='bilinear') and cv2.INTER_LINEAR when enlarging).
 */
export function resizeBilinear(src: Uint8Array, sh: number, sw: number, dh: number, dw: number): Float64Array {
  const out = new Float64Array(dh * dw);
  for (let y = 0; y < dh; y++) {
    const sy = Math.min(Math.max(((y + 0.5) * sh) / dh - 0.5, 0), sh - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, sh - 1);
    const fy = sy - y0;
    for (let x = 0; x < dw; x++) {
      const sx = Math.min(Math.max(((x + 0.5) * sw) / dw - 0.5, 0), sw - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, sw - 1);
      const fx = sx - x0;
      const top = src[y0 * sw + x0] * (1 - fx) + src[y0 * sw + x1] * fx;
      const bot = src[y1 * sw + x0] * (1 - fx) + src[y1 * sw + x1] * fx;
      out[y * dw + x] = top * (1 - fy) + bot * fy;
    }
  }
  return out;
}

/** Pixels above `threshold`, with holes (background not 4-connected to the border) filled. */
export function silhouette(grey: ArrayLike<number>, h: number, w: number, threshold: number): Uint8Array {
  const fg = new Uint8Array(h * w);
  for (let i = 0; i < h * w; i++) fg[i] = grey[i] > threshold ? 1 : 0;
  // flood the outside background from every border pixel; whatever background is left is a hole
  const outside = new Uint8Array(h * w);
  const stack: number[] = [];
  const push = (i: number) => {
    if (!fg[i] && !outside[i]) {
      outside[i] = 1;
      stack.push(i);
    }
  };
  for (let x = 0; x < w; x++) {
    push(x);
    push((h - 1) * w + x);
  }
  for (let y = 0; y < h; y++) {
    push(y * w);
    push(y * w + w - 1);
  }
  while (stack.length) {
    const i = stack.pop()!;
    const y = (i / w) | 0;
    const x = i - y * w;
    if (x > 0) push(i - 1);
    if (x < w - 1) push(i + 1);
    if (y > 0) push(i - w);
    if (y < h - 1) push(i + w);
  }
  const sil = new Uint8Array(h * w);
  for (let i = 0; i < h * w; i++) sil[i] = outside[i] ? 0 : 1;
  return sil;
}

/** The scaled grey levels and silhouette of item `item` drawn at `size` x `size`. */
export function itemShape(items: ItemSet, item: number, size: number, threshold: number) {
  const px = items.rows * items.cols;
  const grey = resizeBilinear(items.images.subarray(item * px, (item + 1) * px), items.rows, items.cols, size, size);
  return { grey, sil: silhouette(grey, size, size, threshold) };
}

// ---------------------------------------------------------------- painting

function randomColour(rng: () => number, satLo: number, satHi: number, valLo: number, valHi: number): [number, number, number] {
  const h = rng() * 6;
  const s = satLo + rng() * (satHi - satLo);
  const v = valLo + rng() * (valHi - valLo);
  const i = Math.floor(h);
  const f = h - i;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  const rgb = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i % 6];
  return [Math.round(rgb[0] * 255), Math.round(rgb[1] * 255), Math.round(rgb[2] * 255)];
}

function mix(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

/** Textured background: linear gradient, smooth value noise, soft stripes or a checkerboard. */
function paintBackground(img: Uint8Array, size: number, rng: () => number): void {
  const c0 = randomColour(rng, 0, 0.8, 0.1, 0.95);
  const c1 = randomColour(rng, 0, 0.8, 0.1, 0.95);
  const kind = randInt(rng, 0, 3);
  const angle = rng() * Math.PI;
  const ca = Math.cos(angle);
  const sa = Math.sin(angle);
  let weight: (x: number, y: number) => number;
  if (kind === 0) {
    weight = (x, y) => Math.min(Math.max((x * ca + y * sa) / (size * 1.42) + 0.25, 0), 1);
  } else if (kind === 1) {
    const cell = randInt(rng, 24, 64);
    const g = Math.ceil(size / cell) + 2;
    const grid = new Float64Array(g * g);
    for (let i = 0; i < grid.length; i++) grid[i] = rng();
    weight = (x, y) => {
      const gx = x / cell;
      const gy = y / cell;
      const x0 = Math.floor(gx);
      const y0 = Math.floor(gy);
      // smoothstep weights give a softer texture than plain bilinear
      const fx = (gx - x0) * (gx - x0) * (3 - 2 * (gx - x0));
      const fy = (gy - y0) * (gy - y0) * (3 - 2 * (gy - y0));
      const a = mix(grid[y0 * g + x0], grid[y0 * g + x0 + 1], fx);
      const b = mix(grid[(y0 + 1) * g + x0], grid[(y0 + 1) * g + x0 + 1], fx);
      return mix(a, b, fy);
    };
  } else if (kind === 2) {
    const period = randInt(rng, 10, 40);
    weight = (x, y) => 0.5 + 0.5 * Math.sin(((x * ca + y * sa) * 2 * Math.PI) / period);
  } else {
    const cell = randInt(rng, 8, 32);
    weight = (x, y) => ((Math.floor(x / cell) + Math.floor(y / cell)) & 1 ? 0.8 : 0.2);
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const t = weight(x, y);
      const o = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) img[o + c] = Math.round(mix(c0[c], c1[c], t));
    }
  }
}

/** Plain ellipses and rectangles: clutter that is not an object, so "not background" is not "object". */
function paintDistractors(img: Uint8Array, size: number, count: number, rng: () => number): void {
  for (let k = 0; k < count; k++) {
    const col = randomColour(rng, 0, 1, 0.1, 1);
    const w = randInt(rng, 16, 96);
    const h = randInt(rng, 16, 96);
    const x0 = randInt(rng, -w >> 1, size - (w >> 1));
    const y0 = randInt(rng, -h >> 1, size - (h >> 1));
    const ellipse = rng() < 0.5;
    const alpha = 0.5 + 0.5 * rng();
    for (let y = Math.max(y0, 0); y < Math.min(y0 + h, size); y++) {
      for (let x = Math.max(x0, 0); x < Math.min(x0 + w, size); x++) {
        if (ellipse) {
          const dx = (x + 0.5 - x0 - w / 2) / (w / 2);
          const dy = (y + 0.5 - y0 - h / 2) / (h / 2);
          if (dx * dx + dy * dy > 1) continue;
        }
        const o = (y * size + x) * 3;
        for (let c = 0; c < 3; c++) img[o + c] = Math.round(mix(img[o + c], col[c], alpha));
      }
    }
  }
}

/** Colour of a silhouette pixel of an item with the given tint and resized grey level. */
export function itemPixel(tint: number, grey: number): number {
  return Math.min(255, Math.round(tint * (0.3 + (0.7 * grey) / 255)));
}

/**
 * Render canvas `index` of a split. `items` is the pool the canvas draws from (uniformly, with replacement
 * across canvases); the result depends only on (items, seed, index, opts).
 */
export function renderCanvas(
  items: ItemSet,
  seed: number,
  index: number,
  opts: CanvasOptions = DEFAULT_CANVAS_OPTIONS,
): CanvasSample {
  if (items.count === 0) throw new Error('renderCanvas: the item set is empty');
  if (opts.maxScale > opts.size) throw new Error(`maxScale ${opts.maxScale} exceeds canvas size ${opts.size}`);
  const rng = mulberry32(canvasSeed(seed, index));
  const S = opts.size;
  const image = new Uint8Array(S * S * 3);
  paintBackground(image, S, rng);
  paintDistractors(image, S, randInt(rng, 0, opts.maxDistractors), rng);

  // owner[p] = paint position of the item that shows at pixel p, -1 for background
  const owner = new Int16Array(S * S).fill(-1);
  const visible: number[] = [];
  const full: number[] = [];
  const placements: Placement[] = [];
  const nItems = randInt(rng, opts.minItems, opts.maxItems);
  const logLo = Math.log(opts.minScale);
  const logHi = Math.log(opts.maxScale);

  for (let k = 0; k < nItems; k++) {
    const item = Math.floor(rng() * items.count);
    const tint = randomColour(rng, 0.25, 1, 0.55, 1);
    for (let attempt = 0; attempt < opts.placementTries; attempt++) {
      const size = Math.round(Math.exp(logLo + rng() * (logHi - logLo)));
      const x = randInt(rng, 0, S - size);
      const y = randInt(rng, 0, S - size);
      const { grey, sil } = itemShape(items, item, size, opts.threshold);
      let silArea = 0;
      const covered = new Array<number>(placements.length).fill(0);
      for (let r = 0; r < size; r++) {
        for (let c = 0; c < size; c++) {
          if (!sil[r * size + c]) continue;
          silArea++;
          const o = owner[(y + r) * S + x + c];
          if (o >= 0) covered[o]++;
        }
      }
      if (silArea < opts.minVisibleArea) continue;
      let ok = true;
      for (let j = 0; j < placements.length && ok; j++) {
        const left = visible[j] - covered[j];
        if (left < opts.minVisibleArea || left < opts.minVisibleFraction * full[j]) ok = false;
      }
      if (!ok) continue;
      const me = placements.length;
      for (let j = 0; j < me; j++) visible[j] -= covered[j];
      for (let r = 0; r < size; r++) {
        for (let c = 0; c < size; c++) {
          if (!sil[r * size + c]) continue;
          const p = (y + r) * S + x + c;
          owner[p] = me;
          const g = grey[r * size + c];
          for (let ch = 0; ch < 3; ch++) image[p * 3 + ch] = itemPixel(tint[ch], g);
        }
      }
      visible.push(silArea);
      full.push(silArea);
      placements.push({
        item,
        sourceIndex: items.indices[item],
        sourceSplit: items.split,
        label: items.labels[item],
        x,
        y,
        size,
        tint,
      });
      break;
    }
  }

  const masks = placements.map(() => new Uint8Array(S * S));
  for (let p = 0; p < S * S; p++) if (owner[p] >= 0) masks[owner[p]][p] = 1;
  return { width: S, height: S, image, placements, masks };
}

// ---------------------------------------------------------------- COCO output

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: { size: [number, number]; counts: string };
  area: number;
  bbox: [number, number, number, number];
  iscrowd: 0;
  /** Where the item came from: Fashion-MNIST file and index (extra field; COCO readers ignore it). */
  source: { split: string; index: number };
}

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
  license: number;
}

export interface CocoDataset {
  info: Record<string, string | number>;
  licenses: { id: number; name: string; url: string }[];
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: { id: number; name: string; supercategory: string }[];
}

export const FASHION_CATEGORIES = FASHION_MNIST_CLASSES.map((name, i) => ({
  id: i + 1,
  name,
  supercategory: 'fashion',
}));

/** COCO annotations of one canvas; ids continue from `nextId`. */
export function canvasAnnotations(sample: CanvasSample, imageId: number, nextId: number): CocoAnnotation[] {
  return sample.placements.map((pl, k) => {
    const rle = encode(sample.masks[k], sample.height, sample.width);
    const [x, y, w, h] = toBbox(rle);
    return {
      id: nextId + k,
      image_id: imageId,
      category_id: pl.label + 1,
      segmentation: { size: [sample.height, sample.width], counts: toCocoRle(rle).counts as string },
      area: rleArea(rle),
      bbox: [x, y, w, h],
      iscrowd: 0,
      source: { split: pl.sourceSplit, index: pl.sourceIndex },
    };
  });
}

export function canvasFileName(index: number): string {
  return `${String(index + 1).padStart(6, '0')}.png`;
}

/** Encode an RGB canvas as PNG (deterministic for a given sharp/libvips build). */
export async function encodePng(sample: CanvasSample): Promise<Buffer> {
  const sharp = await loadSharp();
  return sharp(Buffer.from(sample.image.buffer, sample.image.byteOffset, sample.image.byteLength), {
    raw: { width: sample.width, height: sample.height, channels: 3 },
  })
    .png({ compressionLevel: 9, adaptiveFiltering: true })
    .toBuffer();
}

export interface SplitSpec {
  items: ItemSet;
  count: number;
  seed: number;
  description: string;
  opts?: CanvasOptions;
}

/** Build the COCO dataset of a split (and optionally hand each canvas to `onCanvas`, e.g. to save it). */
export async function buildSplit(
  spec: SplitSpec,
  onCanvas?: (sample: CanvasSample, fileName: string, index: number) => Promise<void> | void,
): Promise<CocoDataset> {
  const opts = spec.opts ?? DEFAULT_CANVAS_OPTIONS;
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  for (let i = 0; i < spec.count; i++) {
    const sample = renderCanvas(spec.items, spec.seed, i, opts);
    const fileName = canvasFileName(i);
    images.push({ id: i + 1, file_name: fileName, width: sample.width, height: sample.height, license: 1 });
    annotations.push(...canvasAnnotations(sample, i + 1, annotations.length + 1));
    if (onCanvas) await onCanvas(sample, fileName, i);
  }
  return {
    info: {
      description: spec.description,
      version: '1',
      contributor: 'fasternet project; items from Fashion-MNIST (Zalando SE, MIT licence)',
      seed: spec.seed,
      item_split: spec.items.split,
      options: JSON.stringify(opts),
    },
    licenses: [{ id: 1, name: 'MIT (Fashion-MNIST, Zalando SE)', url: 'https://opensource.org/licenses/MIT' }],
    images,
    annotations,
    categories: FASHION_CATEGORIES,
  };
}

/** Write a split as `<dir>/images/*.png` + `<dir>/annotations.json`. */
export async function writeSplit(dir: string, spec: SplitSpec): Promise<CocoDataset> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  const ds = await buildSplit(spec, async (sample, fileName) => {
    writeFileSync(join(dir, 'images', fileName), await encodePng(sample));
  });
  writeFileSync(join(dir, 'annotations.json'), JSON.stringify(ds));
  return ds;
}
