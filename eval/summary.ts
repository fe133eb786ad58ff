/**
 * COCOeval.summarize: the 12 stats from the accumulated precision/recall arrays, the 12 printed lines, and
 * the per-category AP that detectron2 and mmdetection report. Means are taken as numpy takes them
 * (pairwise summation over the C-order selection) so that stats agree with pycocotools to the last bit.
 */
import type { EvalParams, IouType } from './params.ts';

/** A row-major array of float64 and its shape, e.g. precision [T, R, K, A, M]. */
export interface NdArray {
  shape: number[];
  data: Float64Array;
}

/** numpy's pairwise_sum for float64 (blocks of 128, 8 accumulators), the sum np.mean uses on 1-D data. */
export function pairwiseSum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[start + j];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/**
 * np.add.reduce of a 1-D float64 array: the reduction loop sees the data in buffers of 8192 values, pairwise
 * summed within each and added up in order (checked against numpy 1.24 on random arrays).
 */
export function numpySum(a: ArrayLike<number>): number {
  let acc = 0;
  for (let s = 0; s < a.length; s += 8192) acc += pairwiseSum(a, s, Math.min(8192, a.length - s));
  return acc;
}

/** np.mean(values) of the entries > -1, or -1 when there are none (COCOeval's `_summarize`). */
export function meanValid(values: ArrayLike<number>): number {
  const kept: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i] > -1) kept.push(values[i]);
  return kept.length === 0 ? -1 : numpySum(kept) / kept.length;
}

interface StatSpec {
  ap: boolean;
  iouThr?: number;
  areaRng: string;
  maxDets: number;
}

function statSpecs(p: EvalParams): StatSpec[] {
  const [m0, m1, m2] = [p.maxDets[0], p.maxDets[1], p.maxDets[2]];
  return [
    { ap: true, areaRng: 'all', maxDets: m2 },
    { ap: true, iouThr: 0.5, areaRng: 'all', maxDets: m2 },
    { ap: true, iouThr: 0.75, areaRng: 'all', maxDets: m2 },
    { ap: true, areaRng: 'small', maxDets: m2 },
    { ap: true, areaRng: 'medium', maxDets: m2 },
    { ap: true, areaRng: 'large', maxDets: m2 },
    { ap: false, areaRng: 'all', maxDets: m0 },
    { ap: false, areaRng: 'all', maxDets: m1 },
    { ap: false, areaRng: 'all', maxDets: m2 },
    { ap: false, areaRng: 'small', maxDets: m2 },
    { ap: false, areaRng: 'medium', maxDets: m2 },
    { ap: false, areaRng: 'large', maxDets: m2 },
  ];
}

/** One `_summarize` value: the selection precision[t?, :, :, a, m] (or recall[t?, :, a, m]) in C order. */
function summarizeOne(spec: StatSpec, p: EvalParams, precision: NdArray, recall: NdArray): number {
  const [T, R, K, A, M] = precision.shape;
  const a = p.areaRngLbl.indexOf(spec.areaRng);
  const m = p.maxDets.indexOf(spec.maxDets);
  if (a < 0 || m < 0) return -1;
  let ts: number[] = Array.from({ length: T }, (_, t) => t);
  // np.where(iouThr == p.iouThrs): an exact float comparison, as in pycocotools.
  if (spec.iouThr !== undefined) ts = ts.filter((t) => p.iouThrs[t] === spec.iouThr);
  const picked: number[] = [];
  for (const t of ts) {
    if (spec.ap) {
      for (let r = 0; r < R; r++) {
        for (let k = 0; k < K; k++) picked.push(precision.data[(((t * R + r) * K + k) * A + a) * M + m]);
      }
    } else {
      for (let k = 0; k < K; k++) picked.push(recall.data[((t * K + k) * A + a) * M + m]);
    }
  }
  return meanValid(picked);
}

/** The 12 COCO detection stats (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl). */
export function computeStats(precision: NdArray, recall: NdArray, p: EvalParams): number[] {
  return statSpecs(p).map((s) => summarizeOne(s, p, precision, recall));
}

/**
 * AP@[.5:.95] of category index k, area all, the largest maxDets: mean of precision[:, :, k, 0, -1] over
 * its entries > -1, -1 where the category has no non-ignored GT.
 */
export function categoryAp(precision: NdArray, k: number): number {
  const [T, R, K, A, M] = precision.shape;
  const vals = new Float64Array(T * R);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < R; r++) vals[t * R + r] = precision.data[(((t * R + r) * K + k) * A + 0) * M + (M - 1)];
  }
  return meanValid(vals);
}

/** AP of category index k at IoU threshold index t (area all, largest maxDets), -1 without GT. */
export function categoryApAt(precision: NdArray, k: number, t: number): number {
  const [, R, K, A, M] = precision.shape;
  const vals = new Float64Array(R);
  for (let r = 0; r < R; r++) vals[r] = precision.data[(((t * R + r) * K + k) * A + 0) * M + (M - 1)];
  return meanValid(vals);
}

/**
 * Python's '{:0.3f}'.format(x): correctly rounded with ties to even, where JS toFixed rounds ties up
 * (0.0625 prints 0.062 in Python, 0.063 with toFixed).
 */
export function formatFixed3(x: number): string {
  const exact = Math.abs(x).toFixed(25);
  const dot = exact.indexOf('.');
  const tail = exact.slice(dot + 4);
  if (/^50*$/.test(tail)) {
    const lastDigit = Number(exact[dot + 3]);
    if (lastDigit % 2 === 0) {
      const truncated = exact.slice(0, dot + 4);
      return (x < 0 ? '-' : '') + truncated;
    }
  }
  return x.toFixed(3);
}

/** The 12 lines COCOeval.summarize prints, byte for byte. */
export function summaryLines(stats: readonly number[], p: EvalParams): string[] {
  const iouAll = `${p.iouThrs[0].toFixed(2)}:${p.iouThrs[p.iouThrs.length - 1].toFixed(2)}`;
  return statSpecs(p).map((s, i) => {
    const title = (s.ap ? 'Average Precision' : 'Average Recall').padEnd(18);
    const type = s.ap ? '(AP)' : '(AR)';
    const iou = (s.iouThr === undefined ? iouAll : s.iouThr.toFixed(2)).padEnd(9);
    const area = s.areaRng.padStart(6);
    const maxDets = String(s.maxDets).padStart(3);
    return ` ${title} ${type} @[ IoU=${iou} | area=${area} | maxDets=${maxDets} ] = ${formatFixed3(stats[i])}`;
  });
}

/** Short column labels for the 12 stats, in order. */
export const STAT_NAMES = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] as const;
export type StatName = (typeof STAT_NAMES)[number];

export type { IouType };
