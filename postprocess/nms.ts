/**
 * Non-maximum suppression, bit-exact with torchvision 0.14 (`torchvision.ops.nms` / `batched_nms`) and with
 * mmcv 1.x (`mmcv.ops.nms` / `batched_nms`) on CPU.
 *
 * Both kernels compute areas and IoU in float32 and visit boxes in score order; we replay both (Math.fround
 * after each float op, postprocess/sort.ts for the order) so kept indices match exactly, ties included.
 * The frameworks differ in:
 *  - visit order of tied scores: torchvision sorts stably (index order), mmcv with torch's unstable sort;
 *  - threshold type: torchvision compares the float IoU with a double threshold, mmcv with a float one;
 *  - batched NMS: torchvision offsets boxes per class (<= 1000 boxes) or runs plain per-class NMS on the raw
 *    boxes (> 1000 boxes); mmcv always offsets boxes and loops per class only from `split_thr` (10000) boxes;
 *  - mmcv returns the kept boxes with their scores (`dets`) as well as the indices.
 *
 * Speed (5000 boxes in well under 1 ms on one core, `fasternet bench nms`): above 64 boxes only pairs that can
 * exceed the threshold are visited (size-level grids, gridGreedy), and the per-box passes and the greedy scan
 * run in a small WebAssembly module (postprocess/nms_greedy.wat: f32 arithmetic is IEEE single precision, as
 * the C++ float kernels; the IoU is branch-free, with f32x4.pmin/pmax for std::min/std::max). A JS twin of
 * the module's functions gives the same results where WebAssembly is missing (useWasmNms(false) selects it).
 * The greedy engine (visit-order scan, grids, WebAssembly) is postprocess/nms_grid.ts.
 */

import { argsortDescending, argsortDescendingStable } from './sort.ts';
import { nmsInOrder, type NmsStrategy } from './nms_grid.ts';

export { useWasmNms, type NmsStrategy } from './nms_grid.ts';

const f32 = Math.fround;

function checkInputs(boxes: Float32Array, scores: Float32Array, what: string): number {
  const n = scores.length;
  if (boxes.length !== n * 4) throw new Error(`${what}: boxes has ${boxes.length} values, expected ${n * 4} for ${n} scores`);
  return n;
}

/**
 * torchvision.ops.nms: indices of kept boxes, in decreasing score order.
 * boxes: n*4 (x1, y1, x2, y2); IoU > iouThreshold suppresses.
 */
export function nms(boxes: Float32Array, scores: Float32Array, iouThreshold: number, opts: { strategy?: NmsStrategy } = {}): Int32Array {
  checkInputs(boxes, scores, 'nms');
  // torchvision 0.14's CPU kernel sorts with stable=True (mmcv's does not).
  return nmsInOrder(boxes, argsortDescendingStable(scores), iouThreshold, 0, Infinity, opts.strategy);
}

export interface MmcvNmsOptions {
  /** mmcv's legacy box extent: w = x2 - x1 + offset (0 or 1). Default 0. */
  offset?: number;
  /** Only boxes with score > scoreThreshold take part (when > 0). Default 0. */
  scoreThreshold?: number;
  /** Keep at most this many (when > 0). Default -1. */
  maxNum?: number;
  /** Candidate search; 'auto' (default) = spatial grid above 64 boxes. Results never depend on it. */
  strategy?: NmsStrategy;
}

/** mmcv.ops.nms (CPU): kept indices in decreasing score order; the IoU threshold is a float32. */
export function nmsMmcv(boxes: Float32Array, scores: Float32Array, iouThreshold: number, opts: MmcvNmsOptions = {}): Int32Array {
  const n = checkInputs(boxes, scores, 'nmsMmcv');
  const offset = opts.offset ?? 0;
  if (offset !== 0 && offset !== 1) throw new Error(`nmsMmcv: offset must be 0 or 1, got ${offset}`);
  const scoreThr = opts.scoreThreshold ?? 0;
  const maxNum = opts.maxNum ?? -1;
  let valid: Int32Array | null = null;
  let b = boxes;
  let s = scores;
  if (scoreThr > 0) {
    let m = 0;
    const tmp = new Int32Array(n);
    for (let i = 0; i < n; i++) if (scores[i] > scoreThr) tmp[m++] = i;
    valid = tmp.slice(0, m);
    b = gatherBoxes(boxes, valid);
    s = gather(scores, valid);
  }
  let keep = nmsInOrder(b, argsortDescending(s), f32(iouThreshold), offset, Infinity, opts.strategy);
  if (maxNum > 0 && keep.length > maxNum) keep = keep.slice(0, maxNum);
  if (valid) for (let k = 0; k < keep.length; k++) keep[k] = valid[keep[k]];
  return keep;
}

