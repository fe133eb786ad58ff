/**
 * COCOeval split over worker threads by category (categories are independent in evaluate + accumulate).
 * The main thread keeps one share of the categories and evaluates it while the workers do theirs; each
 * worker gets the typed columns (copied) and, for masks, the results file's bytes in shared memory (no
 * copy) or the segmentations of its own detections. Numbers are the same as in one thread: every
 * category is computed by the same code, only somewhere else.
 */
import { availableParallelism } from 'node:os';
import { UserError } from '../core/errors.ts';
import { siblingModule, startModuleWorker } from '../core/worker.ts';
import type { CocoGt, CocoSegmentation } from './coco.ts';
import { accumulateCategories, cocoEval, evalParams, finishEval, type CocoEvalOutput, type EvalGt } from './cocoeval.ts';
import type { CocoDt } from './load_res.ts';
import type { EvalParams, IouType } from './params.ts';
import type { RleBytes } from './results_reader.ts';

/** What a worker receives (structured-cloned; `bytes.buf` may be a view on a SharedArrayBuffer). */
export interface WorkerJob {
  iouType: IouType;
  params: EvalParams;
  categories: Int32Array;
  /** Run COCO's error analysis (eval/analyze.ts) for the categories instead of COCOeval; the reply's precision is its ps. */
  analyze?: boolean;
  gt: Omit<EvalGt, 'anns'> & {
    anns: Omit<EvalGt['anns'], 'segm'> & { segm: Array<CocoSegmentation | undefined> };
    categorySupercategories?: Array<string | undefined>;
  };
  dt: Omit<CocoDt, 'segmAt' | 'bytes'> & { bytes?: RleBytes; segm?: Array<CocoSegmentation | undefined> };
}

export type WorkerReply =
  | { ok: true; precision: Float64Array; recall: Float64Array }
  | { ok: false; message: string; user: boolean };

