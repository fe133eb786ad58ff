/**
 * Seeded synthetic COCO cases for benchmarking the evaluator at COCO-val scale: an instances GT with
 * polygon masks (and a few crowd regions as uncompressed RLE), box results and mask results the way
 * mmdetection writes them (compressed RLE + its box + score). Detections are jittered copies of GT
 * objects, confusions with other categories and background false positives, so all match paths run.
 */
import { mulberry32 } from '../core/random.ts';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { area as rleArea, frPoly, rleToString, toBbox } from '../postprocess/mask.ts';

export interface SyntheticOptions {
  images: number;
  categories: number;
  /** Mean GT objects per image (uniform 0..2*mean). */
  gtPerImage: number;
  /** Detections per image (exactly, as a detector capped at maxDets writes them). */
  detsPerImage: number;
  /** Fraction of GT objects that are crowd regions. */
  crowdRatio: number;
  seed: number;
}

export const COCO_VAL_LIKE: SyntheticOptions = {
  images: 5000,
  categories: 80,
  gtPerImage: 7.3,
  detsPerImage: 100,
  crowdRatio: 0.01,
  seed: 1,
};

/** COCO's 80 category ids (1..90 with gaps), used when 80 categories are asked for. */
const COCO_CATEGORY_IDS = [
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
  36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
  67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
];

/** mulberry32: small, fast, seedable. */
export const rng = mulberry32;

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

interface Obj {
  cat: number;
  poly: number[];
}

/** A star-shaped polygon inscribed in the box, 6..16 vertices. */
function polygonIn(rand: () => number, x: number, y: number, w: number, h: number): number[] {
  const n = 6 + Math.floor(rand() * 11);
  const cx = x + w / 2;
  const cy = y + h / 2;
  const pts: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * (i + 0.3 * rand())) / n;
    const r = 0.7 + 0.3 * rand();
    pts.push(round2(cx + (Math.cos(a) * r * w) / 2), round2(cy + (Math.sin(a) * r * h) / 2));
  }
  return pts;
}

function polyBox(p: number[], W: number, H: number): [number, number, number, number] {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < p.length; i += 2) {
    x0 = Math.min(x0, p[i]);
    x1 = Math.max(x1, p[i]);
    y0 = Math.min(y0, p[i + 1]);
    y1 = Math.max(y1, p[i + 1]);
  }
  x0 = Math.max(0, x0);
  y0 = Math.max(0, y0);
  x1 = Math.min(W, x1);
  y1 = Math.min(H, y1);
  return [round2(x0), round2(y0), round2(Math.max(0, x1 - x0)), round2(Math.max(0, y1 - y0))];
}

function shoelace(p: number[]): number {
  let s = 0;
  const n = p.length / 2;
  for (let i = 0; i < n; i++) {
    const j = (i + 1) % n;
    s += p[2 * i] * p[2 * j + 1] - p[2 * j] * p[2 * i + 1];
  }
  return Math.abs(s) / 2;
}

/** A detection's polygon: the object shifted and scaled by `jitter` of its size, clipped to the image. */
function jitterPoly(rand: () => number, p: number[], jitter: number, W: number, H: number): number[] {
  const b = polyBox(p, W, H);
  const s = 1 + jitter * (2 * rand() - 1);
  const dx = jitter * b[2] * (2 * rand() - 1);
  const dy = jitter * b[3] * (2 * rand() - 1);
  const cx = b[0] + b[2] / 2;
  const cy = b[1] + b[3] / 2;
  const out = new Array<number>(p.length);
  for (let i = 0; i < p.length; i += 2) {
    out[i] = round2(Math.min(W, Math.max(0, cx + (p[i] - cx) * s + dx)));
    out[i + 1] = round2(Math.min(H, Math.max(0, cy + (p[i + 1] - cy) * s + dy)));
  }
  return out;
}

/** Buffered writer: the results files are ~100 MB, too big to build as one string comfortably. */
function writer(path: string): { put: (s: string) => void; close: () => void } {
  const fd = openSync(path, 'w');
  let parts: string[] = [];
  let size = 0;
  const flush = (): void => {
    writeSync(fd, parts.join(''));
    parts = [];
    size = 0;
  };
  return {
    put(s: string) {
      parts.push(s);
      size += s.length;
      if (size > 1 << 20) flush();
    },
    close() {
      flush();
      closeSync(fd);
    },
  };
}

export interface SyntheticFiles {
  gt: string;
  dtBbox: string;
  dtSegm: string;
  numGt: number;
  numDets: number;
}