function gather(a: Float32Array, ind: Int32Array): Float32Array {
  const out = new Float32Array(ind.length);
  for (let k = 0; k < ind.length; k++) out[k] = a[ind[k]];
  return out;
}

function gatherBoxes(boxes: Float32Array, ind: Int32Array): Float32Array {
  const out = new Float32Array(ind.length * 4);
  for (let k = 0; k < ind.length; k++) out.set(boxes.subarray(ind[k] * 4, ind[k] * 4 + 4), k * 4);
  return out;
}

/** boxes + idx * (max(boxes) + 1) in float32, as both frameworks build their class-separated copies. */
function offsetBoxes(boxes: Float32Array, idxs: Int32Array): Float32Array {
  let max = -Infinity;
  for (let k = 0; k < boxes.length; k++) {
    const v = boxes[k];
    // torch.max propagates NaN
    if (v > max || v !== v) max = v;
    if (max !== max) break;
  }
  const step = f32(max + 1);
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < idxs.length; i++) {
    const off = f32(idxs[i] * step);
    for (let c = 0; c < 4; c++) out[i * 4 + c] = boxes[i * 4 + c] + off;
  }
  return out;
}

/**
 * Stable counting sort of the positions `seq` (indices into idxs) by class, classes ascending.
 * Returns the reordered positions and where each class starts.
 */
function partitionByClass(idxs: Int32Array, seq: Int32Array): { members: Int32Array; first: Int32Array } {
  const n = seq.length;
  let lo = idxs[0], hi = idxs[0];
  for (let i = 1; i < idxs.length; i++) {
    if (idxs[i] < lo) lo = idxs[i];
    if (idxs[i] > hi) hi = idxs[i];
  }
  let slotOf: (c: number) => number;
  let nc: number;
  if (hi - lo <= 4 * n + 1024) {
    nc = hi - lo + 1;
    slotOf = (c) => c - lo;
  } else { // sparse class ids
    const classes = Array.from(new Set(idxs)).sort((p, q) => p - q);
    const slot = new Map(classes.map((c, k) => [c, k]));
    nc = classes.length;
    slotOf = (c) => slot.get(c)!;
  }
  const first = new Int32Array(nc + 1);
  const cls = new Int32Array(n);
  for (let k = 0; k < n; k++) first[(cls[k] = slotOf(idxs[seq[k]])) + 1]++;
  for (let c = 0; c < nc; c++) first[c + 1] += first[c];
  const fill = first.slice(0, nc);
  const members = new Int32Array(n);
  for (let k = 0; k < n; k++) members[fill[cls[k]]++] = seq[k];
  return { members, first };
}

/**
 * Per-class NMS (each class alone, visiting `classOrder(c)`), then the kept indices sorted by score as torch
 * sorts them (unstable, postprocess/sort.ts). The greedy runs on the boxes in place: no per-class copies.
 */
function perClassNms(
  boxes: Float32Array, scores: Float32Array, thr: number, nClasses: number, classOrder: (c: number) => Int32Array,
): Int32Array {
  const n = scores.length;
  const keepMask = new Uint8Array(n);
  for (let c = 0; c < nClasses; c++) {
    const order = classOrder(c);
    if (order.length === 0) continue;
    const kept = nmsInOrder(boxes, order, thr, 0, Infinity);
    for (let k = 0; k < kept.length; k++) keepMask[kept[k]] = 1;
  }
  let nk = 0;
  for (let i = 0; i < n; i++) if (keepMask[i]) nk++;
  const kept = new Int32Array(nk);
  const keys = new Float32Array(nk);
  for (let i = 0, k = 0; i < n; i++) {
    if (keepMask[i]) {
      keys[k] = scores[i];
      kept[k++] = i;
    }
  }
  // torch's (unstable) sort of the kept scores, applied to the kept indices
  const order = argsortDescending(keys);
  for (let k = 0; k < nk; k++) order[k] = kept[order[k]];
  return order;
}

/**
 * torchvision's per-class path: each class visited in its stable descending score order. A stable sort of all
 * scores, then a stable partition by class, gives exactly that (ties stay in index order) with one sort.
 */
