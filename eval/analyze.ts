/**
 * COCO's error analysis (cocoapi CocoEval.analyze, Derek Hoiem style, as ported to pycocotools by
 * detectron/mmdetection): cumulative PR curves that show what precision would be if each kind of error
 * were forgiven in turn.
 *   C75, C50  PR at IoU .75 and .5 (maxDets 100);
 *   Loc       PR at IoU .1 (localisation errors forgiven);
 *   Sim       per category k: its detections against a GT where the other categories of k's supercategory
 *             are relabelled k and made crowd (so ignored: pycocotools sets ignore = iscrowd), IoU .1;
 *   Oth       the same with every other category relabelled;
 *   BG        1 up to the recall Oth reaches (all background false positives forgiven);
 *   FN        1 everywhere (the missed objects forgiven).
 * -1 (no GT) becomes 0, as analyze() does before plotting. A category without a supercategory forms its
 * own, so its Sim curve equals Loc. The reference is scripts/fixtures/make_analyze_fixtures.py.
 */
import type { CocoGt } from './coco.ts';
import { accumulateCategories, type EvalGt } from './cocoeval.ts';
import { UserError } from '../core/errors.ts';
import { toRle, type CocoDt } from './load_res.ts';
import { analyzeJob, copyCategory, runWorker, splitCategories } from './parallel.ts';
import { defaultParams, type EvalParams, type IouType } from './params.ts';
import type { NdArray } from './summary.ts';

export const ERROR_TYPES = ['C75', 'C50', 'Loc', 'Sim', 'Oth', 'BG', 'FN'] as const;
export type ErrorType = (typeof ERROR_TYPES)[number];

export interface ErrorAnalysis {
  iouType: IouType;
  recThrs: Float64Array;
  areaLabels: string[];
  categoryIds: number[];
  /** analyze()'s precision ps[E, R, K, A] for the 7 error types (maxDets 100), -1 already turned to 0. */
  ps: NdArray;
}

/** The GT with the annotations of `others` (category indices, k itself excluded) relabelled k and made crowd. */
function confusedGt(gt: EvalGt, k: number, others: Uint8Array): EvalGt {
  const a = gt.anns;
  const cat = a.cat.slice();
  const iscrowd = a.iscrowd.slice();
  for (let i = 0; i < a.n; i++) {
    if (cat[i] !== k && others[cat[i]]) {
      cat[i] = k;
      iscrowd[i] = 1;
    }
  }
  return { ...gt, anns: { ...a, cat, iscrowd } };
}

/**
 * The GT with every mask rasterised once: analyze() evaluates each GT again for every category its image
 * has detections of, and rasterising costs far more than the IoU. Same masks, so the same IoUs.
 */
function rasterisedGt<G extends EvalGt>(gt: G): G {
  const a = gt.anns;
  const rle = a.segm.map((s, i) => toRle(s!, gt.heights[a.img[i]], gt.widths[a.img[i]], `${gt.name ?? 'GT'}: annotation id ${a.id[i]}`));
  return { ...gt, anns: { ...a, rle } };
}

/**
 * Category indices sharing k's supercategory (k included); a missing supercategory is a group of one.
 */
export function supercategoryMask(supercategories: ReadonlyArray<string | undefined>, k: number): Uint8Array {
  const m = new Uint8Array(supercategories.length);
  const s = supercategories[k];
  for (let j = 0; j < m.length; j++) m[j] = j === k || (s !== undefined && supercategories[j] === s) ? 1 : 0;
  return m;
}

/** The GT fields analyze() reads. */
export type AnalyzeGt = EvalGt & Pick<CocoGt, 'categorySupercategories'>;

/**
 * analyze()'s ps[E, R, K, A] rows of the category indices `ks` (the other categories' rows stay 0).
 * Categories are independent, which lets worker threads split them (analyzeErrorsThreads).
 */
