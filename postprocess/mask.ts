/**
 * Run-length mask API: a port of pycocotools.mask (maskApi.c + _mask.pyx, pycocotools 2.0.11) that gives the
 * same counts, areas, boxes and IoUs bit for bit.
 *
 * RLE counts run column-major (down each column, then to the next column) and start with a run of zeros,
 * exactly like maskApi.c; `encode`/`decode` take and give ROW-MAJOR h x w bitmaps so that callers never hold
 * Fortran-ordered arrays. Integer arithmetic follows C's `uint`/`int` wrap-around where maskApi.c relies on it.
 *
 * Speed (bench/mask.ts): `iou` never decodes bitmaps. Like rleIou it checks boxes first and
 * only looks at pairs whose boxes overlap; it then cuts each mask into per-column pieces once and sums the
 * overlaps over the columns both boxes share, 4 columns a step in a WebAssembly SIMD kernel
 * (postprocess/mask_iou.wat; a plain-JS loop with the same results where WebAssembly is missing). `encode`
 * reads the row-major bitmap row against row, `frPoly` visits only the boundary points that maskApi.c keeps.
 * Hot loops read counts through int32 views (V8 runs uint32 loads on doubles), and callers that hold many
 * masks briefly pass a CountsArena / an `out` array: a typed array over 64 bytes is allocated off the V8
 * heap and costs about a microsecond, more than decoding or rasterising a typical mask.
 *
 * Deliberate differences from pycocotools, all on input it would silently turn into garbage:
 * - bad user data (counts that are not non-negative integers, that do not add up to h*w, counts strings
 *   with characters outside '0'..'o', non-finite polygon coordinates, a bad size) throws a UserError;
 * - masks are binary with nonzero = 1 (pycocotools toggles on every change of byte value);
 * - merging RLEs of different sizes throws (pycocotools returns an empty 0x0 RLE);
 * - polygons on a 0-pixel image, or with coordinates beyond +-2e8 (where maskApi.c's int arithmetic
 *   overflows), throw; a first polygon part of 4 numbers throws, as pycocotools' box reading of it does.
 */
import { UserError } from '../core/errors.ts';
import { MASK_IOU_WASM } from './mask_iou_wasm.ts';

/** Run lengths, column-major, first run = zeros (maskApi.c `RLE`). */
export interface RLE {
  h: number;
  w: number;
  counts: Uint32Array;
}

/** COCO JSON form: compressed counts string, or uncompressed list of run lengths. */
export interface CocoRle {
  size: [number, number];
  counts: string | number[];
}

/** A COCO `segmentation`: polygon parts (flat x,y lists) or an RLE object. */
export type Segmentation = number[][] | CocoRle;

const UINT_RANGE = 4294967296;
const INT_MIN = -2147483648;

// Grow-only scratch buffers: encode/merge/frPoly run thousands of times per evaluation, and fresh
// allocations of h*w-sized arrays would dominate.
let scratchU32 = new Uint32Array(1024);
let scratchU32b = new Uint32Array(1024);
let scratchI32 = [new Int32Array(1024), new Int32Array(1024), new Int32Array(1024), new Int32Array(1024)];

function u32Scratch(n: number): Uint32Array {
  if (scratchU32.length < n) scratchU32 = new Uint32Array(Math.max(n, scratchU32.length * 2));
  return scratchU32;
}

function u32ScratchB(n: number): Uint32Array {
  if (scratchU32b.length < n) scratchU32b = new Uint32Array(Math.max(n, scratchU32b.length * 2));
  return scratchU32b;
}

function i32Scratch(slot: number, n: number): Int32Array {
  if (scratchI32[slot].length < n) scratchI32[slot] = new Int32Array(Math.max(n, scratchI32[slot].length * 2));
  return scratchI32[slot];
}

/**
 * Room for the counts of many masks held at once (an evaluator's masks of one image and category): they
 * are placed one after another, and the holder resets `used` when it drops them. A typed array allocation
 * per mask costs more than decoding or rasterising it. A grown array replaces `buf`; masks already placed
 * keep views on the old one.
 */
export interface CountsArena {
  buf: Uint32Array;
  used: number;
}

/** Where n counts can be written in the arena (growing it); the caller then advances `used`. */
export function arenaReserve(arena: CountsArena, n: number): number {
  if (arena.buf.length - arena.used >= n) return arena.used;
  arena.buf = new Uint32Array(Math.max(2 * arena.buf.length, 2 * n));
  arena.used = 0;
  return 0;
}

/** counts[0 .. n) as the counts of a new RLE: in the arena where given, else a copy of their own. */
function placeCounts(counts: Uint32Array, n: number, arena: CountsArena | undefined): Uint32Array {
  if (arena === undefined) return counts.slice(0, n);
  const at = arenaReserve(arena, n);
  const out = arena.buf.subarray(at, at + n);
  out.set(counts.subarray(0, n));
  arena.used = at + n;
  return out;
}

