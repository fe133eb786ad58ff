/**
 * COCO evaluation, the library API: `evaluate(gt, results, { iouType })` reproduces pycocotools'
 * `COCO(gt); loadRes(results); COCOeval(...).evaluate(); accumulate(); summarize()` numbers exactly
 * (see eval/cocoeval.ts for the rules) and returns the 12 stats, per-category AP and the printed lines.
 */
import { UserError, invalidParameterError } from '../core/errors.ts';
import { MAX_THREADS } from '../core/options.ts';
import { analyzeErrors, type ErrorAnalysis } from './analyze.ts';
import { loadGt, type CocoDataset, type CocoGt } from './coco.ts';
import { cocoEval, type CocoEvalOutput } from './cocoeval.ts';
import { standardCurves, type PrCurve } from './curves.ts';
import { autoThreads, cocoEvalThreads } from './parallel.ts';
import { loadRes, type CocoDt, type CocoResult } from './load_res.ts';
import { defaultParams, IOU_TYPES, type EvalParams, type IouType } from './params.ts';
import { categoryApAt, STAT_NAMES, summaryLines, type NdArray, type StatName } from './summary.ts';

export type { CocoAnnotation, CocoCategory, CocoDataset, CocoGt, CocoImage, CocoSegmentation } from './coco.ts';
export type { CocoDt, CocoResult } from './load_res.ts';
export type { EvalParams, IouType } from './params.ts';
export type { NdArray, StatName } from './summary.ts';
export type { ErrorAnalysis, ErrorType } from './analyze.ts';
export type { CurveIou, PrCurve } from './curves.ts';
export { analyzeErrors, curveAreas, errorCurves, ERROR_TYPES } from './analyze.ts';
export { prCurve, standardCurves } from './curves.ts';
export { loadGt, readJsonFile } from './coco.ts';
export { loadRes } from './load_res.ts';
export { cocoEval } from './cocoeval.ts';
export { defaultParams } from './params.ts';
export { report, type ReportData, type ReportInput, type ReportOutput, type ReportSide } from './report.ts';
export { STAT_NAMES, summaryLines } from './summary.ts';

export interface EvaluateOptions {
  iouType: IouType;
  /** COCOeval parameters; defaults to pycocotools' (the 12 stats assume the default areas and maxDets). */
  params?: EvalParams;
  /** Also run COCO's error analysis (analyze(): C75..FN curves), about three evaluations more. */
  analyze?: boolean;
}

/** One category's row: AP@[.5:.95], AP@.5 and AP@.75 (area all, maxDets 100), -1 without non-ignored GT. */
export interface CategoryRow {
  id: number;
  name: string;
  supercategory?: string;
  AP: number;
  AP50: number;
  AP75: number;
}

export interface EvalResult {
  iouType: IouType;
  /** AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl; -1 where nothing to average. */
  stats: number[];
  /** The same 12 stats by name ({AP, AP50, ..., ARl}), as `--json` writes them. */
  statsByName: Record<StatName, number>;
  /** AP@[.5:.95] (area all, maxDets 100) by category id; -1 for categories without non-ignored GT. */
  perCategoryAp: Record<string, number>;
  /** Per-category rows with names, in ascending category id. */
  perCategory: CategoryRow[];
  /** PR curves at IoU .5, .75 and .5:.95 per area range, from `precision` (see eval/curves.ts). */
  prCurves: PrCurve[];
  /** COCO's error analysis, when asked for (`analyze: true`). */
  errorAnalysis?: ErrorAnalysis;
  /** The 12 lines COCOeval.summarize prints. */
  summary: string[];
  /** precision[T, R, K, A, M] and recall[T, K, A, M] as in COCOeval.eval, K in ascending category id. */
  precision: NdArray;
  recall: NdArray;
  params: EvalParams;
  categoryIds: number[];
  categoryNames: string[];
  /** Detections and GT annotations taken into account (GT: on GT images and categories). */
  numDetections: number;
  numGt: number;
}