function perClassNmsStable(boxes: Float32Array, scores: Float32Array, idxs: Int32Array, thr: number): Int32Array {
  const { members, first } = partitionByClass(idxs, argsortDescendingStable(scores));
  return perClassNms(boxes, scores, thr, first.length - 1, (c) => members.subarray(first[c], first[c + 1]));
}

/** mmcv's split path: each class visited in torch's unstable sort order of its own scores (as gathered). */
function perClassNmsUnstable(boxes: Float32Array, scores: Float32Array, idxs: Int32Array, thr: number): Int32Array {
  const all = new Int32Array(idxs.length);
  for (let i = 0; i < all.length; i++) all[i] = i;
  const { members, first } = partitionByClass(idxs, all);
  return perClassNms(boxes, scores, thr, first.length - 1, (c) => {
    const sub = members.subarray(first[c], first[c + 1]);
    const order = argsortDescending(gather(scores, sub));
    for (let k = 0; k < order.length; k++) order[k] = sub[order[k]];
    return order;
  });
}

export interface BatchedNmsOptions {
  /** Which framework's batched_nms to replay. Default 'torchvision'. */
  flavor?: 'torchvision' | 'mmcv';
  /** mmcv: boxes from this count on are processed class by class. Default 10000. */
  splitThr?: number;
  /** mmcv: ignore classes. Default false. */
  classAgnostic?: boolean;
}

/**
 * Class-aware NMS: boxes with different `idxs` never suppress each other. Returns kept indices in
 * decreasing score order.
 * torchvision 0.14 (CPU): n <= 1000 offsets boxes by idx*(max+1) and runs one NMS; n > 1000 runs NMS per
 * class on the raw boxes. mmcv 1.x: always offsets (unless classAgnostic); n >= splitThr runs NMS per class
 * on the offset boxes. Float rounding of the offset boxes can flip an IoU right at the threshold, which is
 * why the paths are replayed separately.
 */
export function batchedNms(
  boxes: Float32Array,
  scores: Float32Array,
  idxs: Int32Array,
  iouThreshold: number,
  opts: BatchedNmsOptions = {},
): Int32Array {
  const n = checkInputs(boxes, scores, 'batchedNms');
  if (idxs.length !== n) throw new Error(`batchedNms: idxs has ${idxs.length} values, expected ${n}`);
  if (n === 0) return new Int32Array(0);
  if ((opts.flavor ?? 'torchvision') === 'torchvision') {
    if (n * 4 > 4000) return perClassNmsStable(boxes, scores, idxs, iouThreshold);
    return nms(offsetBoxes(boxes, idxs), scores, iouThreshold);
  }
  const forNms = opts.classAgnostic ? boxes : offsetBoxes(boxes, idxs);
  const splitThr = opts.splitThr ?? 10000;
  const thr = f32(iouThreshold);
  if (n < splitThr) return nmsInOrder(forNms, argsortDescending(scores), thr, 0, Infinity);
  return perClassNmsUnstable(forNms, scores, idxs, thr);
}

export interface MmcvNmsConfig {
  iouThreshold: number;
  splitThr?: number;
  classAgnostic?: boolean;
  /** Only used by mmcv's split path, as in mmcv. */
  maxNum?: number;
}

/**
 * mmcv.ops.batched_nms: `dets` is (k, 5) rows of the ORIGINAL boxes with their score, `keep` the indices.
 * Pass `null` as config to skip NMS and just sort by score, as mmcv does.
 */
export function batchedNmsMmcv(
  boxes: Float32Array,
  scores: Float32Array,
  idxs: Int32Array,
  cfg: MmcvNmsConfig | null,
): { dets: Float32Array; keep: Int32Array } {
  const n = checkInputs(boxes, scores, 'batchedNmsMmcv');
  let keep: Int32Array;
  if (cfg === null) keep = argsortDescending(scores);
  else {
    keep = batchedNms(boxes, scores, idxs, cfg.iouThreshold, {
      flavor: 'mmcv',
      splitThr: cfg.splitThr,
      classAgnostic: cfg.classAgnostic,
    });
    if (n >= (cfg.splitThr ?? 10000) && cfg.maxNum !== undefined && cfg.maxNum > 0 && keep.length > cfg.maxNum) {
      keep = keep.slice(0, cfg.maxNum);
    }
  }
  const dets = new Float32Array(keep.length * 5);
  for (let k = 0; k < keep.length; k++) {
    const i = keep[k];
    dets[k * 5] = boxes[i * 4];
    dets[k * 5 + 1] = boxes[i * 4 + 1];
    dets[k * 5 + 2] = boxes[i * 4 + 2];
    dets[k * 5 + 3] = boxes[i * 4 + 3];
    dets[k * 5 + 4] = scores[i];
  }
  return { dets, keep };
}