function checkSize(h: number, w: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0) {
    throw new UserError(`${what}: size must be two non-negative integers [h, w], got [${h}, ${w}]`);
  }
  if (h * w >= UINT_RANGE) throw new UserError(`${what}: size ${h}x${w} has too many pixels for 32-bit run lengths`);
}

function countsSum(counts: Uint32Array): number {
  let s = 0;
  for (let j = 0; j < counts.length; j++) s += counts[j];
  return s;
}

/** Throws unless the runs of `rle` cover exactly h*w pixels (maskApi.c loops run forever or read past otherwise). */
function checkRle(rle: RLE, what: string): void {
  const s = countsSum(rle.counts);
  if (s !== rle.h * rle.w) {
    throw new UserError(`${what}: RLE counts add up to ${s}, expected h*w = ${rle.h}*${rle.w} = ${rle.h * rle.w}`);
  }
}

let scratchTx = new Int32Array(1024);
let scratchTy = new Int32Array(1024);
let scratchCol = new Int32Array(1024);

/**
 * rleEncode of a row-major h x w bitmap, without a transposed copy. A column-major run starts wherever a
 * pixel differs from the one above it (row 0: from the bottom of the previous column; before the first
 * pixel: 0), so rows are compared with the row above in memory order (4 bytes at a time where aligned) and
 * the change points are sorted into column order by counting.
 */
export function encode(mask: Uint8Array, h: number, w: number): RLE {
  checkSize(h, w, 'encode');
  const a = h * w;
  if (mask.length !== a) throw new UserError(`encode: mask has ${mask.length} values, expected h*w = ${a}`);
  if (a === 0) return { h, w, counts: new Uint32Array([0]) };
  let tx = scratchTx;
  let ty = scratchTy;
  let nt = 0;
  // Worst case (a checkerboard) changes at every pixel; grow lazily instead of reserving h*w.
  const push = (x: number, y: number): void => {
    if (nt === tx.length) {
      const nx = new Int32Array(Math.min(a, tx.length * 2));
      nx.set(tx);
      tx = scratchTx = nx;
      const ny = new Int32Array(tx.length);
      ny.set(ty);
      ty = scratchTy = ny;
    }
    tx[nt] = x;
    ty[nt] = y;
    nt++;
  };
  if (tx.length < Math.min(a, 4 * (w + h))) {
    tx = scratchTx = new Int32Array(Math.min(a, 4 * (w + h)));
    ty = scratchTy = new Int32Array(tx.length);
  }
  const last = (h - 1) * w;
  if (mask[0] !== 0) push(0, 0);
  for (let x = 1; x < w; x++) if ((mask[x] !== 0) !== (mask[last + x - 1] !== 0)) push(x, 0);
  if ((mask.byteOffset & 3) === 0 && (w & 3) === 0) {
    const m32 = new Uint32Array(mask.buffer, mask.byteOffset, a >>> 2);
    const wq = w >>> 2;
    for (let y = 1; y < h; y++) {
      const r = y * wq;
      for (let k = 0; k < wq; k++) {
        if (m32[r + k] !== m32[r - wq + k]) {
          for (let x = 4 * k; x < 4 * k + 4; x++) {
            if ((mask[y * w + x] !== 0) !== (mask[(y - 1) * w + x] !== 0)) push(x, y);
          }
        }
      }
    }
  } else {
    for (let y = 1; y < h; y++) {
      const r = y * w;
      for (let x = 0; x < w; x++) {
        const v = mask[r + x];
        const u = mask[r - w + x];
        if (v !== u && (v !== 0) !== (u !== 0)) push(x, y);
      }
    }
  }
  // counting sort by column; rows are already ascending within each column
  if (scratchCol.length < w + 1) scratchCol = new Int32Array(Math.max(w + 1, 2 * scratchCol.length));
  const col = scratchCol;
  col.fill(0, 0, w + 1);
  for (let t = 0; t < nt; t++) col[tx[t] + 1]++;
  for (let x = 0; x < w; x++) col[x + 1] += col[x];
  const pos = u32Scratch(nt);
  for (let t = 0; t < nt; t++) pos[col[tx[t]]++] = tx[t] * h + ty[t];
  const counts = new Uint32Array(nt + 1);
  let prev = 0;
  for (let t = 0; t < nt; t++) {
    counts[t] = pos[t] - prev;
    prev = pos[t];
  }
  counts[nt] = a - prev;
  return { h, w, counts };
}

