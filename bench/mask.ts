/**
 * Speed of postprocess/mask.ts on 640x480 masks: encode, decode, iou (100 dt x 20 gt), frPoly (CPU ms).
 * Usage: npx tsx bench/mask.ts [OUT.json]  (OUT: the RLEs, for bench/mask_pycocotools.py)
 * COCO_POLYGONS=FILE.json times annToRle on a COCO instances file's polygons (default: the shared fixture).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { annToRle, decode, encode, encodeColumnMajor, frPoly, iou, rleFrString, toCocoRle, useWasmIou, type RLE } from '../postprocess/mask.ts';

const H = 480;
const W = 640;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

// Blob masks (a few ellipses each) clustered in one region so that most dt/gt boxes overlap, as in a busy image.
function blobMask(rand: () => number): Uint8Array {
  const m = new Uint8Array(H * W);
  const k = 1 + Math.floor(rand() * 3);
  for (let e = 0; e < k; e++) {
    const cx = 200 + rand() * 240;
    const cy = 140 + rand() * 200;
    const rx = 20 + rand() * 120;
    const ry = 20 + rand() * 100;
    for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(H, cy + ry); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(W, cx + rx); x++) {
        if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1) m[y * W + x] = 1;
      }
    }
  }
  return m;
}

// Warm the JIT, then report the best of 5 batches in CPU time (user + system): the machine is shared, and
// wall time there measures the neighbours.
function time(label: string, reps: number, f: () => void): number {
  for (let r = 0; r < reps * 5; r++) f();
  let best = Infinity;
  for (let batch = 0; batch < 5; batch++) {
    const t0 = process.cpuUsage();
    for (let r = 0; r < reps; r++) f();
    const t = process.cpuUsage(t0);
    best = Math.min(best, (t.user + t.system) / 1e3 / reps);
  }
  console.log(`${label}: ${best.toFixed(3)} ms`);
  return best;
}

const rand = lcg(12345);
const bitmaps = Array.from({ length: 120 }, () => blobMask(rand));
const rles: RLE[] = bitmaps.map((m) => encode(m, H, W));
const dt = rles.slice(0, 100);
const gt = rles.slice(100);
const crowd = gt.map((_, i) => (i === 3 ? 1 : 0));

time('encode 640x480 row-major', 50, () => encode(bitmaps[0], H, W));
const colMajor = new Uint8Array(H * W);
time('encode 640x480 via a transposed copy + encodeColumnMajor (the alternative)', 50, () => {
  const m = bitmaps[0];
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) colMajor[x * H + y] = m[y * W + x];
  encodeColumnMajor(colMajor, H, W);
});
time('decode 640x480', 50, () => decode(rles[0]));
const o = iou(dt, gt, crowd);
let overl = 0;
for (const v of o) if (v > 0) overl++;
console.log(`iou pairs with overlapping boxes and IoU > 0: ${overl} of ${o.length}; mean counts per RLE ${(rles.reduce((a, r) => a + r.counts.length, 0) / rles.length).toFixed(0)}`);
time('iou 100 dt x 20 gt (RLEs already parsed)', 20, () => iou(dt, gt, crowd));
useWasmIou(false);
time('iou 100 dt x 20 gt, JS kernels (no WebAssembly)', 20, () => iou(dt, gt, crowd));
useWasmIou(true);
const strs = rles.map((r) => toCocoRle(r));
time('iou 100 x 20 incl. parsing the counts strings', 20, () =>
  iou(strs.slice(0, 100).map((s) => rleFrString(s.counts as string, H, W)), strs.slice(100).map((s) => rleFrString(s.counts as string, H, W)), crowd));
const poly: number[] = [];
for (let i = 0; i < 60; i++) {
  const a = (i / 60) * 2 * Math.PI;
  const r = 150 + 40 * Math.sin(5 * a);
  poly.push(320 + r * Math.cos(a) + 0.37, 240 + r * Math.sin(a) + 0.11);
}
time('frPoly 60-vertex polygon on 640x480', 200, () => frPoly(poly, H, W));

// Real COCO polygons (shared/fixtures/coco beside the repository), as the segm evaluator rasterises its GT.
const cocoPath = process.env.COCO_POLYGONS ?? join(process.cwd(), '..', 'shared', 'fixtures', 'coco', 'instances_val2014_100.json');
if (existsSync(cocoPath)) {
  const coco = JSON.parse(readFileSync(cocoPath, 'utf8')) as {
    images: { id: number; height: number; width: number }[];
    annotations: { image_id: number; segmentation: unknown }[];
  };
  const size = new Map(coco.images.map((im) => [im.id, im]));
  const polys = coco.annotations.filter((a) => Array.isArray(a.segmentation));
  time(`annToRle of ${polys.length} COCO val2014 polygon annotations`, 5, () => {
    for (const a of polys) {
      const im = size.get(a.image_id)!;
      annToRle(a.segmentation as number[][], im.height, im.width);
    }
  });
}

if (process.argv[2]) {
  writeFileSync(process.argv[2], JSON.stringify({ dt: strs.slice(0, 100), gt: strs.slice(100), iscrowd: crowd, iou: Array.from(o), poly }));
  console.log(`wrote ${process.argv[2]}`);
}