/**
 * The candidates of mmdet 2.25 multiclass_nms: the (box, class) pairs with score > scoreThr of `multiScores`
 * (n, numClasses+1), background last, in row-major order: flat index `inds` (= box * numClasses + class),
 * label and score of each.
 */
export function multiclassCandidates(
  multiScores: Float32Array, numClasses: number, scoreThr: number,
): { inds: Int32Array; labels: Int32Array; scores: Float32Array } {
  const C = numClasses;
  const n = multiScores.length / (C + 1);
  if (!Number.isInteger(n)) throw new Error(`multiclassNms: ${multiScores.length} scores do not split into rows of ${C + 1}`);
  let m = 0;
  for (let i = 0; i < n; i++) for (let c = 0, o = i * (C + 1); c < C; c++) if (multiScores[o + c] > scoreThr) m++;
  const inds = new Int32Array(m);
  const labels = new Int32Array(m);
  const scores = new Float32Array(m);
  for (let i = 0, k = 0; i < n; i++) {
    for (let c = 0, o = i * (C + 1); c < C; c++) {
      const s = multiScores[o + c];
      if (!(s > scoreThr)) continue;
      inds[k] = i * C + c;
      labels[k] = c;
      scores[k++] = s;
    }
  }
  return { inds, labels, scores };
}

/**
 * The NMS part of multiclass_nms on its candidates (multiclassCandidates) with their boxes (m, 4): class-aware
 * NMS, then the first maxNum. Lets a caller decode only the candidates' boxes (decoding is per pair).
 */
export function multiclassNmsOfCandidates(
  boxes: Float32Array, cand: { inds: Int32Array; labels: Int32Array; scores: Float32Array }, cfg: MmcvNmsConfig, maxNum = -1,
): { dets: Float32Array; labels: Int32Array; inds: Int32Array } {
  const { inds, labels, scores } = cand;
  if (labels.length === 0) return { dets: new Float32Array(0), labels, inds };
  let { dets, keep } = batchedNmsMmcv(boxes, scores, labels, cfg);
  if (maxNum > 0 && keep.length > maxNum) {
    dets = dets.slice(0, maxNum * 5);
    keep = keep.slice(0, maxNum);
  }
  const outLabels = new Int32Array(keep.length);
  const outInds = new Int32Array(keep.length);
  for (let k = 0; k < keep.length; k++) {
    outLabels[k] = labels[keep[k]];
    outInds[k] = inds[keep[k]];
  }
  return { dets, labels: outLabels, inds: outInds };
}

/**
 * mmdet 2.25 multiclass_nms: `multiBboxes` is (n, 4) shared or (n, numClasses*4) per class, `multiScores`
 * (n, numClasses+1) with background last. Keeps scores > scoreThr, class-aware NMS, then the first maxNum.
 * Returns dets (k, 5), labels and the flat (box, class) indices `inds` (= box * numClasses + class).
 */
export function multiclassNms(
  multiBboxes: Float32Array,
  multiScores: Float32Array,
  numClasses: number,
  scoreThr: number,
  cfg: MmcvNmsConfig,
  maxNum = -1,
): { dets: Float32Array; labels: Int32Array; inds: Int32Array } {
  const C = numClasses;
  const n = multiScores.length / (C + 1);
  if (!Number.isInteger(n)) throw new Error(`multiclassNms: ${multiScores.length} scores do not split into rows of ${C + 1}`);
  const perClass = multiBboxes.length === n * C * 4;
  if (!perClass && multiBboxes.length !== n * 4) throw new Error(`multiclassNms: boxes must be (n, 4) or (n, ${C}*4)`);
  const cand = multiclassCandidates(multiScores, C, scoreThr);
  const m = cand.inds.length;
  const boxes = new Float32Array(m * 4);
  for (let k = 0; k < m; k++) {
    const src = (perClass ? cand.inds[k] : Math.floor(cand.inds[k] / C)) * 4;
    boxes[k * 4] = multiBboxes[src];
    boxes[k * 4 + 1] = multiBboxes[src + 1];
    boxes[k * 4 + 2] = multiBboxes[src + 2];
    boxes[k * 4 + 3] = multiBboxes[src + 3];
  }
  return multiclassNmsOfCandidates(boxes, cand, cfg, maxNum);
}