/** rleEncode of a column-major (Fortran-order) bitmap, as pycocotools.mask.encode takes it. */
export function encodeColumnMajor(mask: Uint8Array, h: number, w: number): RLE {
  checkSize(h, w, 'encodeColumnMajor');
  const a = h * w;
  if (mask.length !== a) throw new UserError(`encodeColumnMajor: mask has ${mask.length} values, expected ${a}`);
  const cnts = u32Scratch(a + 1);
  let k = 0;
  let p = 0;
  let c = 0;
  for (let j = 0; j < a; j++) {
    const v = mask[j] !== 0 ? 1 : 0;
    if (v !== p) {
      cnts[k++] = c;
      c = 0;
      p = v;
    }
    c++;
  }
  cnts[k++] = c;
  return { h, w, counts: cnts.slice(0, k) };
}

/** rleDecode into a row-major h x w bitmap of 0/1. */
export function decode(rle: RLE): Uint8Array {
  const { h, w, counts } = rle;
  checkSize(h, w, 'decode');
  checkRle(rle, 'decode');
  const out = new Uint8Array(h * w);
  let pos = 0;
  for (let j = 0; j < counts.length; j++) {
    const c = counts[j];
    if (j & 1 && c > 0) {
      let x = Math.floor(pos / h);
      let y = pos - x * h;
      let i = y * w + x;
      for (let t = 0; t < c; t++) {
        out[i] = 1;
        if (++y === h) {
          y = 0;
          x++;
          i = x;
        } else {
          i += w;
        }
      }
    }
    pos += c;
  }
  return out;
}

/** rleArea: number of foreground pixels (uint arithmetic, as maskApi.c). */
export function area(rle: RLE): number {
  const cnts = rle.counts;
  let a = 0;
  for (let j = 1; j < cnts.length; j += 2) a += cnts[j];
  return a % UINT_RANGE;
}

function bboxInto(rle: RLE, bb: Float64Array, o: number): void {
  const h = rle.h >>> 0;
  const w = rle.w >>> 0;
  const cnts = rle.counts;
  const m = (cnts.length >>> 1) << 1;
  if (m === 0) {
    bb[o] = bb[o + 1] = bb[o + 2] = bb[o + 3] = 0;
    return;
  }
  let xs = w;
  let ys = h;
  let xe = 0;
  let ye = 0;
  let cc = 0;
  for (let j = 0; j < m; j++) {
    const start = cc;
    cc = (cc + cnts[j]) >>> 0;
    if ((j & 1) === 0 || cnts[j] === 0) continue;
    const yStart = start % h;
    const xStart = (start - yStart) / h;
    const last = (cc - 1) >>> 0;
    const yEnd = last % h;
    const xEnd = (last - yEnd) / h;
    if (xStart < xs) xs = xStart;
    if (xEnd > xe) xe = xEnd;
    if (xStart < xEnd) {
      ys = 0;
      ye = h - 1;
    } else {
      if (yStart < ys) ys = yStart;
      if (yEnd > ye) ye = yEnd;
    }
  }
  bb[o] = xs;
  bb[o + 2] = (xe - xs + 1) >>> 0;
  bb[o + 1] = ys;
  bb[o + 3] = (ye - ys + 1) >>> 0;
}

/**
 * The same counts as int32: V8 runs loops over int32 loads on int32 arithmetic, while uint32 loads (which
 * may exceed int32) push the whole loop onto doubles. Counts of 2^31 and more read negative; callers that
 * read through it check for that.
 */
function int32View(counts: Uint32Array): Int32Array {
  return new Int32Array(counts.buffer, counts.byteOffset, counts.length);
}

/**
 * bboxInto on int32 arithmetic (falling back to it where runs add up past 2^31), with the
 * column of each run found by stepping from the previous one (runs come in position order) rather than by a
 * division per run; long jumps still divide.
 */
function bboxIntoSmall(rle: RLE, bb: Float64Array, o: number): void {
  const h = rle.h;
  const cnts = int32View(rle.counts);
  const m = (cnts.length >>> 1) << 1;
  if (m === 0 || h === 0) {
    bboxInto(rle, bb, o);
    return;
  }
  const jump = 8 * h;
  let xs = rle.w;
  let ys = h;
  let xe = 0;
  let ye = 0;
  let cc = cnts[0];
  let col = 0; // column holding positions colStart .. colStart + h - 1
  let colStart = 0;
  for (let j = 1; j < m; j += 2) {
    const c = cnts[j];
    const g = j + 1 < m ? cnts[j + 1] : 0;
    const start = cc;
    cc += c + g;
    if (cc > 2147483647 || c < 0 || g < 0 || start < 0) {
      // runs past int32 (only RLEs whose counts exceed h*w): maskApi.c's uint arithmetic
      bboxInto(rle, bb, o);
      return;
    }
    if (c === 0) continue;
    if (start - colStart >= jump) {
      col = (start / h) | 0;
      colStart = col * h;
    } else {
      while (start - colStart >= h) {
        col++;
        colStart += h;
      }
    }
    const xStart = col;
    const yStart = start - colStart;
    const last = start + c - 1;
    if (last - colStart >= jump) {
      col = (last / h) | 0;
      colStart = col * h;
    } else {
      while (last - colStart >= h) {
        col++;
        colStart += h;
      }
    }
    const xEnd = col;
    const yEnd = last - colStart;
    if (xStart < xs) xs = xStart;
    if (xEnd > xe) xe = xEnd;
    if (xStart < xEnd) {
      ys = 0;
      ye = h - 1;
    } else {
      if (yStart < ys) ys = yStart;
      if (yEnd > ye) ye = yEnd;
    }
  }
  bb[o] = xs;
  bb[o + 2] = (xe - xs + 1) >>> 0;
  bb[o + 1] = ys;
  bb[o + 3] = (ye - ys + 1) >>> 0;
}

