/**
 * Loads test/fixtures/detect_tv (scripts/fixtures/make_detect_tv_fixtures.py): seeded weights rebuilt bit for
 * bit from their spec, the two photos, the recorded torchvision stages, and a matcher for final detections.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FloatTensor, StateDict } from '../../core/tensor.ts';
import type { ImageU8 } from '../../core/tensor.ts';
import { area as rleArea, decode as rleDecode, encode as rleEncode, iou as rleIou, rleFrString, type RLE } from '../../postprocess/mask.ts';
import { toFullMask, type PastedMask } from '../../postprocess/paste_masks.ts';

export const DIR = join(import.meta.dirname, '..', 'fixtures', 'detect_tv');

function fmix32(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Value i: lo + (hi - lo) * (fmix32(i + fmix32(seed)) >>> 8) / 2^24 in float64, rounded to float32. */
export function seededUniform(seed: number, n: number, lo: number, hi: number): Float32Array {
  const s = fmix32(seed >>> 0);
  const out = new Float32Array(n);
  const span = hi - lo;
  for (let i = 0; i < n; i++) out[i] = lo + span * ((fmix32((i + s) >>> 0) >>> 8) * 2 ** -24);
  return out;
}

interface WeightSpec { seed: number; tensors: [string, number[], number, number][] }

export function seededStateDict(model: string): StateDict {
  const spec = JSON.parse(readFileSync(join(DIR, `weights_${model}.json`), 'utf8')) as WeightSpec;
  const sd: StateDict = new Map();
  spec.tensors.forEach(([name, shape, lo, hi], k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    // Python: seed * 1000003 + k, taken mod 2^32
    const seed = Number((BigInt(spec.seed) * 1000003n + BigInt(k)) & 0xffffffffn);
    sd.set(name, { shape, data: seededUniform(seed, n, lo, hi) });
  });
  return sd;
}

export interface Case {
  meta: { image_size: [number, number]; resized_size: [number, number]; padded_size: [number, number]; num_detections: number; mask_rle: string[]; mask_area: number[] };
  get(name: string): FloatTensor;
  getInt(name: string): Int32Array;
}

export function loadCase(name: string): Case {
  const meta = JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8'));
  const bin = readFileSync(join(DIR, `${name}.bin`));
  const buf = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const arr = (n: string) => {
    const a = meta.arrays[n];
    if (!a) throw new Error(`fixture ${name} has no array ${n}`);
    return { a, count: a.shape.reduce((x: number, y: number) => x * y, 1) };
  };
  return {
    meta,
    get: (n) => { const { a, count } = arr(n); return { shape: a.shape, data: new Float32Array(buf, a.offset, count) }; },
    getInt: (n) => { const { a, count } = arr(n); return new Int32Array(buf, a.offset, count); },
  };
}

/** coffee.png repeated 2x in both axes (the no-resize input), as the generator builds it. */
export function upsample2x(img: ImageU8): ImageU8 {
  const w = img.width * 2, h = img.height * 2, c = img.channels;
  const data = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = ((y >> 1) * img.width + (x >> 1)) * c;
      data.set(img.data.subarray(s, s + c), (y * w + x) * c);
    }
  }
  return { data, width: w, height: h, channels: c };
}

export function boxIou(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number): number {
  const ix = Math.max(0, Math.min(a[ai + 2], b[bi + 2]) - Math.max(a[ai], b[bi]));
  const iy = Math.max(0, Math.min(a[ai + 3], b[bi + 3]) - Math.max(a[ai + 1], b[bi + 1]));
  const inter = ix * iy;
  const areaA = (a[ai + 2] - a[ai]) * (a[ai + 3] - a[ai + 1]);
  const areaB = (b[bi + 2] - b[bi]) * (b[bi + 3] - b[bi + 1]);
  return inter / (areaA + areaB - inter);
}

export interface MatchStats {
  reference: number;
  ours: number;
  matched: number;
  extra: number;
  minBoxIou: number;
  maxScoreDiff: number;
  minMaskIou: number;
}

/**
 * Greedy one-to-one match in reference order: same label, box IoU >= 0.99, |score diff| <= 1e-3, mask IoU
 * >= 0.97. Returns counts and the worst values among matched pairs.
 */
export function matchDetections(
  ref: { boxes: Float32Array; scores: Float32Array; labels: Int32Array; masks: RLE[] },
  ours: { boxes: Float32Array; scores: Float32Array; labels: Int32Array; masks: PastedMask[] },
  imH: number, imW: number,
): MatchStats {
  const used = new Uint8Array(ours.scores.length);
  const ourRle = ours.masks.map((m) => rleEncode(toFullMask(m, imH, imW), imH, imW));
  const st: MatchStats = { reference: ref.scores.length, ours: ours.scores.length, matched: 0, extra: 0, minBoxIou: 1, maxScoreDiff: 0, minMaskIou: 1 };
  for (let i = 0; i < ref.scores.length; i++) {
    let best = -1, bestIou = 0;
    for (let j = 0; j < ours.scores.length; j++) {
      if (used[j] || ours.labels[j] !== ref.labels[i]) continue;
      const v = boxIou(ref.boxes, i * 4, ours.boxes, j * 4);
      if (v > bestIou) { bestIou = v; best = j; }
    }
    if (best < 0 || bestIou < 0.99) continue;
    const ds = Math.abs(ref.scores[i] - ours.scores[best]);
    // Two empty masks (tiny boxes whose probabilities stay <= 0.5) agree; pycocotools' iou calls that 0.
    const bothEmpty = rleArea(ourRle[best]) === 0 && rleArea(ref.masks[i]) === 0;
    const maskIou = bothEmpty ? 1 : rleIou([ourRle[best]], [ref.masks[i]], [0])[0];
    if (ds > 1e-3 || maskIou < 0.97) continue;
    used[best] = 1;
    st.matched++;
    st.minBoxIou = Math.min(st.minBoxIou, bestIou);
    st.maxScoreDiff = Math.max(st.maxScoreDiff, ds);
    st.minMaskIou = Math.min(st.minMaskIou, maskIou);
  }
  st.extra = ours.scores.length - st.matched;
  return st;
}

export function referenceMasks(c: Case): RLE[] {
  const [h, w] = c.meta.image_size;
  return c.meta.mask_rle.map((s) => rleFrString(s, h, w));
}

export { rleDecode };
