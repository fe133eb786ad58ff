/**
 * The IoU engine of pycocotools.mask: bbIou and rleIou with the same doubles bit for bit. `iou` never decodes
 * bitmaps: like rleIou it checks boxes first and only looks at pairs whose boxes overlap; it then cuts each
 * mask into per-column pieces once and sums the overlaps over the columns both boxes share, 4 columns a step
 * in a WebAssembly SIMD kernel (postprocess/mask_iou.wat, built into mask_iou_wasm.ts; plain-JS loops with
 * the same results where WebAssembly is missing).
 */
import { UserError } from '../core/errors.ts';
import { MASK_IOU_WASM } from './mask_iou_wasm.ts';
import { bboxIntoSmall, int32View, UINT_RANGE, type RLE } from './mask_rle.ts';

// fmin/fmax as C99 defines them: a NaN operand is ignored.
function fmin(a: number, b: number): number {
  return a < b || b !== b ? a : b;
}

function fmax(a: number, b: number): number {
  return a > b || b !== b ? a : b;
}

function isCrowd(iscrowd: ArrayLike<number>, g: number): boolean {
  // pycocotools casts iscrowd to uint8 first (0.5 -> 0, 256 -> 0).
  return (iscrowd[g] & 255) !== 0;
}

function bbIouInto(
  dt: Float64Array,
  gt: Float64Array,
  m: number,
  n: number,
  iscrowd: ArrayLike<number>,
  o: Float64Array,
): void {
  for (let g = 0; g < n; g++) {
    const G = g * 4;
    const gx = gt[G];
    const gy = gt[G + 1];
    const gw = gt[G + 2];
    const gh = gt[G + 3];
    const ga = gw * gh;
    const crowd = isCrowd(iscrowd, g);
    for (let d = 0; d < m; d++) {
      const D = d * 4;
      const k = d * n + g;
      o[k] = 0;
      const w = fmin(dt[D + 2] + dt[D], gw + gx) - fmax(dt[D], gx);
      if (w <= 0) continue;
      const h = fmin(dt[D + 3] + dt[D + 1], gh + gy) - fmax(dt[D + 1], gy);
      if (h <= 0) continue;
      const i = w * h;
      const da = dt[D + 2] * dt[D + 3];
      const u = crowd ? da : da + ga - i;
      o[k] = i / u;
    }
  }
}

/**
 * bbIou on xywh boxes packed n*4: row-major [dt.length][gt.length]; crowd GT divides by the detection's box
 * area. Arithmetic in maskApi.c's order, so ties at IoU thresholds break exactly as in pycocotools.
 */
export function bboxIou(dt: Float64Array, gt: Float64Array, iscrowd: ArrayLike<number>, out?: Float64Array): Float64Array {
  if (dt.length % 4 !== 0 || gt.length % 4 !== 0) throw new Error('bboxIou: boxes must be packed as n*4 values');
  const m = dt.length / 4;
  const n = gt.length / 4;
  if (iscrowd.length !== n) throw new Error(`bboxIou: iscrowd has ${iscrowd.length} entries for ${n} GT boxes`);
  const o = outArray(out, m * n);
  bbIouInto(dt, gt, m, n, iscrowd, o);
  return o;
}

/*
 * Column pieces for the fast IoU path. The foreground of an RLE, over the columns bx .. bx + bw - 1 of its
 * box, is cut at column boundaries and written into one shared int32 pool (no allocation per mask; the pool
 * is the WebAssembly kernels' memory when those are available). At pool offset H:
 *   P[H] = number of columns with more than two pieces, P[H + 1] = offset of their list (column indices c),
 *   P[H + 2] = 1 if some column has exactly two pieces;
 *   S1 = H + 3, E1 = S1 + bw, S2 = E1 + bw, E2 = S2 + bw: rows P[S1 + c] .. P[E1 + c] - 1 of column c's first
 *       piece and P[S2 + c] .. P[E2 + c] - 1 of its second; [0, 0) where there is none, and for all slots of
 *       a column of more than two pieces (those columns are counted separately, from the piece list);
 *   ptr = E2 + bw: column c owns pieces P[ptr + c] .. P[ptr + c + 1] - 1 of
 *   ys = ptr + bw + 1: piece p covers rows P[ys + 2p] .. P[ys + 2p + 1] - 1.
 * Pieces of one mask are disjoint, so two masks share, in a column, the sum over piece pairs of
 * max(0, min(ends) - max(starts)).
 */