/** rleToBbox (pycocotools 2.0.11): [x, y, w, h] of the foreground, zeros when empty. */
export function toBbox(rle: RLE): [number, number, number, number] {
  const bb = new Float64Array(4);
  bboxIntoSmall(rle, bb, 0);
  return [bb[0], bb[1], bb[2], bb[3]];
}

/** toBbox of many RLEs packed n*4 (xywh), the form bboxIou takes. */
export function toBboxes(rles: readonly RLE[]): Float64Array {
  const bb = new Float64Array(rles.length * 4);
  for (let i = 0; i < rles.length; i++) bboxIntoSmall(rles[i], bb, i * 4);
  return bb;
}

/** rleMerge: union (default) or intersection of RLEs of one size; [] gives an empty 0x0 RLE like pycocotools. */
export function merge(rles: readonly RLE[], intersect = false): RLE {
  const n = rles.length;
  if (n === 0) return { h: 0, w: 0, counts: new Uint32Array(0) };
  const { h, w } = rles[0];
  for (let i = 0; i < n; i++) {
    if (rles[i].h !== h || rles[i].w !== w) {
      throw new UserError(`merge: RLE ${i} is ${rles[i].h}x${rles[i].w}, RLE 0 is ${h}x${w}`);
    }
    checkRle(rles[i], 'merge');
  }
  if (n === 1) return { h, w, counts: rles[0].counts.slice() };
  let total = 0;
  for (let i = 0; i < n; i++) total += rles[i].counts.length;
  // Every loop step below emits at most one run and consumes a run of A or B, so A.m + B.m bounds the output.
  let A = u32Scratch(total + 2);
  let out = u32ScratchB(total + 2);
  let am = rles[0].counts.length;
  A.set(rles[0].counts);
  for (let i = 1; i < n; i++) {
    const B = rles[i].counts;
    const bm = B.length;
    let ca = am > 0 ? A[0] : 0;
    let cb = bm > 0 ? B[0] : 0;
    let v = 0;
    let va = 0;
    let vb = 0;
    let m = 0;
    let a = 1;
    let b = 1;
    let cc = 0;
    let ct = 1;
    while (ct > 0) {
      const c = ca < cb ? ca : cb;
      cc += c;
      ct = 0;
      ca -= c;
      if (ca === 0 && a < am) {
        ca = A[a++];
        va ^= 1;
      }
      ct += ca;
      cb -= c;
      if (cb === 0 && b < bm) {
        cb = B[b++];
        vb ^= 1;
      }
      ct += cb;
      const vp = v;
      v = intersect ? va & vb : va | vb;
      if (v !== vp || ct === 0) {
        out[m++] = cc;
        cc = 0;
      }
    }
    const t = A;
    A = out;
    out = t;
    am = m;
  }
  return { h, w, counts: A.slice(0, am) };
}

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

/** rleIou's run-merging loop, kept literally for RLEs the fast path refuses. */
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

// C's (int) conversion of a double: truncation; x86 gives INT_MIN for NaN and out-of-range values.
function cInt(v: number): number {
  return v > -2147483649 && v < 2147483648 ? v | 0 : INT_MIN;
}

/** Coordinates beyond this make maskApi.c's int arithmetic overflow (it then misbehaves); we refuse them. */
const MAX_POLY_COORD = 2e8;

/**
 * frPoly's test for one pair of consecutive boundary points (u0, v0) -> (u1, v1) with u0 != u1: appends the
 * pixel-column crossing maskApi.c keeps for it, if any, at px/py[nk]; returns the new count.
 */
