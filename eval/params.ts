/**
 * COCOeval's default detection parameters (pycocotools `Params.setDetParams`), reproduced bit for bit:
 * thresholds come from numpy's `linspace`, whose rounding makes e.g. iouThrs[8] = 0.8999999999999999 and
 * recThrs[35] = 0.35000000000000003, and those values decide matches and recall points.
 */

export type IouType = 'bbox' | 'segm';
export const IOU_TYPES: readonly IouType[] = ['bbox', 'segm'];

export interface EvalParams {
  iouThrs: Float64Array;
  recThrs: Float64Array;
  /** Ascending, as COCOeval sorts them; the last one is the per-image-per-category cut used for matching. */
  maxDets: number[];
  /** Both ends inclusive, compared with a GT's `area` field and a detection's loadRes area. */
  areaRng: Array<[number, number]>;
  areaRngLbl: string[];
}

/** numpy.linspace(start, stop, num, endpoint=True): y[i] = i * ((stop - start) / (num - 1)) + start, y[-1] = stop. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const y = new Float64Array(num);
  if (num === 1) {
    y[0] = start;
    return y;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) y[i] = i * step + start;
  y[num - 1] = stop;
  return y;
}

export function defaultParams(): EvalParams {
  return {
    iouThrs: linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0.0, 1.0, Math.round((1.0 - 0.0) / 0.01) + 1),
    maxDets: [1, 10, 100],
    areaRng: [
      [0, 1e10],
      [0, 32 ** 2],
      [32 ** 2, 96 ** 2],
      [96 ** 2, 1e10],
    ],
    areaRngLbl: ['all', 'small', 'medium', 'large'],
  };
}
