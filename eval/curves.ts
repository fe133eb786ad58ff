/**
 * Precision-recall curves read straight from COCOeval's accumulated precision[T, R, K, A, M]: for one
 * IoU threshold (or the mean over all of them) and one area range, at the largest maxDets, the mean over
 * the categories that have GT there (those whose entries are not -1), one value per recall threshold.
 */
import type { EvalParams } from './params.ts';
import type { NdArray } from './summary.ts';

/** 0.5 and 0.75 as pycocotools finds them (exact comparison), or 'mean' for IoU .5:.95. */
export type CurveIou = number | 'mean';

export interface PrCurve {
  iou: CurveIou;
  area: string;
  recall: number[];
  /** null where no category has GT in this area range. */
  precision: number[] | null;
}

/**
 * Mean precision over valid categories at each recall threshold; `categories` restricts the mean
 * (e.g. one category index for a per-category curve).
 */
export function prCurve(
  precision: NdArray,
  params: EvalParams,
  iou: CurveIou,
  area: string,
  categories?: readonly number[],
): PrCurve {
  const [T, R, K, A, M] = precision.shape;
  const a = params.areaRngLbl.indexOf(area);
  if (a < 0) throw new Error(`no area range "${area}" in the parameters`);
  const ts = iou === 'mean' ? Array.from({ length: T }, (_, t) => t) : [params.iouThrs.indexOf(iou)];
  if (ts[0] < 0) throw new Error(`no IoU threshold ${iou} in the parameters`);
  const ks = categories ?? Array.from({ length: K }, (_, k) => k);
  const d = precision.data;
  const m = M - 1;
  // A category is valid when it has GT in this area range: then every threshold and recall entry is set.
  const valid = ks.filter((k) => d[(((ts[0] * R + 0) * K + k) * A + a) * M + m] > -1);
  const recall = Array.from(params.recThrs);
  if (valid.length === 0) return { iou, area, recall, precision: null };
  const out = new Array<number>(R);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (const t of ts) for (const k of valid) s += d[(((t * R + r) * K + k) * A + a) * M + m];
    out[r] = s / (ts.length * valid.length);
  }
  return { iou, area, recall, precision: out };
}

/** The report's curves: IoU .5, .75 and .5:.95, each for every area range. */
export function standardCurves(precision: NdArray, params: EvalParams): PrCurve[] {
  const out: PrCurve[] = [];
  for (const iou of [0.5, 0.75, 'mean'] as const) {
    for (const area of params.areaRngLbl) out.push(prCurve(precision, params, iou, area));
  }
  return out;
}