function keepCrossing(
  u0: number,
  v0: number,
  u1: number,
  v1: number,
  px: Int32Array,
  py: Int32Array,
  nk: number,
  wMax: number,
  h: number,
): number {
  const ux = u1 < u0 ? u1 : u1 - 1;
  if (ux < 2 || (ux - 2) % 5 !== 0) return nk;
  const xd = (ux - 2) / 5;
  if (xd > wMax) return nk;
  const vy = v1 < v0 ? v1 : v0;
  const yd = vy < 2 ? 0 : ((vy + 2) / 5) | 0;
  px[nk] = xd;
  py[nk] = yd > h ? h : yd;
  return nk + 1;
}

/**
 * rleFrPoly: rasterise one polygon (flat x,y list; an odd trailing value is ignored) on an h x w image.
 * The counts go to `arena` where given (see CountsArena).
 */
export function frPoly(xy: ArrayLike<number>, h: number, w: number, arena?: CountsArena): RLE {
  checkSize(h, w, 'frPoly');
  // maskApi.c would return runs that do not add up to h*w (garbage) on an empty image
  if (h === 0 || w === 0) throw new UserError(`frPoly: image size must be positive, got ${h}x${w}`);
  const k = Math.floor(xy.length / 2);
  const scale = 5;
  const x = i32Scratch(0, k + 1);
  const y = i32Scratch(1, k + 1);
  for (let j = 0; j < 2 * k; j++) {
    const v = xy[j];
    if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_POLY_COORD) {
      throw new UserError(`frPoly: polygon coordinate ${j} is ${String(v)}, expected a finite number`);
    }
  }
  for (let j = 0; j < k; j++) x[j] = cInt(scale * xy[j * 2] + 0.5);
  x[k] = x[0];
  for (let j = 0; j < k; j++) y[j] = cInt(scale * xy[j * 2 + 1] + 0.5);
  y[k] = y[0];
  // maskApi.c walks the upsampled boundary point by point (u, v), then keeps, for each pair of consecutive
  // points whose u differ, a crossing of a pixel-column centre: xd = (u' + .5) / 5 - .5 must be a whole
  // number in [0, w - 1] (u' = the smaller u, less one when u increases) and y = ceil((v'' + .5) / 5 - .5)
  // clamped to [0, h] (v'' = the smaller v of the pair). For integers these are exactly xd = (u' - 2) / 5
  // when u' - 2 is a non-negative multiple of 5 (otherwise xd is at least 0.2 from any integer) and
  // y = ceil((v'' - 2) / 5), so the same points come from integer arithmetic. Only the set of kept points
  // matters (they are sorted next), so along an x-major edge, where u moves by one each step, only every
  // fifth pair is visited.
  // kept points per edge: at most one per fifth u step and one per image column, plus the joining pair
  let bound = 0;
  for (let j = 0; j < k; j++) bound += Math.min(Math.floor(Math.abs(x[j] - x[j + 1]) / 5) + 1, w) + 2;
  const px = i32Scratch(2, bound);
  const py = i32Scratch(3, bound);
  let nk = 0;
  const wMax = w - 1;
  let pu = 0; // previous boundary point
  let pv = 0;
  let started = false;
  for (let j = 0; j < k; j++) {
    let xs = x[j];
    let xe = x[j + 1];
    let ys = y[j];
    let ye = y[j + 1];
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      let t = xs;
      xs = xe;
      xe = t;
      t = ys;
      ys = ye;
      ye = t;
    }
    if (dx >= dy) {
      if (dx === 0) {
        // one point; s = 0/0 = NaN in maskApi.c, and (int)NaN is INT_MIN on x86
        if (started && xs !== pu) nk = keepCrossing(pu, pv, xs, INT_MIN, px, py, nk, wMax, h);
        pu = xs;
        pv = INT_MIN;
        started = true;
        continue;
      }
      const s = (ye - ys) / dx;
      // ys + s*t lies between two int32 vertices, so | 0 is C's (int) truncation here.
      const tFirst = flip ? dx : 0;
      const uFirst = xs + tFirst;
      if (started && uFirst !== pu) nk = keepCrossing(pu, pv, uFirst, (ys + s * tFirst + 0.5) | 0, px, py, nk, wMax, h);
      // consecutive points t and t + 1 (in either walking direction) give u' = xs + t
      let t = (2 - xs) % 5;
      if (t < 0) t += 5;
      for (; t < dx; t += 5) {
        const ux = xs + t;
        if (ux < 2) continue;
        const xd = (ux - 2) / 5;
        if (xd > wMax) break;
        const v0 = (ys + s * t + 0.5) | 0;
        const v1 = (ys + s * (t + 1) + 0.5) | 0;
        const vy = v1 < v0 ? v1 : v0;
        const yd = vy < 2 ? 0 : ((vy + 2) / 5) | 0;
        px[nk] = xd;
        py[nk] = yd > h ? h : yd;
        nk++;
      }
      const tLast = flip ? 0 : dx;
      pu = xs + tLast;
      pv = (ys + s * tLast + 0.5) | 0;
      started = true;
    } else {
      // y-major: u(t) = (int)(xs + s*t + .5) is monotone and moves by at most one a step, so the pairs
      // whose u differ are the steps t -> t + 1 where it passes from U to U + 1 (or back); the kept point is
      // u' = U, v'' = ys + t. Only U = 2 mod 5 can be kept: find those steps directly.
      const s = (xe - xs) / dy;
      const tFirst = flip ? dy : 0;
      const uFirst = (xs + s * tFirst + 0.5) | 0;
      if (started && uFirst !== pu) nk = keepCrossing(pu, pv, uFirst, tFirst + ys, px, py, nk, wMax, h);
      const u0 = (xs + 0.5) | 0;
      const u1 = (xs + s * dy + 0.5) | 0;
      const uLo = u0 < u1 ? u0 : u1;
      const uHi = u0 < u1 ? u1 : u0;
      let U = uLo < 2 ? 2 : uLo;
      U += (((2 - U) % 5) + 5) % 5;
      for (; U < uHi; U += 5) {
        const xd = (U - 2) / 5;
        if (xd > wMax) break;
        // last t with u(t) on U's side (for s > 0: u(t) <= U; for s < 0: u(t) >= U + 1); z = U + 1 is the
        // boundary, u being floor(z) here (z >= 2)
        let t = s > 0 ? Math.ceil((U + 0.5 - xs) / s) - 1 : Math.floor((U + 0.5 - xs) / s);
        if (t < 0) t = 0;
        if (t > dy - 1) t = dy - 1;
        if (s > 0) {
          while (t < dy - 1 && ((xs + s * (t + 1) + 0.5) | 0) <= U) t++;
          while (t > 0 && ((xs + s * t + 0.5) | 0) > U) t--;
        } else {
          while (t < dy - 1 && ((xs + s * (t + 1) + 0.5) | 0) > U) t++;
          while (t > 0 && ((xs + s * t + 0.5) | 0) <= U) t--;
        }
        const yd = ys + t < 2 ? 0 : ((ys + t + 2) / 5) | 0;
        px[nk] = xd;
        py[nk] = yd > h ? h : yd;
        nk++;
      }
      const tLast = flip ? 0 : dy;
      pu = (xs + s * tLast + 0.5) | 0;
      pv = tLast + ys;
      started = true;
    }
  }
  const m = nk;
  // Sort the points by pixel index x * h + y (column, then row: the same order, y being at most h) by
  // counting sort on the column, then insertion sort on the few rows of each column.
  const a = u32Scratch(m + 1);
  if (w > 0 && m > 0) {
    // only the polygon's own columns: small polygons on big images must not pay for the image width
    let x0 = w;
    let x1 = -1;
    for (let j = 0; j < m; j++) {
      if (px[j] < x0) x0 = px[j];
      if (px[j] > x1) x1 = px[j];
    }
    const nc = x1 - x0 + 1;
    if (scratchCol.length < 2 * (nc + 1)) scratchCol = new Int32Array(Math.max(2 * (nc + 1), 2 * scratchCol.length));
    const start = scratchCol; // start[c]: first slot of column x0 + c; start[nc + 1 + c]: its next free slot
    start.fill(0, 0, nc + 1);
    for (let j = 0; j < m; j++) start[px[j] - x0 + 1]++;
    for (let c = 0; c < nc; c++) start[c + 1] += start[c];
    start.copyWithin(nc + 1, 0, nc + 1);
    for (let j = 0; j < m; j++) {
      const c = px[j] - x0;
      const key = (Math.imul(px[j], h | 0) + py[j]) >>> 0;
      const lo = start[c];
      let q = start[nc + 1 + c]++;
      while (q > lo && a[q - 1] > key) {
        a[q] = a[q - 1];
        q--;
      }
      a[q] = key;
    }
  } else if (m > 0) {
    for (let j = 0; j < m; j++) a[j] = (Math.imul(px[j], h | 0) + py[j]) >>> 0;
    a.subarray(0, m).sort();
  }
  a[m] = (h * w) >>> 0; // no key exceeds h * w, so the array stays sorted
  let p = 0;
  for (let j = 0; j <= m; j++) {
    const t = a[j];
    a[j] = (a[j] - p) >>> 0;
    p = t;
  }
  const kn = m + 1;
  const b = u32ScratchB(kn);
  let j = 0;
  let bm = 0;
  b[bm++] = a[j++];
  while (j < kn) {
    if (a[j] > 0) b[bm++] = a[j++];
    else {
      j++;
      if (j < kn) b[bm - 1] = (b[bm - 1] + a[j++]) >>> 0;
    }
  }
  return { h, w, counts: placeCounts(b, bm, arena) };
}

