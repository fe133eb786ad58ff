/**
 * The report's gallery: the images where the model loses most to the baseline, with the GT outlines and
 * both models' detections drawn side by side so a person sees the failure modes.
 *
 * An image's loss is judged at a working point, not by AP: detections scoring >= scoreThr are matched
 * greedily (by score) to the non-crowd GT of their category at box IoU >= 0.5; loss = objects the
 * baseline finds minus objects the model finds, ties broken by the model's extra false positives.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { annToRle, decode, frBbox, type Segmentation } from '../postprocess/mask.ts';
import type { CocoDataset, CocoGt } from './coco.ts';
import { resolveDt, type CocoDt } from './load_res.ts';

export interface SideCounts {
  tp: number;
  fp: number;
  /** Detections drawn: [category id, score, x, y, w, h, matched 0/1] */
  dets: Array<[number, number, number, number, number, number, number]>;
  /** Per GT annotation of the image (file order, crowd included): found by this side. */
  found: boolean[];
}

export interface GalleryEntry {
  imageId: number;
  fileName?: string;
  loss: number;
  model: SideCounts;
  baseline: SideCounts;
  /** The drawn picture, relative to the report folder, when the image was found. */
  picture?: string;
}

interface GtBox {
  cat: number;
  crowd: boolean;
  bbox: number[] | undefined;
  segmentation: unknown;
}

function boxIou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const i = w * h;
  return i / (a[2] * a[3] + b[2] * b[3] - i);
}

/** Detection indices per image index with score >= thr, boxes resolved (mask results: from the mask). */
function detsByImage(gt: CocoGt, dt: CocoDt, thr: number): number[][] {
  const out: number[][] = Array.from({ length: gt.imageIds.length }, () => []);
  for (let i = 0; i < dt.n; i++) {
    if (dt.score[i] < thr) continue;
    if (Number.isNaN(dt.bbox[4 * i])) resolveDt(gt, dt, i, true);
    out[dt.img[i]].push(i);
  }
  for (const l of out) l.sort((a, b) => dt.score[b] - dt.score[a] || a - b);
  return out;
}

function countSide(gt: CocoGt, dt: CocoDt, dets: number[], gts: GtBox[]): SideCounts {
  const found = gts.map(() => false);
  const res: SideCounts = { tp: 0, fp: 0, dets: [], found };
  for (const i of dets) {
    const cat = gt.categoryIds[dt.cat[i]];
    const box = dt.bbox.subarray(4 * i, 4 * i + 4);
    let best = 0.5;
    let m = -1;
    gts.forEach((g, q) => {
      if (found[q] || g.crowd || g.cat !== cat || !g.bbox) return;
      const v = boxIou(box, g.bbox);
      if (v >= best) {
        best = v;
        m = q;
      }
    });
    if (m >= 0) {
      found[m] = true;
      res.tp++;
    } else {
      res.fp++;
    }
    res.dets.push([cat, dt.score[i], box[0], box[1], box[2], box[3], m >= 0 ? 1 : 0]);
  }
  return res;
}

/** All images ranked by how much the model loses to the baseline (largest loss first), loss > 0 only. */
export function rankImages(dataset: CocoDataset, gt: CocoGt, model: CocoDt, baseline: CocoDt, scoreThr = 0.3): GalleryEntry[] {
  const gtsByImage = new Map<number, GtBox[]>();
  for (const a of dataset.annotations) {
    if (!gt.imageIndex.has(a.image_id) || !gt.categoryIndex.has(a.category_id)) continue;
    let l = gtsByImage.get(a.image_id);
    if (!l) gtsByImage.set(a.image_id, (l = []));
    l.push({ cat: a.category_id, crowd: Boolean(a.iscrowd), bbox: a.bbox, segmentation: a.segmentation });
  }
  const fileNames = new Map<number, string>();
  for (const im of dataset.images) if (typeof im.file_name === 'string') fileNames.set(im.id, im.file_name);
  const dm = detsByImage(gt, model, scoreThr);
  const db = detsByImage(gt, baseline, scoreThr);
  const out: GalleryEntry[] = [];
  gt.imageIds.forEach((imageId, k) => {
    const gts = gtsByImage.get(imageId) ?? [];
    const m = countSide(gt, model, dm[k], gts);
    const b = countSide(gt, baseline, db[k], gts);
    const loss = b.tp - m.tp + 1e-3 * (m.fp - b.fp);
    if (loss > 0) out.push({ imageId, fileName: fileNames.get(imageId), loss, model: m, baseline: b });
  });
  return out.sort((a, b) => b.loss - a.loss || a.imageId - b.imageId);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** RGBA of a GT outline: found green, missed magenta (and a light fill, so misses stand out), crowd grey. */
function gtColor(g: GtBox, found: boolean): [number, number, number, number, number] {
  if (g.crowd) return [160, 160, 160, 255, 0];
  return found ? [46, 204, 64, 255, 0] : [255, 0, 255, 255, 70];
}

/**
 * GT outlines as an RGBA overlay: the mask (polygons or RLE, as COCO.annToRLE rasterises them; the box
 * where neither is given) with its border, `t` pixels wide, painted opaque and the inside lightly tinted.
 */
function gtOverlay(gts: GtBox[], found: boolean[], width: number, height: number, t: number): Buffer {
  const rgba = Buffer.alloc(width * height * 4);
  gts.forEach((g, q) => {
    let mask: Uint8Array;
    try {
      if (g.segmentation && (Array.isArray(g.segmentation) ? g.segmentation.length > 0 : true)) {
        mask = decode(annToRle(g.segmentation as Segmentation, height, width));
      } else if (g.bbox) {
        mask = decode(frBbox(g.bbox, height, width));
      } else return;
    } catch {
      if (!g.bbox) return;
      mask = decode(frBbox(g.bbox, height, width));
    }
    if (mask.length !== width * height) return; // an RLE of another size: skip rather than misdraw
    const [r, gg, b, edgeA, fillA] = gtColor(g, found[q]);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!mask[y * width + x]) continue;
        let edge = false;
        for (let dy = -t; dy <= t && !edge; dy++) {
          for (let dx = -t; dx <= t; dx++) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy < 0 || yy >= height || xx < 0 || xx >= width || !mask[yy * width + xx]) {
              edge = true;
              break;
            }
          }
        }
        const a = edge ? edgeA : fillA;
        if (a === 0) continue;
        const o = 4 * (y * width + x);
        if (rgba[o + 3] > a) continue; // an earlier outline stays on top of a later fill
        rgba[o] = r;
        rgba[o + 1] = gg;
        rgba[o + 2] = b;
        rgba[o + 3] = a;
      }
    }
  });
  return rgba;
}

