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
 */

import { argsortDescending, argsortDescendingStable, sortPairsDescending } from './sort.ts';

const f32 = Math.fround;

function checkInputs(boxes: Float32Array, scores: Float32Array, what: string): number {
  const n = scores.length;
  if (boxes.length !== n * 4) throw new Error(`${what}: boxes has ${boxes.length} values, expected ${n * 4} for ${n} scores`);
  return n;
}

export type NmsStrategy = 'auto' | 'grid' | 'brute';

/**
 * Greedy NMS over `order` (visit order); returns kept original indices in visit order.
 * `thr` is compared with the float32 IoU as given (pass Math.fround(t) for mmcv's float threshold).
 * `offset` is mmcv's legacy +1 box extent (0 or 1).
 *
 * The kernels compare every kept box with every later live box. We reach the same decisions while only
 * looking at boxes that can possibly exceed the threshold: IoU <= ow/max(w) (the intersection ow*min(h)
 * over the area of the wider box, ow = overlap width), so a box j that box i can suppress has w_j in
 * (thr w_i, w_i / thr) and a centre within w_i * max(1 - thr, 1/(2 thr) - 1/2) of i's (same for y). Boxes
 * live in a uniform grid by centre; each kept box scans the cells of that window (with a 0.1% margin, far
 * above float rounding of the IoU). Whether j is suppressed depends only on the IoU of (i, j), computed
 * exactly as the kernel does, so the kept set and its order are identical. Empty, negative or non-finite
 * boxes never suppress nor get suppressed when thr >= 0 (their IoU is 0, -0 or NaN).
 */
function nmsInOrder(
  boxes: Float32Array, order: Int32Array, thr: number, offset: number, maxOut: number, strategy: NmsStrategy = 'auto',
): Int32Array {
  const n = order.length;
  // Sorted, contiguous copies: the inner loops then stream through memory.
  const x1 = new Float64Array(n);
  const y1 = new Float64Array(n);
  const x2 = new Float64Array(n);
  const y2 = new Float64Array(n);
  const area = new Float64Array(n);
  let finite = true;
  for (let k = 0; k < n; k++) {
    const b = order[k] * 4;
    const a = boxes[b], c = boxes[b + 1], d = boxes[b + 2], e = boxes[b + 3];
    x1[k] = a;
    y1[k] = c;
    x2[k] = d;
    y2[k] = e;
    area[k] = offset === 0 ? f32(f32(d - a) * f32(e - c)) : f32(f32(f32(d - a) + offset) * f32(f32(e - c) + offset));
    if (!(Number.isFinite(a) && Number.isFinite(c) && Number.isFinite(d) && Number.isFinite(e))) finite = false;
  }
  const useGrid = strategy === 'grid' || (strategy === 'auto' && n > 64);
  if (useGrid && finite && thr >= 0.05) return gridGreedy(order, x1, y1, x2, y2, area, thr, offset, maxOut);
  return bruteGreedy(order, x1, y1, x2, y2, area, thr, offset, maxOut);
}

/** The kernel's test: does kept box i suppress box j (float32 IoU > thr)? */
function iouAbove(
  x1: Float64Array, y1: Float64Array, x2: Float64Array, y2: Float64Array, area: Float64Array,
  i: number, j: number, thr: number, offset: number,
): boolean {
  // std::max(a, b) = a < b ? b : a and std::min(a, b) = b < a ? b : a (matters for NaN only)
  const xx1 = x1[i] < x1[j] ? x1[j] : x1[i];
  const xx2 = x2[j] < x2[i] ? x2[j] : x2[i];
  let ww = offset === 0 ? f32(xx2 - xx1) : f32(f32(xx2 - xx1) + offset);
  if (thr >= 0 && !(ww > 0)) return false;
  const yy1 = y1[i] < y1[j] ? y1[j] : y1[i];
  const yy2 = y2[j] < y2[i] ? y2[j] : y2[i];
  let hh = offset === 0 ? f32(yy2 - yy1) : f32(f32(yy2 - yy1) + offset);
  if (thr >= 0 && !(hh > 0)) return false;
  if (!(ww > 0)) ww = 0; // std::max(0, v) is 0 for NaN too
  if (!(hh > 0)) hh = 0;
  const inter = f32(ww * hh);
  return f32(inter / f32(f32(area[i] + area[j]) - inter)) > thr;
}

