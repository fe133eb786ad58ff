/**
 * Worker-thread side of eval/parallel.ts: evaluates its share of the categories and posts back
 * precision/recall (transferred, not copied).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { UserError } from '../core/errors.ts';
import { analyzeCategories } from './analyze.ts';
import { accumulateCategories } from './cocoeval.ts';
import type { CocoDt } from './load_res.ts';
import type { WorkerJob, WorkerReply } from './parallel.ts';
import { segmFromBytes } from './results_reader.ts';

function run(job: WorkerJob): WorkerReply {
  const { bytes: sent, segm, ...cols } = job.dt;
  // Structured cloning turns the Buffer into a plain Uint8Array (same shared memory): make it a Buffer once.
  const bytes = sent && { ...sent, buf: Buffer.from(sent.buf.buffer, sent.buf.byteOffset, sent.buf.byteLength) };
  const dt: CocoDt = {
    ...cols,
    bytes,
    segmAt: bytes ? (i) => segmFromBytes(bytes, i) : (i) => segm?.[i],
  };
  if (job.analyze) {
    const gt = { ...job.gt, categorySupercategories: job.gt.categorySupercategories ?? [] };
    return { ok: true, precision: analyzeCategories(gt, dt, job.iouType, job.params, job.categories), recall: new Float64Array(0) };
  }
  const acc = accumulateCategories(job.gt, dt, job.iouType, job.params, job.categories);
  return { ok: true, precision: acc.precision, recall: acc.recall };
}

const { job } = workerData as { job: WorkerJob };
let reply: WorkerReply;
try {
  reply = run(job);
} catch (err) {
  reply = { ok: false, message: (err as Error).message, user: err instanceof UserError };
}
if (reply.ok) parentPort!.postMessage(reply, [reply.precision.buffer as ArrayBuffer, reply.recall.buffer as ArrayBuffer]);
else parentPort!.postMessage(reply);
