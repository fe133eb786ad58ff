/**
 * The RLE codec of pycocotools.mask (maskApi.c, pycocotools 2.0.11): rleEncode, rleDecode, rleArea,
 * rleToBbox, rleMerge, bit for bit. See postprocess/mask.ts for the conventions (column-major runs,
 * row-major bitmaps) and the deliberate differences from pycocotools.
 */
import { UserError } from '../core/errors.ts';
import { colScratch, u32Scratch, u32ScratchB } from './mask_scratch.ts';

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

export const UINT_RANGE = 4294967296;
export const INT_MIN = -2147483648;

export function checkSize(h: number, w: number, what: string): void {
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
export function checkRle(rle: RLE, what: string): void {
  const s = countsSum(rle.counts);
  if (s !== rle.h * rle.w) {
    throw new UserError(`${what}: RLE counts add up to ${s}, expected h*w = ${rle.h}*${rle.w} = ${rle.h * rle.w}`);
  }
}

/**
 * The same counts as int32: V8 runs loops over int32 loads on int32 arithmetic, while uint32 loads (which
 * may exceed int32) push the whole loop onto doubles. Counts of 2^31 and more read negative; callers that
 * read through it check for that.
 */
export function int32View(counts: Uint32Array): Int32Array {
  return new Int32Array(counts.buffer, counts.byteOffset, counts.length);
}

// Change points of encode (column x, row y), grown lazily: a checkerboard changes at every pixel.
let scratchTx = new Int32Array(1024);
let scratchTy = new Int32Array(1024);

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
  const nt = changePoints(mask, h, w);
  return { h, w, counts: countsFromChanges(nt, h, w) };
}

/** The change points of a row-major bitmap into scratchTx/scratchTy, in row order; returns how many. */
function changePoints(mask: Uint8Array, h: number, w: number): number {
  const a = h * w;
  let tx = scratchTx;
  let ty = scratchTy;
  let nt = 0;
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
  return nt;
}

/** Run lengths from the nt change points in scratchTx/scratchTy: counting sort by column (rows already ascend). */
function countsFromChanges(nt: number, h: number, w: number): Uint32Array {
  const tx = scratchTx;
  const ty = scratchTy;
  const col = colScratch(w + 1);
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
  counts[nt] = h * w - prev;
  return counts;
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

/**
 * rleToBbox literally (uint arithmetic, a division per run). Slow twin of bboxIntoSmall, which falls back
 * to it where runs add up past 2^31; both end with the same extent update and box write.
 */
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
 * bboxInto on int32 arithmetic (falling back to it where runs add up past 2^31), with the
 * column of each run found by stepping from the previous one (runs come in position order) rather than by a
 * division per run; long jumps still divide. Fast twin of bboxInto: the extent update is repeated inline
 * rather than called, this being the per-run loop of every IoU call.
 */
export function bboxIntoSmall(rle: RLE, bb: Float64Array, o: number): void {
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
  // Every loop step emits at most one run and consumes a run of A or B, so A.m + B.m bounds the output.
  let A = u32Scratch(total + 2);
  let out = u32ScratchB(total + 2);
  let am = rles[0].counts.length;
  A.set(rles[0].counts);
  for (let i = 1; i < n; i++) {
    const m = mergeTwo(A, am, rles[i].counts, out, intersect);
    const t = A;
    A = out;
    out = t;
    am = m;
  }
  return { h, w, counts: A.slice(0, am) };
}

/** rleMerge's loop for one pair: A[0 .. am) with B into out; returns the number of runs written. */
function mergeTwo(A: Uint32Array, am: number, B: Uint32Array, out: Uint32Array, intersect: boolean): number {
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
  return m;
}