export function analyzeCategories(gt: AnalyzeGt, dt: CocoDt, iouType: IouType, params: EvalParams, ks: Int32Array): Float64Array {
  if (iouType === 'segm' && !gt.anns.rle) gt = rasterisedGt(gt);
  const base: EvalParams = { ...params, iouThrs: Float64Array.from([0.75, 0.5, 0.1]), maxDets: [100] };
  const loose: EvalParams = { ...base, iouThrs: Float64Array.from([0.1]) };
  const K = gt.categoryIds.length;
  const R = params.recThrs.length;
  const A = params.areaRng.length;
  const ps = new Float64Array(ERROR_TYPES.length * R * K * A);
  const at = (e: number, r: number, k: number, a: number): number => ((e * R + r) * K + k) * A + a;
  // precision[T, R, K, A, M = 1] of each run: copy rows e into ps.
  const copyRun = (src: Float64Array, t: number, e: number, k: number): void => {
    for (let r = 0; r < R; r++) for (let a = 0; a < A; a++) ps[at(e, r, k, a)] = Math.max(0, src[((t * R + r) * K + k) * A + a]);
  };
  const all = accumulateCategories(gt, dt, iouType, base, ks);
  const everyOther = new Uint8Array(K).fill(1);
  const k1 = new Int32Array(1);
  for (const k of ks) {
    for (let t = 0; t < 3; t++) copyRun(all.precision, t, t, k);
    k1[0] = k;
    const oth = accumulateCategories(confusedGt(gt, k, everyOther), dt, iouType, loose, k1);
    copyRun(oth.precision, 0, 4, k);
    // Sim needs a run of its own only when k's supercategory is neither k alone (then Sim is Loc) nor
    // every category (then Sim is Oth): the GT it would evaluate is the same.
    const sup = supercategoryMask(gt.categorySupercategories, k);
    let peers = 0;
    for (let j = 0; j < K; j++) peers += sup[j];
    if (peers === 1) copyRun(all.precision, 2, 3, k);
    else if (peers === K) copyRun(oth.precision, 0, 3, k);
    else copyRun(accumulateCategories(confusedGt(gt, k, sup), dt, iouType, loose, k1).precision, 0, 3, k);
    for (let r = 0; r < R; r++) {
      for (let a = 0; a < A; a++) {
        ps[at(5, r, k, a)] = ps[at(4, r, k, a)] > 0 ? 1 : 0;
        ps[at(6, r, k, a)] = 1;
      }
    }
  }
  return ps;
}

function wrap(gt: AnalyzeGt, iouType: IouType, params: EvalParams, ps: Float64Array): ErrorAnalysis {
  return {
    iouType,
    recThrs: params.recThrs,
    areaLabels: params.areaRngLbl,
    categoryIds: Array.from(gt.categoryIds),
    ps: { shape: [ERROR_TYPES.length, params.recThrs.length, gt.categoryIds.length, params.areaRng.length], data: ps },
  };
}

/** analyze() for one iou type; `gt` and `dt` loaded for it. Costs about three evaluations. */
export function analyzeErrors(gt: AnalyzeGt, dt: CocoDt, iouType: IouType, params: EvalParams = defaultParams()): ErrorAnalysis {
  const ks = Int32Array.from({ length: gt.categoryIds.length }, (_, k) => k);
  return wrap(gt, iouType, params, analyzeCategories(gt, dt, iouType, params, ks));
}

/** analyzeErrors with the categories split over `threads` threads, this one included (same numbers). */
export async function analyzeErrorsThreads(
  gt: AnalyzeGt,
  dt: CocoDt,
  iouType: IouType,
  params: EvalParams,
  threads: number,
): Promise<ErrorAnalysis> {
  const K = gt.categoryIds.length;
  if (threads <= 1 || K < 2) return analyzeErrors(gt, dt, iouType, params);
  const shares = splitCategories(dt, gt, Math.min(threads, K));
  const pending = shares.slice(1).map((cats) => ({ cats, reply: runWorker(analyzeJob(gt, dt, iouType, params, cats)) }));
  const ps = analyzeCategories(gt, dt, iouType, params, shares[0]);
  const [E, R, A] = [ERROR_TYPES.length, params.recThrs.length, params.areaRng.length];
  for (const { cats, reply } of pending) {
    const r = await reply;
    if (!r.ok) throw r.user ? new UserError(r.message) : new Error(`analysis worker failed: ${r.message}`);
    for (const k of cats) copyCategory(ps, r.precision, E * R, K, A, k); // [E][R][K][A]
  }
  return wrap(gt, iouType, params, ps);
}

/** Curves [E][A][R]: the mean of ps over the given category indices (default all, as analyze's 'overall'). */
export function errorCurves(an: ErrorAnalysis, categories?: readonly number[]): number[][][] {
  const [E, R, K, A] = an.ps.shape;
  const ks = categories ?? Array.from({ length: K }, (_, k) => k);
  const d = an.ps.data;
  return Array.from({ length: E }, (_, e) =>
    Array.from({ length: A }, (_, a) =>
      Array.from({ length: R }, (_, r) => {
        let s = 0;
        for (const k of ks) s += d[((e * R + r) * K + k) * A + a];
        return ks.length ? s / ks.length : 0;
      }),
    ),
  );
}

/** The area under each curve (mean over recall thresholds), [E][A], as analyze's legends print it. */
export function curveAreas(curves: number[][][]): number[][] {
  return curves.map((perArea) => perArea.map((c) => c.reduce((s, v) => s + v, 0) / c.length));
}