const HEADER = 3;

interface Kernel {
  memory: WebAssembly.Memory;
  inter1: (a: number, sa: number, b: number, sb: number, n4: number) => number;
  inter2: (a: number, sa: number, b: number, sb: number, n4: number) => number;
}

let kernel: Kernel | null | undefined;
let kernelEnabled = true;
let pool = new Int32Array(1 << 16);

function loadKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  kernel = null;
  try {
    const bytes = Buffer.from(MASK_IOU_WASM, 'base64');
    if (WebAssembly.validate(bytes)) {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
      kernel = inst.exports as unknown as Kernel;
    }
  } catch {
    kernel = null; // no WebAssembly SIMD here: the JS loops give the same numbers
  }
  return kernel;
}

/**
 * Chooses the column-intersection kernels for iou: WebAssembly SIMD (default where the runtime has it) or
 * plain JS. Both give identical results; the switch exists for tests and benchmarks. Returns whether
 * WebAssembly is now in use.
 */
export function useWasmIou(on: boolean): boolean {
  kernelEnabled = on;
  return activeKernel() !== null;
}

function activeKernel(): Kernel | null {
  if (!kernelEnabled) return null;
  const k = loadKernel();
  if (k !== null && pool.buffer !== k.memory.buffer) pool = new Int32Array(k.memory.buffer);
  return k;
}

function poolReserve(used: number, extra: number): void {
  const need = used + extra;
  if (need <= pool.length) return;
  const k = kernelEnabled ? loadKernel() : null;
  if (k !== null && pool.buffer === k.memory.buffer) {
    const bytes = Math.max(need * 4, pool.length * 8);
    k.memory.grow(Math.ceil((bytes - k.memory.buffer.byteLength) / 65536));
    pool = new Int32Array(k.memory.buffer);
  } else {
    const grown = new Int32Array(Math.max(need, pool.length * 2));
    grown.set(pool.subarray(0, used));
    pool = grown;
  }
}

/**
 * Writes the column pieces of `rle` (box columns bx .. bx + bw - 1) at pool[at..] and returns the pool size
 * after them, or -1 where the fast path would not reproduce maskApi.c: a zero-length run after the first
 * count (rleIou's loop can stop early on those) or positions past int32.
 */
function columnRuns(rle: RLE, bxIn: number, bwIn: number, at: number): number {
  const h = rle.h;
  const counts = int32View(rle.counts);
  const bx = bxIn | 0;
  const bw = bwIn | 0;
  const m = counts.length;
  if (h * rle.w > 2147483647 || h === 0) return -1;
  // A box wider than the image is rleToBbox's uint wrap-around for RLEs whose foreground runs are all
  // empty; those have zero-length runs and take the literal path.
  if (bw <= 0 || bw > rle.w) return -1;
  const S1 = at + HEADER;
  const ptr = S1 + 4 * bw;
  const ys = ptr + bw + 1;
  // pieces <= foreground runs + column boundaries crossed; then the list of many-piece columns
  poolReserve(ys, 2 * ((m >>> 1) + bw) + bw);
  const P = pool;
  P.fill(0, S1, ptr);
  let col = bx; // next column whose ptr entry is still to be written
  let np = 0;
  let pos = counts[0];
  let x = 0; // column of the current run start, found by stepping (see bboxIntoSmall)
  let x0 = 0;
  for (let j = 1; j < m; j++) {
    const c = counts[j];
    if (c <= 0) return -1; // empty, or 2^31 and more (int32 view)
    const next = pos + c;
    if (j & 1) {
      let s = pos;
      if (s - x0 >= 8 * h) {
        x = (s / h) | 0;
        x0 = x * h;
      } else {
        while (s - x0 >= h) {
          x++;
          x0 += h;
        }
      }
      while (s < next) {
        while (col <= x) P[ptr + col++ - bx] = np;
        const colEnd = x0 + h;
        const pe = next < colEnd ? next : colEnd;
        P[ys + 2 * np] = s - x0;
        P[ys + 2 * np + 1] = pe - x0;
        np++;
        s = pe;
        if (s === colEnd) {
          x++;
          x0 = colEnd;
        }
      }
    }
    pos = next;
  }
  while (col <= bx + bw) P[ptr + col++ - bx] = np;
  const list = ys + 2 * np;
  let many = 0;
  let two = 0;
  for (let c = 0; c < bw; c++) {
    const p0 = P[ptr + c];
    const k = P[ptr + c + 1] - p0;
    if (k === 0) continue;
    if (k <= 2) {
      P[S1 + c] = P[ys + 2 * p0];
      P[S1 + bw + c] = P[ys + 2 * p0 + 1];
      if (k === 2) {
        P[S1 + 2 * bw + c] = P[ys + 2 * p0 + 2];
        P[S1 + 3 * bw + c] = P[ys + 2 * p0 + 3];
        two = 1;
      }
    } else {
      P[list + many++] = c;
    }
  }
  P[at] = many;
  P[at + 1] = list;
  P[at + 2] = two;
  return list + many;
}