/** A GT given as a file path, parsed JSON, or already loaded with `loadGt`. */
export type GtInput = string | CocoDataset | CocoGt;
/** Results given as a file path or a parsed array (validated entry by entry, so any array is accepted). */
export type ResultsInput = string | CocoResult[] | unknown[];

function isLoadedGt(v: unknown): v is CocoGt {
  return typeof v === 'object' && v !== null && 'imageIndex' in v && 'anns' in v;
}

export function parseIouTypes(spec: string): IouType[] {
  const types = spec.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (types.length === 0) throw new UserError('--iou-type needs bbox, segm or bbox,segm');
  for (const t of types) {
    if (!(IOU_TYPES as readonly string[]).includes(t)) throw new UserError(`unknown iou type "${t}" (use bbox, segm or bbox,segm)`);
  }
  return [...new Set(types)] as IouType[];
}

function checkIouType(t: unknown, name: string): IouType {
  if (!(IOU_TYPES as readonly unknown[]).includes(t)) throw invalidParameterError(name, IOU_TYPES.map((x) => `'${x}'`).join(' or '), t);
  return t as IouType;
}

/** The library's inputs, before any work: one UserError naming the parameter, what it must be and what came. */
function checkInputs(gt: unknown, results: unknown, iouTypes: readonly unknown[], params: unknown, name = 'iouTypes'): IouType[] {
  if (typeof gt !== 'string' && (gt === null || typeof gt !== 'object' || Array.isArray(gt))) {
    throw invalidParameterError('gt', 'a GT file path, a parsed COCO dataset or a loadGt() result', gt);
  }
  if (typeof results !== 'string' && !Array.isArray(results)) throw invalidParameterError('results', 'a results file path or an array of results', results);
  if (!Array.isArray(iouTypes) || iouTypes.length === 0) throw invalidParameterError(name, "a non-empty array of 'bbox' / 'segm'", iouTypes);
  const types = iouTypes.map((t, i) => checkIouType(t, iouTypes.length === 1 && name === 'options.iouType' ? name : `${name}[${i}]`));
  if (params !== undefined && (params === null || typeof params !== 'object')) throw invalidParameterError('params', 'a COCOeval parameter object (defaultParams())', params);
  return [...new Set(types)];
}

function prepareGt(gt: GtInput, iouTypes: IouType[]): CocoGt {
  if (!isLoadedGt(gt)) return loadGt(gt, { iouTypes });
  const missing = iouTypes.filter((t) => !gt.iouTypes.includes(t));
  if (missing.length) throw new UserError(`the GT was loaded without iouType ${missing[0]}: pass it in loadGt's iouTypes`);
  return gt;
}

function toResult(gt: CocoGt, dt: CocoDt, out: CocoEvalOutput, analyze = false): EvalResult {
  const iouType = out.iouType;
  const perCategoryAp: Record<string, number> = {};
  gt.categoryIds.forEach((id, k) => (perCategoryAp[String(id)] = out.perCategoryAp[k]));
  const t50 = out.params.iouThrs.indexOf(0.5);
  const t75 = out.params.iouThrs.indexOf(0.75);
  const perCategory: CategoryRow[] = Array.from(gt.categoryIds, (id, k) => ({
    id,
    name: gt.categoryNames[k],
    ...(gt.categorySupercategories[k] !== undefined ? { supercategory: gt.categorySupercategories[k] } : {}),
    AP: out.perCategoryAp[k],
    AP50: t50 < 0 ? -1 : categoryApAt(out.precision, k, t50),
    AP75: t75 < 0 ? -1 : categoryApAt(out.precision, k, t75),
  }));
  const statsByName = Object.fromEntries(STAT_NAMES.map((n, i) => [n, out.stats[i]])) as Record<StatName, number>;
  return {
    iouType,
    stats: out.stats,
    statsByName,
    perCategoryAp,
    perCategory,
    prCurves: standardCurves(out.precision, out.params),
    ...(analyze ? { errorAnalysis: analyzeErrors(gt, dt, iouType, out.params) } : {}),
    summary: summaryLines(out.stats, out.params),
    precision: out.precision,
    recall: out.recall,
    params: out.params,
    categoryIds: Array.from(gt.categoryIds),
    categoryNames: gt.categoryNames,
    numDetections: dt.n,
    numGt: gt.anns.n,
  };
}