/** Detections: true positives blue, false positives red, each labelled "name score"; the most confident on top. */
function detShapes(side: SideCounts, names: Map<number, string>, sw: number, font: number): string {
  return [...side.dets]
    .sort((a, b) => a[1] - b[1])
    .map(([cat, score, x, y, w, h, tp]) => {
      const color = tp ? '#1f77b4' : '#e41a1c';
      const label = `${names.get(cat) ?? cat} ${score.toFixed(2)}`;
      const lw = Math.ceil(0.62 * font * label.length) + 4;
      const ly = y > font + 4 ? y - font - 3 : y + h;
      return (
        `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="${color}" stroke-width="${sw}"/>` +
        `<rect x="${x}" y="${ly}" width="${lw}" height="${font + 3}" fill="${color}" fill-opacity="0.8"/>` +
        `<text x="${x + 2}" y="${ly + font}" font-family="DejaVu Sans, sans-serif" font-size="${font}" fill="#ffffff">${esc(label)}</text>`
      );
    })
    .join('');
}

const PANEL_WIDTH = 380;

async function panel(file: string, gts: GtBox[], side: SideCounts, names: Map<number, string>, width: number, height: number): Promise<Buffer> {
  const sw = Math.max(1.5, Math.max(width, height) / 320);
  const font = Math.max(10, Math.round(Math.max(width, height) / 40));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${detShapes(side, names, sw, font)}</svg>`;
  const outline = gtOverlay(gts, side.found, width, height, Math.max(1, Math.round(sw / 2)));
  const drawn = await sharp(file)
    .removeAlpha()
    .composite([
      { input: outline, raw: { width, height, channels: 4 }, top: 0, left: 0 },
      { input: Buffer.from(svg), top: 0, left: 0 },
    ])
    .png()
    .toBuffer();
  return sharp(drawn).resize({ width: PANEL_WIDTH }).png().toBuffer();
}

/**
 * Draws the entries whose image file exists under imagesDir as DIR/gallery/<image id>.jpg: the model's
 * panel left, the baseline's right. Returns the entries with `picture` set where drawn.
 */
export async function drawGallery(
  dir: string,
  entries: GalleryEntry[],
  dataset: CocoDataset,
  imagesDir: string | undefined,
): Promise<GalleryEntry[]> {
  if (!imagesDir || entries.length === 0) return entries;
  mkdirSync(join(dir, 'gallery'), { recursive: true });
  const names = new Map<number, string>();
  for (const c of dataset.categories) names.set(c.id, typeof c.name === 'string' ? c.name : String(c.id));
  const gtsByImage = new Map<number, GtBox[]>();
  const wanted = new Set(entries.map((e) => e.imageId));
  for (const a of dataset.annotations) {
    if (!wanted.has(a.image_id)) continue;
    let l = gtsByImage.get(a.image_id);
    if (!l) gtsByImage.set(a.image_id, (l = []));
    l.push({ cat: a.category_id, crowd: Boolean(a.iscrowd), bbox: a.bbox, segmentation: a.segmentation });
  }
  const out: GalleryEntry[] = [];
  for (const e of entries) {
    const file = e.fileName ? join(imagesDir, e.fileName) : undefined;
    if (!file || !existsSync(file)) {
      out.push(e);
      continue;
    }
    // Only GTs of GT categories were counted; draw the same list.
    const gts = (gtsByImage.get(e.imageId) ?? []).filter((g) => names.has(g.cat));
    const meta = await sharp(file).metadata();
    const [w, h] = [meta.width ?? 0, meta.height ?? 0];
    const left = await panel(file, gts, e.model, names, w, h);
    const right = await panel(file, gts, e.baseline, names, w, h);
    const ph = (await sharp(left).metadata()).height ?? Math.round((h * PANEL_WIDTH) / w);
    const gap = 8;
    const picture = join('gallery', `${e.imageId}.jpg`);
    await sharp({ create: { width: 2 * PANEL_WIDTH + gap, height: ph, channels: 3, background: '#ffffff' } })
      .composite([
        { input: left, left: 0, top: 0 },
        { input: right, left: PANEL_WIDTH + gap, top: 0 },
      ])
      .jpeg({ quality: 82 })
      .toFile(join(dir, picture));
    out.push({ ...e, picture });
  }
  return out;
}