/** Writes gt.json, dt_bbox.json and dt_segm.json into `dir`. */
export function writeSyntheticCase(dir: string, o: SyntheticOptions): SyntheticFiles {
  mkdirSync(dir, { recursive: true });
  const rand = rng(o.seed);
  const catIds = o.categories === 80 ? COCO_CATEGORY_IDS : Array.from({ length: o.categories }, (_, i) => i + 1);
  const pickCat = categoryPicker(rand, catIds);
  const gtW = writer(join(dir, 'gt.json'));
  const bbW = writer(join(dir, 'dt_bbox.json'));
  const sgW = writer(join(dir, 'dt_segm.json'));
  gtW.put('{"info":{"description":"fasternet synthetic COCO-val-sized case"},"images":[');
  const sizes: Array<[number, number, number]> = [];
  for (let i = 0; i < o.images; i++) {
    const id = 100000 + i * 7 + Math.floor(rand() * 7);
    const w = 480 + Math.floor(rand() * 161);
    const h = 360 + Math.floor(rand() * 281);
    sizes.push([id, h, w]);
    gtW.put(`${i ? ',' : ''}{"id":${id},"width":${w},"height":${h},"file_name":"${id}.jpg"}`);
  }
  gtW.put('],"annotations":[');
  bbW.put('[');
  sgW.put('[');
  let annId = 1;
  let numDets = 0;
  for (const [imageId, H, W] of sizes) {
    const nGt = Math.floor(rand() * (2 * o.gtPerImage + 1));
    const objs: Obj[] = [];
    for (let j = 0; j < nGt; j++) {
      const { obj, ann } = gtObject(rand, pickCat, W, H, o.crowdRatio);
      gtW.put(`${annId > 1 ? ',' : ''}{"id":${annId},"image_id":${imageId},"category_id":${obj.cat},${ann}}`);
      annId++;
      objs.push(obj);
    }
    for (const d of imageDetections(rand, pickCat, objs, W, H, o.detsPerImage)) {
      const bb = polyBox(d.poly, W, H);
      const score = Math.round(d.score * 1e5) / 1e5;
      const head = `${numDets ? ',' : ''}{"image_id":${imageId},"category_id":${d.cat},"bbox":[${bb.join(',')}],"score":${score}`;
      bbW.put(`${head}}`);
      const counts = rleToString(frPoly(d.poly, H, W));
      sgW.put(`${head},"segmentation":{"size":[${H},${W}],"counts":${JSON.stringify(counts)}}}`);
      numDets++;
    }
  }
  gtW.put('],"categories":[');
  gtW.put(catIds.map((id) => `{"id":${id},"name":"class_${id}","supercategory":"thing"}`).join(','));
  gtW.put(']}');
  bbW.put(']');
  sgW.put(']');
  gtW.close();
  bbW.close();
  sgW.close();
  return { gt: join(dir, 'gt.json'), dtBbox: join(dir, 'dt_bbox.json'), dtSegm: join(dir, 'dt_segm.json'), numGt: annId - 1, numDets };
}

/** Draws category ids with skewed frequencies, like COCO's (person is ~25% of objects). */
function categoryPicker(rand: () => number, catIds: readonly number[]): () => number {
  const weights = catIds.map((_, i) => 1 / (i + 1) ** 0.8);
  const cum: number[] = [];
  weights.reduce((s, w, i) => (cum[i] = s + w), 0);
  return () => {
    const r = rand() * cum[cum.length - 1];
    let i = 0;
    while (cum[i] < r) i++;
    return catIds[i];
  };
}

/** One GT object on a W x H image and its annotation fields (JSON text); crowds are RLEs. */
function gtObject(rand: () => number, pickCat: () => number, W: number, H: number, crowdRatio: number): { obj: Obj; ann: string } {
  // Log-uniform sizes from ~8 px to most of the image: small, medium and large all occur.
  const side = Math.exp(Math.log(8) + rand() * (Math.log(Math.min(W, H) * 0.9) - Math.log(8)));
  const aspect = Math.exp((rand() - 0.5) * 1.2);
  const bw = Math.min(W - 1, side * aspect);
  const bh = Math.min(H - 1, side / aspect);
  const x = rand() * (W - bw);
  const y = rand() * (H - bh);
  const cat = pickCat();
  const poly = polygonIn(rand, x, y, bw, bh);
  if (rand() < crowdRatio) {
    const rle = frPoly(poly, H, W);
    const bb = toBbox(rle);
    const counts = Array.from(rle.counts).join(',');
    return { obj: { cat, poly }, ann: `"segmentation":{"size":[${H},${W}],"counts":[${counts}]},"area":${rleArea(rle)},"bbox":[${bb.join(',')}],"iscrowd":1` };
  }
  return { obj: { cat, poly }, ann: `"segmentation":[[${poly.join(',')}]],"area":${round2(shoelace(poly))},"bbox":[${polyBox(poly, W, H).join(',')}],"iscrowd":0` };
}

/** Detections of one image: 0-4 jittered hits per object (sometimes with the wrong label), then background. */
function imageDetections(
  rand: () => number, pickCat: () => number, objs: readonly Obj[], W: number, H: number, perImage: number,
): Array<{ cat: number; poly: number[]; score: number }> {
  const dets: Array<{ cat: number; poly: number[]; score: number }> = [];
  for (const ob of objs) {
    const hits = Math.floor(rand() * 5);
    for (let h = 0; h < hits && dets.length < perImage; h++) {
      const jitter = 0.02 + 0.3 * rand() * rand();
      const wrong = rand() < 0.1;
      const score = Math.min(0.999, Math.max(0.01, 1 - 2 * jitter - 0.3 * rand() - (wrong ? 0.3 : 0)));
      dets.push({ cat: wrong ? pickCat() : ob.cat, poly: jitterPoly(rand, ob.poly, jitter, W, H), score });
    }
  }
  while (dets.length < perImage) {
    const side = 8 + rand() * 0.5 * Math.min(W, H);
    const x = rand() * (W - side);
    const y = rand() * (H - side);
    dets.push({ cat: pickCat(), poly: polygonIn(rand, x, y, side, side * (0.5 + rand())), score: 0.3 * rand() ** 2 });
  }
  return dets;
}