/** Evaluates one results set against a GT for one iou type. */
export function evaluate(gt: GtInput, results: ResultsInput, options: EvaluateOptions): EvalResult {
  // No default iouType: bbox and segm give different numbers, so a missing one is refused, never guessed.
  if (options === null || typeof options !== 'object') throw invalidParameterError('options', "an object with iouType 'bbox' or 'segm'", options);
  const [t] = checkInputs(gt, results, [options.iouType], options.params, 'options.iouType');
  return evaluateAll(gt, results, [t], options.params, options.analyze)[t]!;
}

/** Evaluates several iou types, loading and parsing the GT and the results once. */
export function evaluateAll(
  gt: GtInput,
  results: ResultsInput,
  iouTypes: readonly IouType[],
  params: EvalParams = defaultParams(),
  analyze = false,
): Partial<Record<IouType, EvalResult>> {
  const types = checkInputs(gt, results, iouTypes, params);
  const G = prepareGt(gt, types);
  return evaluateLoaded(G, loadRes(G, results, { iouTypes: types }), types, params, analyze);
}

/** evaluateAll on a GT and results already loaded (loadGt, loadRes) for these iou types. */
export function evaluateLoaded(
  G: CocoGt,
  D: CocoDt,
  iouTypes: readonly IouType[],
  params: EvalParams = defaultParams(),
  analyze = false,
): Partial<Record<IouType, EvalResult>> {
  const out: Partial<Record<IouType, EvalResult>> = {};
  for (const t of iouTypes) out[t] = toResult(G, D, cocoEval(G, D, t, params), analyze);
  return out;
}

export interface AsyncEvalOptions {
  params?: EvalParams;
  /** Threads, this one included (default 1); 'auto': one per core (up to 4) for large evaluations. */
  threads?: number | 'auto';
  /** Also run COCO's error analysis (in this thread). */
  analyze?: boolean;
}

/** evaluateAll with the categories split over worker threads (same numbers). */
export async function evaluateAllAsync(
  gt: GtInput,
  results: ResultsInput,
  iouTypes: readonly IouType[],
  options: AsyncEvalOptions = {},
): Promise<Partial<Record<IouType, EvalResult>>> {
  if (options === null || typeof options !== 'object') throw invalidParameterError('options', 'an object', options);
  const types = checkInputs(gt, results, iouTypes, options.params);
  const t = options.threads;
  if (t !== undefined && t !== 'auto' && !(Number.isInteger(t) && t >= 1 && t <= MAX_THREADS)) {
    throw invalidParameterError('options.threads', `an integer in [1, ${MAX_THREADS}] or 'auto'`, t);
  }
  const G = prepareGt(gt, types);
  return evaluateLoadedAsync(G, loadRes(G, results, { iouTypes: types }), types, options);
}

/** evaluateAllAsync on a GT and results already loaded for these iou types. */
export async function evaluateLoadedAsync(
  G: CocoGt,
  D: CocoDt,
  iouTypes: readonly IouType[],
  options: AsyncEvalOptions = {},
): Promise<Partial<Record<IouType, EvalResult>>> {
  const params = options.params ?? defaultParams();
  const threads = options.threads === 'auto' ? autoThreads(D, G) : (options.threads ?? 1);
  const out: Partial<Record<IouType, EvalResult>> = {};
  for (const t of iouTypes) out[t] = toResult(G, D, await cocoEvalThreads(G, D, t, params, threads), options.analyze);
  return out;
}