/** Threads worth using: one per core up to 4, and only for evaluations big enough to repay starting them. */
export function autoThreads(dt: CocoDt, gt: CocoGt): number {
  if (dt.n + gt.anns.n < 50_000 || gt.categoryIds.length < 2) return 1;
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** Splits categories into `parts` shares of about equal work (detections + GTs), largest first. */
export function splitCategories(dt: CocoDt, gt: EvalGt, parts: number): Int32Array[] {
  const K = gt.categoryIds.length;
  const work = new Float64Array(K);
  for (let i = 0; i < dt.n; i++) work[dt.cat[i]] += 1;
  for (let i = 0; i < gt.anns.n; i++) work[gt.anns.cat[i]] += 3; // matching and (segm) rasterising
  const order = Array.from({ length: K }, (_, k) => k).sort((a, b) => work[b] - work[a] || a - b);
  const load = new Float64Array(parts);
  const shares: number[][] = Array.from({ length: parts }, () => []);
  for (const k of order) {
    let best = 0;
    for (let s = 1; s < parts; s++) if (load[s] < load[best]) best = s;
    shares[best].push(k);
    load[best] += work[k];
  }
  return shares.map((s) => Int32Array.from(s.sort((a, b) => a - b)));
}

function jobFor(gt: EvalGt, dt: CocoDt, iouType: IouType, params: EvalParams, cats: Int32Array, allGt = false): WorkerJob {
  const mine = new Uint8Array(gt.categoryIds.length);
  for (const k of cats) mine[k] = 1;
  const segm = iouType === 'segm';
  const ga = gt.anns;
  // Only this share's segmentations travel (all of them for the error analysis, which matches across categories).
  const gtSegm: Array<CocoSegmentation | undefined> = new Array(ga.n);
  if (segm) for (let i = 0; i < ga.n; i++) if (allGt || mine[ga.cat[i]]) gtSegm[i] = ga.segm[i];
  const job: WorkerJob = {
    iouType,
    params,
    categories: cats,
    gt: {
      imageIds: gt.imageIds,
      heights: gt.heights,
      widths: gt.widths,
      categoryIds: gt.categoryIds,
      iouTypes: gt.iouTypes,
      name: gt.name,
      anns: { n: ga.n, img: ga.img, cat: ga.cat, id: ga.id, iscrowd: ga.iscrowd, area: ga.area, bbox: ga.bbox, segm: gtSegm },
    },
    dt: { n: dt.n, img: dt.img, cat: dt.cat, score: dt.score, boxBranch: dt.boxBranch, bbox: dt.bbox, area: dt.area, name: dt.name },
  };
  // Masks are read where loadRes takes areas or boxes from them, and for segm.
  const needMasks = segm || !dt.boxBranch;
  if (needMasks && dt.bytes && dt.bytes.buf.buffer instanceof SharedArrayBuffer) {
    job.dt.bytes = dt.bytes;
  } else if (needMasks) {
    const list: Array<CocoSegmentation | undefined> = new Array(dt.n);
    for (let i = 0; i < dt.n; i++) if (mine[dt.cat[i]]) list[i] = dt.segmAt(i);
    job.dt.segm = list;
  }
  return job;
}

/** A worker's share of COCO's error analysis: every GT mask travels, and the supercategories. */
export function analyzeJob(
  gt: EvalGt & { categorySupercategories: Array<string | undefined> },
  dt: CocoDt,
  iouType: IouType,
  params: EvalParams,
  cats: Int32Array,
): WorkerJob {
  const job = jobFor(gt, dt, iouType, params, cats, true);
  return { ...job, analyze: true, gt: { ...job.gt, categorySupercategories: gt.categorySupercategories } };
}

/** Starts a worker thread running eval/eval_worker.ts under tsx, and resolves with its reply. */
export function runWorker(job: WorkerJob): Promise<WorkerReply> {
  return new Promise((resolve, reject) => {
    const w = startModuleWorker(siblingModule('./eval_worker', import.meta.url), { job });
    let done = false;
    w.once('message', (m: WorkerReply) => {
      done = true;
      resolve(m);
      void w.terminate();
    });
    w.once('error', (e) => {
      if (!done) reject(e);
    });
    w.once('exit', (code) => {
      if (!done) reject(new Error(`evaluation worker exited with code ${code}`));
    });
  });
}

/**
 * Copies category k's entries of an array laid out [outer][K][inner] from a worker's reply into `dst`: the
 * worker filled only its own categories, the others are this thread's or another worker's.
 */
export function copyCategory(dst: Float64Array, src: Float64Array, outer: number, K: number, inner: number, k: number): void {
  for (let o = 0; o < outer; o++) {
    const at = (o * K + k) * inner;
    dst.set(src.subarray(at, at + inner), at);
  }
}

/**
 * cocoEval over `threads` threads (this one included). Falls back to one thread for threads <= 1.
 */
export async function cocoEvalThreads(
  gt: CocoGt,
  dt: CocoDt,
  iouType: IouType,
  params: EvalParams,
  threads: number,
): Promise<CocoEvalOutput> {
  const K = gt.categoryIds.length;
  if (threads <= 1 || K < 2) return cocoEval(gt, dt, iouType, params);
  const p = evalParams(params);
  const shares = splitCategories(dt, gt, Math.min(threads, K));
  const pending = shares.slice(1).map((cats) => ({ cats, reply: runWorker(jobFor(gt, dt, iouType, p, cats)) }));
  // This thread's share meanwhile.
  const acc = accumulateCategories(gt, dt, iouType, p, shares[0]);
  const [T, R, A, M] = [p.iouThrs.length, p.recThrs.length, p.areaRng.length, p.maxDets.length];
  for (const { cats, reply } of pending) {
    const r = await reply;
    if (!r.ok) throw r.user ? new UserError(r.message) : new Error(`evaluation worker failed: ${r.message}`);
    for (const k of cats) {
      copyCategory(acc.precision, r.precision, T * R, K, A * M, k); // [T][R][K][A][M]
      copyCategory(acc.recall, r.recall, T, K, A * M, k); // [T][K][A][M]
    }
  }
  return finishEval(iouType, acc, K);
}