/** rleFrBbox: one xywh box rasterised as the polygon maskApi.c builds from it. */
export function frBbox(bbox: ArrayLike<number>, h: number, w: number): RLE {
  if (bbox.length !== 4) throw new UserError(`frBbox: a box needs 4 numbers [x, y, w, h], got ${bbox.length}`);
  const xs = bbox[0];
  const xe = xs + bbox[2];
  const ys = bbox[1];
  const ye = ys + bbox[3];
  return frPoly([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

function isPolygonList(segm: unknown): segm is number[][] {
  return Array.isArray(segm);
}

/**
 * frPyObjects for one COCO segmentation: polygons give one RLE per part on h x w; an RLE object (list or
 * string counts) gives [RLE] with its own size. As in pycocotools, a first part of 4 numbers would be read as
 * a box list (and rejected there), and a first part shorter than that is not a polygon.
 */
export function frPyObjects(segm: Segmentation, h: number, w: number, arena?: CountsArena): RLE[] {
  if (isPolygonList(segm)) {
    if (segm.length === 0) throw new UserError('segmentation: empty polygon list');
    for (let i = 0; i < segm.length; i++) {
      if (!Array.isArray(segm[i])) throw new UserError(`segmentation: polygon part ${i} is not a list of numbers`);
    }
    const n0 = segm[0].length;
    if (n0 === 4) throw new UserError('segmentation: a polygon of 4 numbers is read as a box list by pycocotools, which rejects it');
    if (n0 < 4) throw new UserError(`segmentation: first polygon part has ${n0} numbers, need at least 6`);
    return segm.map((part) => frPoly(part, h, w, arena));
  }
  if (segm !== null && typeof segm === 'object' && 'counts' in segm && 'size' in segm) return [fromCocoRle(segm)];
  throw new UserError('segmentation: expected a list of polygons or an RLE object {size, counts}');
}

/**
 * COCO.annToRLE: polygon parts merged as a union on h x w; RLE objects keep their own size. Polygon counts
 * go to `arena` where given (see CountsArena).
 */
export function annToRle(segm: Segmentation, h: number, w: number, arena?: CountsArena): RLE {
  const rles = frPyObjects(segm, h, w, arena);
  return rles.length === 1 ? rles[0] : merge(rles);
}

/** rleToString of raw counts: LEB128-like, 5 bits a char, deltas against the count two back from index 3 on. */
export function countsToString(cnts: ArrayLike<number>): string {
  const m = cnts.length;
  const s = Buffer.allocUnsafe(m * 7 + 1);
  let p = 0;
  for (let i = 0; i < m; i++) {
    let x = cnts[i];
    if (i > 2) x -= cnts[i - 2];
    if (x >= INT_MIN && x <= 2147483647) {
      for (;;) {
        let c = x & 0x1f;
        x >>= 5;
        const more = c & 0x10 ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        s[p++] = c + 48;
        if (!more) break;
      }
    } else {
      // Beyond int32 (counts near 2^32): C's 64-bit arithmetic shift, done with floor division.
      for (;;) {
        let c = x - Math.floor(x / 32) * 32;
        x = Math.floor(x / 32);
        const more = c & 0x10 ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        s[p++] = c + 48;
        if (!more) break;
      }
    }
  }
  return s.toString('latin1', 0, p);
}

/**
 * rleFrString without checks: raw counts exactly as maskApi.c reads them (int shifts wrap as on x86, so
 * strings with counts past 2^29 read back as pycocotools reads them, garbage included).
 */
export function countsFromString(s: string): Uint32Array {
  const n = s.length;
  const cnts = u32Scratch(n);
  let m = 0;
  let p = 0;
  let sum = 0;
  while (p < n) {
    const code = s.charCodeAt(p);
    if (code < 48 || code > 111) badCountsChar(s, p);
    let c = code - 48;
    p++;
    let x: number;
    if ((c & 0x20) === 0) {
      x = c & 0x10 ? c | -32 : c; // one char, the common case: 5 bits, sign-extended
    } else {
      x = c & 0x1f;
      let k = 1;
      let more = 1;
      while (more) {
        if (p >= n) throw new UserError('RLE counts string ends inside a number');
        const code2 = s.charCodeAt(p);
        if (code2 < 48 || code2 > 111) badCountsChar(s, p);
        c = code2 - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        p++;
        k++;
        if (!more && c & 0x10) x |= -1 << (5 * k);
      }
    }
    cnts[m] = m > 2 ? x + cnts[m - 2] : x;
    sum += cnts[m];
    m++;
  }
  countsFromStringSum = sum;
  return cnts.slice(0, m);
}

/** Sum of the counts the last countsFromString call read (saves rleFrString a second pass). */
let countsFromStringSum = 0;

function badCountsChar(s: string, p: number): never {
  throw new UserError(`RLE counts string has character ${JSON.stringify(s[p])} at ${p}, expected '0'..'o'`);
}

/** Compressed counts string of an RLE (rleToString). */
export function rleToString(rle: RLE): string {
  return countsToString(rle.counts);
}

/** rleFrString with validation: the runs must cover exactly h*w pixels. */
export function rleFrString(s: string, h: number, w: number): RLE {
  checkSize(h, w, 'RLE');
  if (typeof s !== 'string') throw new UserError('RLE counts must be a string or a list of integers');
  const counts = countsFromString(s);
  if (countsFromStringSum !== h * w) {
    throw new UserError(`RLE: RLE counts add up to ${countsFromStringSum}, expected h*w = ${h}*${w} = ${h * w}`);
  }
  return { h, w, counts };
}

/**
 * rleFrString on the bytes of a JSON string's contents (buf[start .. end)), as a results file holds them:
 * saves building a JS string per mask, and reads the `\\` escape (JSON's way of writing the backslash,
 * one of the 64 counts characters; a quarter of real counts strings have one) in place. Returns null on
 * anything else (other escapes, characters outside '0'..'o', counts not adding up to h*w, a bad size) so
 * that the caller takes the string path and its error messages. Same arithmetic as countsFromString.
 */
export function rleFrJsonBytes(buf: Uint8Array, start: number, end: number, h: number, w: number): RLE | null {
  const cnts = u32Scratch(end - start);
  const m = countsFromJsonBytes(buf, start, end, h, w, cnts, 0);
  return m < 0 ? null : { h, w, counts: cnts.slice(0, m) };
}

/**
 * rleFrJsonBytes's decoder writing the counts to out[at ..] (room for end - start counts needed) and
 * returning how many, or -1 where rleFrJsonBytes gives null: callers that hold many masks at once keep
 * them in one array instead of allocating one per mask (a typed array allocation costs more than decoding).
 */
export function countsFromJsonBytes(
  buf: Uint8Array,
  start: number,
  end: number,
  h: number,
  w: number,
  cnts: Uint32Array,
  at: number,
): number {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h * w >= UINT_RANGE) return -1;
  // Written through an int32 view: the same bits, and V8 keeps the loop on int32 arithmetic (uint32 loads
  // and stores make it work on doubles, three times slower).
  const ci = new Int32Array(cnts.buffer, cnts.byteOffset, cnts.length);
  let m = at;
  let p = start;
  let sum = 0;
  while (p < end) {
    let c = buf[p++] - 48;
    if (c === 44 && buf[p++] !== 92) return -1; // 92 - 48: a backslash, valid only as the escape \\
    if (c < 0 || c > 63) return -1;
    let x: number;
    if ((c & 0x20) === 0) {
      x = c & 0x10 ? c | -32 : c;
    } else {
      x = c & 0x1f;
      let k = 1;
      let more = 1;
      while (more) {
        if (p >= end) return -1;
        c = buf[p++] - 48;
        if (c === 44 && buf[p++] !== 92) return -1;
        if (c < 0 || c > 63) return -1;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        k++;
        if (!more && c & 0x10) x |= -1 << (5 * k);
      }
    }
    if (m - at > 2) x = (x + ci[m - 2]) | 0;
    ci[m] = x;
    sum += x >>> 0;
    m++;
  }
  return sum === h * w && p === end ? m - at : -1;
}

/** JSON form with compressed counts, as pycocotools.mask.encode returns it (counts as text, not bytes). */
export function toCocoRle(rle: RLE): CocoRle {
  return { size: [rle.h, rle.w], counts: rleToString(rle) };
}

/** RLE from its JSON form (string or list counts), using its own size; bad data throws a UserError. */
export function fromCocoRle(obj: CocoRle): RLE {
  if (obj === null || typeof obj !== 'object') throw new UserError('RLE must be an object {size: [h, w], counts}');
  const size: unknown = obj.size;
  if (!Array.isArray(size) || size.length !== 2) throw new UserError('RLE size must be [h, w]');
  const [h, w] = size as [number, number];
  checkSize(h, w, 'RLE');
  const counts: unknown = obj.counts;
  if (typeof counts === 'string') return rleFrString(counts, h, w);
  if (!Array.isArray(counts)) throw new UserError('RLE counts must be a string or a list of integers');
  const cnts = new Uint32Array(counts.length);
  for (let j = 0; j < counts.length; j++) {
    const c: unknown = counts[j];
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c >= UINT_RANGE) {
      throw new UserError(`RLE counts[${j}] is ${JSON.stringify(c)}, expected a non-negative integer`);
    }
    cnts[j] = c;
  }
  const rle = { h, w, counts: cnts };
  checkRle(rle, 'RLE');
  return rle;
}