/** Exact pixels shared in column ca of A and cb of B (pool offsets H of their blocks), from their pieces. */
function columnExact(A: number, bwA: number, ca: number, B: number, bwB: number, cb: number): number {
  const P = pool;
  const ptrA = A + HEADER + 4 * bwA;
  const ptrB = B + HEADER + 4 * bwB;
  const ysA = ptrA + bwA + 1;
  const ysB = ptrB + bwB + 1;
  let ia = P[ptrA + ca];
  const aEnd = P[ptrA + ca + 1];
  let ib = P[ptrB + cb];
  const bEnd = P[ptrB + cb + 1];
  let i = 0;
  while (ia < aEnd && ib < bEnd) {
    const sa = P[ysA + 2 * ia];
    const ea = P[ysA + 2 * ia + 1];
    const sb = P[ysB + 2 * ib];
    const eb = P[ysB + 2 * ib + 1];
    const s = sa > sb ? sa : sb;
    const e = ea < eb ? ea : eb;
    if (e > s) i += e - s;
    if (ea < eb) ia++;
    else ib++;
  }
  return i;
}

/** First entry of a column list (pool[list .. list + n)) whose column bx + c is >= x. */
function firstColumnFrom(list: number, n: number, bx: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (bx + pool[list + mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Pixels shared in the columns x0 .. x1 - 1 where A or B has more than two pieces (the kernels count 0 there). */
function manyPieceIntersection(
  A: number,
  bxA: number,
  bwA: number,
  B: number,
  bxB: number,
  bwB: number,
  x0: number,
  x1: number,
): number {
  const P = pool;
  const nA = P[A];
  const nB = P[B];
  const lA = P[A + 1];
  const lB = P[B + 1];
  let ka = firstColumnFrom(lA, nA, bxA, x0);
  let kb = firstColumnFrom(lB, nB, bxB, x0);
  let i = 0;
  for (;;) {
    const xa = ka < nA ? bxA + P[lA + ka] : x1;
    const xb = kb < nB ? bxB + P[lB + kb] : x1;
    const x = xa < xb ? xa : xb;
    if (x >= x1) break;
    i += columnExact(A, bwA, x - bxA, B, bwB, x - bxB);
    if (xa === x) ka++;
    if (xb === x) kb++;
  }
  return i;
}

// max(0, min(e0, e1) - max(s0, s1)) on int32 without branches: overlaps of real masks change from column to
// column in ways branch predictors miss.
function overlap(s0: number, e0: number, s1: number, e1: number): number {
  const s = s0 - ((s0 - s1) & ((s0 - s1) >> 31));
  const e = e1 + ((e0 - e1) & ((e0 - e1) >> 31));
  const d = e - s;
  return d & ~(d >> 31);
}

/** JS kernel, first pieces only: columns a .. a + n - 1 of A (slot stride sa ints) against B. */
function jsInter1(a: number, sa: number, b: number, sb: number, n: number): number {
  const P = pool;
  let i = 0;
  for (let c = 0; c < n; c++) i += overlap(P[a + c], P[a + sa + c], P[b + c], P[b + sb + c]);
  return i;
}

/** JS kernel, two pieces a column. */
function jsInter2(a: number, sa: number, b: number, sb: number, n: number): number {
  const P = pool;
  let i = 0;
  for (let c = 0; c < n; c++) {
    const as1 = P[a + c];
    const ae1 = P[a + sa + c];
    const as2 = P[a + 2 * sa + c];
    const ae2 = P[a + 3 * sa + c];
    const bs1 = P[b + c];
    const be1 = P[b + sb + c];
    const bs2 = P[b + 2 * sb + c];
    const be2 = P[b + 3 * sb + c];
    i += overlap(as1, ae1, bs1, be1) + overlap(as1, ae1, bs2, be2) + overlap(as2, ae2, bs1, be1) + overlap(as2, ae2, bs2, be2);
  }
  return i;
}

/** Pixels shared by the column pieces at pool offsets A and B over columns x0 .. x1 - 1 (inside both boxes). */
function columnIntersection(
  k: Kernel | null,
  A: number,
  bxIn: number,
  bwIn: number,
  B: number,
  bxBIn: number,
  bwBIn: number,
  x0In: number,
  x1In: number,
): number {
  // Box coordinates arrive as doubles; int32 keeps the index arithmetic integral.
  const bxA = bxIn | 0;
  const bwA = bwIn | 0;
  const bxB = bxBIn | 0;
  const bwB = bwBIn | 0;
  const x0 = x0In | 0;
  const x1 = x1In | 0;
  const a = A + HEADER + x0 - bxA;
  const b = B + HEADER + x0 - bxB;
  const n = x1 - x0;
  const two = pool[A + 2] | pool[B + 2];
  let i: number;
  if (k !== null) {
    // the kernels take groups of 4 columns; the last n % 4 go through the JS loop
    const n4 = n >>> 2;
    const t = n4 << 2;
    i = two ? k.inter2(4 * a, 4 * bwA, 4 * b, 4 * bwB, n4) : k.inter1(4 * a, 4 * bwA, 4 * b, 4 * bwB, n4);
    if (t < n) i += two ? jsInter2(a + t, bwA, b + t, bwB, n - t) : jsInter1(a + t, bwA, b + t, bwB, n - t);
  } else {
    i = two ? jsInter2(a, bwA, b, bwB, n) : jsInter1(a, bwA, b, bwB, n);
  }
  if (pool[A] > 0 || pool[B] > 0) i += manyPieceIntersection(A, bxA, bwA, B, bxB, bwB, x0, x1);
  return i;
}

/**
 * rleIou's run-merging loop, kept literally for RLEs the fast path refuses. It walks two RLEs as rleMerge's
 * loop does (mergeTwo in mask_rle.ts), as maskApi.c repeats that walk too: the steps differ (sums here, runs
 * written there), and one walker taking a callback would slow both hot loops.
 */
function literalIntersectUnion(A: Uint32Array, B: Uint32Array, out: Float64Array): void {
  const ka = A.length;
  const kb = B.length;
  let ca = A[0];
  let cb = B[0];
  let va = 0;
  let vb = 0;
  let a = 1;
  let b = 1;
  let i = 0;
  let u = 0;
  let ct = 1;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    if (va | vb) {
      u += c;
      if (va & vb) i += c;
    }
    ct = 0;
    ca -= c;
    if (ca === 0 && a < ka) {
      ca = A[a++];
      va ^= 1;
    }
    ct += ca;
    cb -= c;
    if (cb === 0 && b < kb) {
      cb = B[b++];
      vb ^= 1;
    }
    ct += cb;
  }
  out[0] = i;
  out[1] = u;
}

/** One pass over an RLE: its box into bb[o..o+3], its area returned; throws unless the runs cover h*w. */
function scanRle(rle: RLE, bb: Float64Array, o: number): number {
  const cnts = rle.counts;
  const m = cnts.length;
  let sum = 0;
  let fg = 0;
  for (let j = 1; j < m; j += 2) {
    sum += cnts[j - 1];
    fg += cnts[j];
  }
  if (m & 1) sum += cnts[m - 1];
  sum += fg;
  if (sum !== rle.h * rle.w) {
    throw new UserError(`iou: RLE counts add up to ${sum}, expected h*w = ${rle.h}*${rle.w} = ${rle.h * rle.w}`);
  }
  bboxIntoSmall(rle, bb, o);
  return fg % UINT_RANGE;
}

let iouF64 = new Float64Array(256);
let iouI32 = new Int32Array(64);
const iouPair = new Float64Array(2);

/**
 * The result array of an IoU call: a view on the first n entries of `out` where it is given and large
 * enough (callers that drop each result before the next call save an allocation per call), else a new one.
 */
function outArray(out: Float64Array | undefined, n: number): Float64Array {
  return out !== undefined && out.length >= n ? out.subarray(0, n) : new Float64Array(n);
}

/**
 * rleIou: row-major [dt.length][gt.length]. `out`: see outArray. Pairs whose boxes do not overlap are 0 without touching the
 * runs; overlapping pairs of different image sizes are -1; crowd GT divides by the detection's area.
 * Where every run after the first is non-empty, rleIou's loop counts exactly the pixels of A and B, so the
 * intersection is counted column by column over the columns both boxes span, and the union is
 * area(A) + area(B) - intersection: the same integers, so the same double.
 */
export function iou(dt: readonly RLE[], gt: readonly RLE[], iscrowd: ArrayLike<number>, out?: Float64Array): Float64Array {
  const m = dt.length;
  const n = gt.length;
  if (iscrowd.length !== n) throw new Error(`iou: iscrowd has ${iscrowd.length} entries for ${n} GT masks`);
  const o = outArray(out, m * n);
  if (m === 0 || n === 0) return o;
  // Per-call arrays come from grow-only scratch: the evaluator calls this once per image and category.
  if (iouF64.length < 5 * (m + n)) iouF64 = new Float64Array(Math.max(5 * (m + n), 2 * iouF64.length));
  if (iouI32.length < m + n) iouI32 = new Int32Array(Math.max(m + n, 2 * iouI32.length));
  const db = iouF64.subarray(0, 4 * m);
  const gb = iouF64.subarray(4 * m, 4 * (m + n));
  const dArea = iouF64.subarray(4 * (m + n), 4 * (m + n) + m);
  const gArea = iouF64.subarray(4 * (m + n) + m, 5 * (m + n));
  for (let d = 0; d < m; d++) dArea[d] = scanRle(dt[d], db, 4 * d);
  for (let g = 0; g < n; g++) gArea[g] = scanRle(gt[g], gb, 4 * g);
  bbIouInto(db, gb, m, n, iscrowd, o);
  const kern = activeKernel();
  // Column pieces are built on first use: dSe[d] / gSe[g] = pool offset, -1 not built yet, -2 refused.
  const dSe = iouI32.subarray(0, m).fill(-1);
  const gSe = iouI32.subarray(m, m + n).fill(-1);
  let used = 0;
  const iu = iouPair;
  for (let g = 0; g < n; g++) {
    const G = gt[g];
    const crowd = isCrowd(iscrowd, g);
    const gx0 = gb[4 * g];
    const gw = gb[4 * g + 2];
    const gx1 = gx0 + gw;
    for (let d = 0; d < m; d++) {
      const k = d * n + g;
      if (!(o[k] > 0)) continue;
      const D = dt[d];
      if (D.h !== G.h || D.w !== G.w) {
        o[k] = -1;
        continue;
      }
      if (gSe[g] === -1) {
        const end = columnRuns(G, gx0, gw, used);
        gSe[g] = end < 0 ? -2 : used;
        if (end >= 0) used = end;
      }
      const dx0 = db[4 * d];
      const dw = db[4 * d + 2];
      if (dSe[d] === -1) {
        const end = columnRuns(D, dx0, dw, used);
        dSe[d] = end < 0 ? -2 : used;
        if (end >= 0) used = end;
      }
      let i: number;
      let u: number;
      if (dSe[d] >= 0 && gSe[g] >= 0) {
        // Both masks lie inside the columns their boxes span, so only the shared columns can meet.
        const dx1 = dx0 + dw;
        i = columnIntersection(kern, dSe[d], dx0, dw, gSe[g], gx0, gw, dx0 > gx0 ? dx0 : gx0, dx1 < gx1 ? dx1 : gx1);
        u = dArea[d] + gArea[g] - i;
      } else {
        literalIntersectUnion(D.counts, G.counts, iu);
        i = iu[0];
        u = iu[1];
      }
      if (i === 0) u = 1;
      else if (crowd) u = dArea[d];
      o[k] = i / u;
    }
  }
  return o;
}