function bruteGreedy(
  order: Int32Array, x1: Float64Array, y1: Float64Array, x2: Float64Array, y2: Float64Array, area: Float64Array,
  thr: number, offset: number, maxOut: number,
): Int32Array {
  const n = order.length;
  // Live list of not-yet-suppressed sorted positions, compacted as we go (same visit order as the kernel).
  const live = new Int32Array(n);
  for (let k = 0; k < n; k++) live[k] = k;
  let nLive = n;
  const keep = new Int32Array(Math.min(n, maxOut));
  let nKeep = 0;
  let head = 0;
  while (head < nLive && nKeep < maxOut) {
    const i = live[head++];
    keep[nKeep++] = order[i];
    let w = head;
    for (let r = head; r < nLive; r++) {
      const j = live[r];
      if (!iouAbove(x1, y1, x2, y2, area, i, j, thr, offset)) live[w++] = j;
    }
    nLive = w;
  }
  return keep.slice(0, nKeep);
}

const GRID_MAX = 64;

function gridGreedy(
  order: Int32Array, x1: Float64Array, y1: Float64Array, x2: Float64Array, y2: Float64Array, area: Float64Array,
  thr: number, offset: number, maxOut: number,
): Int32Array {
  const n = order.length;
  const cx = new Float64Array(n), cy = new Float64Array(n), bw = new Float64Array(n), bh = new Float64Array(n);
  const valid = new Uint8Array(n);
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  const sampleW: number[] = [], sampleH: number[] = [];
  const step = Math.max(1, Math.floor(n / 1024));
  for (let k = 0; k < n; k++) {
    const w = x2[k] - x1[k] + offset, h = y2[k] - y1[k] + offset;
    if (!(w > 0 && h > 0)) continue;
    valid[k] = 1;
    bw[k] = w;
    bh[k] = h;
    cx[k] = 0.5 * (x1[k] + x2[k] + offset);
    cy[k] = 0.5 * (y1[k] + y2[k] + offset);
    if (cx[k] < minX) minX = cx[k];
    if (cx[k] > maxX) maxX = cx[k];
    if (cy[k] < minY) minY = cy[k];
    if (cy[k] > maxY) maxY = cy[k];
    if (k % step === 0) {
      sampleW.push(w);
      sampleH.push(h);
    }
  }
  const median = (a: number[]): number => (a.sort((p, q) => p - q), a.length ? a[a.length >> 1] : 1);
  const csx = Math.max(median(sampleW), (maxX - minX) / GRID_MAX, 1e-6);
  const csy = Math.max(median(sampleH), (maxY - minY) / GRID_MAX, 1e-6);
  const gx = Math.min(GRID_MAX, Math.floor((maxX - minX) / csx) + 1);
  const gy = Math.min(GRID_MAX, Math.floor((maxY - minY) / csy) + 1);
  const cellX = (v: number): number => Math.min(gx - 1, Math.max(0, Math.floor((v - minX) / csx)));
  const cellY = (v: number): number => Math.min(gy - 1, Math.max(0, Math.floor((v - minY) / csy)));
  // Counting sort of valid boxes into cells; filled in visit order, so each cell lists ascending positions.
  const nc = gx * gy;
  const cellOf = new Int32Array(n);
  const start = new Int32Array(nc + 1);
  for (let k = 0; k < n; k++) {
    if (!valid[k]) continue;
    cellOf[k] = cellY(cy[k]) * gx + cellX(cx[k]);
    start[cellOf[k] + 1]++;
  }
  for (let c = 0; c < nc; c++) start[c + 1] += start[c];
  const len = new Int32Array(nc);
  const items = new Int32Array(start[nc]);
  for (let k = 0; k < n; k++) if (valid[k]) items[start[cellOf[k]] + len[cellOf[k]]++] = k;

  const suppressed = new Uint8Array(n);
  const keep = new Int32Array(Math.min(n, maxOut));
  let nKeep = 0;
  // Window half-size per unit of the kept box's size: the overlap ow <= (w_i + w_j)/2 - |dcx| must exceed
  // thr * max(w_i, w_j) with w_j in (thr w_i, w_i / thr), so |dcx| < w_i * max(1 - thr, 1/(2 thr) - 1/2).
  const tl = thr * 0.999; // lowered threshold: a margin far above the float rounding of the IoU
  const reach = Math.max(1 - tl, 1 / (2 * tl) - 0.5) + 1e-3;
  for (let i = 0; i < n && nKeep < maxOut; i++) {
    if (suppressed[i]) continue;
    keep[nKeep++] = order[i];
    if (!valid[i]) continue;
    const wi = bw[i], hi = bh[i];
    const rx = reach * bw[i] + 1e-6 * (Math.abs(cx[i]) + 1);
    const ry = reach * bh[i] + 1e-6 * (Math.abs(cy[i]) + 1);
    const ca = cellX(cx[i] - rx), cb = cellX(cx[i] + rx);
    const ra = cellY(cy[i] - ry), rb = cellY(cy[i] + ry);
    for (let r = ra; r <= rb; r++) {
      for (let c = r * gx + ca, ce = r * gx + cb; c <= ce; c++) {
        const s = start[c], e = s + len[c];
        let w = s;
        for (let t = s; t < e; t++) {
          const j = items[t];
          // Positions <= i are done (kept or suppressed) for all later kept boxes too: drop them.
          if (j <= i || suppressed[j]) continue;
          // IoU <= min(w)/max(w) and min(h)/max(h): sizes too different cannot reach the threshold
          const wj = bw[j], hj = bh[j];
          if (wj <= tl * wi || wj * tl >= wi || hj <= tl * hi || hj * tl >= hi) {
            items[w++] = j;
            continue;
          }
          if (iouAbove(x1, y1, x2, y2, area, i, j, thr, offset)) suppressed[j] = 1;
          else items[w++] = j;
        }
        len[c] = w - s;
      }
    }
  }
  return keep.slice(0, nKeep);
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

/** Per-class NMS on subsets (classes ascending), then the kept indices sorted by score as torch sorts them. */
function perClassNms(
  boxes: Float32Array,
  scores: Float32Array,
  idxs: Int32Array,
  run: (b: Float32Array, s: Float32Array) => Int32Array,
): Int32Array {
  const n = scores.length;
  const classes = Array.from(new Set(idxs)).sort((a, b) => a - b);
  const keepMask = new Uint8Array(n);
  const members = new Int32Array(n);
  for (const cls of classes) {
    let m = 0;
    for (let i = 0; i < n; i++) if (idxs[i] === cls) members[m++] = i;
    const sub = members.subarray(0, m);
    const kept = run(gatherBoxes(boxes, sub), gather(scores, sub));
    for (let k = 0; k < kept.length; k++) keepMask[sub[kept[k]]] = 1;
  }
  let nk = 0;
  for (let i = 0; i < n; i++) if (keepMask[i]) nk++;
  const keys = new Float64Array(nk);
  const ind = new Int32Array(nk);
  for (let i = 0, k = 0; i < n; i++) {
    if (keepMask[i]) {
      keys[k] = scores[i];
      ind[k++] = i;
    }
  }
  sortPairsDescending(keys, ind, 0, nk);
  return ind;
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
    if (n * 4 > 4000) return perClassNms(boxes, scores, idxs, (b, s) => nms(b, s, iouThreshold));
    return nms(offsetBoxes(boxes, idxs), scores, iouThreshold);
  }
  const forNms = opts.classAgnostic ? boxes : offsetBoxes(boxes, idxs);
  const splitThr = opts.splitThr ?? 10000;
  const thr = f32(iouThreshold);
  if (n < splitThr) return nmsInOrder(forNms, argsortDescending(scores), thr, 0, Infinity);
  return perClassNms(forNms, scores, idxs, (b, s) => nmsInOrder(b, argsortDescending(s), thr, 0, Infinity));
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
  let m = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < C; c++) if (multiScores[i * (C + 1) + c] > scoreThr) m++;
  const inds = new Int32Array(m);
  const labels = new Int32Array(m);
  const scores = new Float32Array(m);
  const boxes = new Float32Array(m * 4);
  for (let i = 0, k = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      const s = multiScores[i * (C + 1) + c];
      if (!(s > scoreThr)) continue;
      inds[k] = i * C + c;
      labels[k] = c;
      scores[k] = s;
      const src = perClass ? (i * C + c) * 4 : i * 4;
      boxes.set(multiBboxes.subarray(src, src + 4), k * 4);
      k++;
    }
  }
  if (m === 0) return { dets: new Float32Array(0), labels, inds };
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
