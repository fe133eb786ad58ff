/**
 * Polygons to RLE as pycocotools.mask rasterises them (maskApi.c rleFrPoly / rleFrBbox, pycocotools 2.0.11):
 * the same counts bit for bit, from integer arithmetic on the points maskApi.c keeps rather than by walking
 * every upsampled boundary point.
 */
import { UserError } from '../core/errors.ts';
import { checkSize, INT_MIN, type RLE } from './mask_rle.ts';
import { colScratch, i32Scratch, placeCounts, u32Scratch, u32ScratchB, type CountsArena } from './mask_scratch.ts';

// C's (int) conversion of a double: truncation; x86 gives INT_MIN for NaN and out-of-range values.
function cInt(v: number): number {
  return v > -2147483649 && v < 2147483648 ? v | 0 : INT_MIN;
}

/** Coordinates beyond this make maskApi.c's int arithmetic overflow (it then misbehaves); we refuse them. */
const MAX_POLY_COORD = 2e8;

/**
 * rleFrPoly: rasterise one polygon (flat x,y list; an odd trailing value is ignored) on an h x w image.
 * The counts go to `arena` where given (see CountsArena).
 */
export function frPoly(xy: ArrayLike<number>, h: number, w: number, arena?: CountsArena): RLE {
  checkSize(h, w, 'frPoly');
  // maskApi.c would return runs that do not add up to h*w (garbage) on an empty image
  if (h === 0 || w === 0) throw new UserError(`frPoly: image size must be positive, got ${h}x${w}`);
  const k = Math.floor(xy.length / 2);
  const x = i32Scratch(0, k + 1);
  const y = i32Scratch(1, k + 1);
  scaledVertices(xy, k, x, y);
  // kept points per edge: at most one per fifth u step and one per image column, plus the joining pair
  let bound = 0;
  for (let j = 0; j < k; j++) bound += Math.min(Math.floor(Math.abs(x[j] - x[j + 1]) / 5) + 1, w) + 2;
  const px = i32Scratch(2, bound);
  const py = i32Scratch(3, bound);
  const m = boundaryCrossings(x, y, k, h, w, px, py);
  const a = sortedPixelIndices(px, py, m, h, w);
  const b = u32ScratchB(m + 1);
  return { h, w, counts: placeCounts(b, runsFromIndices(a, m, b), arena) };
}

/** The polygon's k vertices upsampled 5x and rounded as maskApi.c does, closed (x[k] = x[0]) into x and y. */
function scaledVertices(xy: ArrayLike<number>, k: number, x: Int32Array, y: Int32Array): void {
  for (let j = 0; j < 2 * k; j++) {
    const v = xy[j];
    if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_POLY_COORD) {
      throw new UserError(`frPoly: polygon coordinate ${j} is ${String(v)}, expected a finite number`);
    }
  }
  for (let j = 0; j < k; j++) x[j] = cInt(5 * xy[j * 2] + 0.5);
  x[k] = x[0];
  for (let j = 0; j < k; j++) y[j] = cInt(5 * xy[j * 2 + 1] + 0.5);
  y[k] = y[0];
}

/**
 * The pixel-column crossings of the upsampled boundary, as (column, row) into px and py; returns how many.
 *
 * maskApi.c walks the upsampled boundary point by point (u, v), then keeps, for each pair of consecutive
 * points whose u differ, a crossing of a pixel-column centre: xd = (u' + .5) / 5 - .5 must be a whole
 * number in [0, w - 1] (u' = the smaller u, less one when u increases) and y = ceil((v'' + .5) / 5 - .5)
 * clamped to [0, h] (v'' = the smaller v of the pair). For integers these are exactly xd = (u' - 2) / 5
 * when u' - 2 is a non-negative multiple of 5 (otherwise xd is at least 0.2 from any integer) and
 * y = ceil((v'' - 2) / 5), so the same points come from integer arithmetic. Only the set of kept points
 * matters (they are sorted next), so along an x-major edge, where u moves by one each step, only every
 * fifth pair is visited. Each edge is walked from its lower end in its major coordinate, t = 0 .. n; the
 * pair joining one edge's last point to the next edge's first is tested on its own.
 */
function boundaryCrossings(x: Int32Array, y: Int32Array, k: number, h: number, w: number, px: Int32Array, py: Int32Array): number {
  const wMax = w - 1;
  let nk = 0;
  let pu = 0; // previous boundary point
  let pv = 0;
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
      // a one-point edge has s = 0/0 = NaN in maskApi.c, and (int)NaN is INT_MIN on x86 (cInt)
      const s = (ye - ys) / dx;
      const tFirst = flip ? dx : 0;
      const uFirst = xs + tFirst;
      if (j > 0 && uFirst !== pu) nk = keepCrossing(pu, pv, uFirst, cInt(ys + s * tFirst + 0.5), px, py, nk, wMax, h);
      nk = xMajorCrossings(xs, ys, s, dx, px, py, nk, wMax, h);
      const tLast = flip ? 0 : dx;
      pu = xs + tLast;
      pv = cInt(ys + s * tLast + 0.5);
    } else {
      const s = (xe - xs) / dy;
      const tFirst = flip ? dy : 0;
      const uFirst = (xs + s * tFirst + 0.5) | 0;
      if (j > 0 && uFirst !== pu) nk = keepCrossing(pu, pv, uFirst, tFirst + ys, px, py, nk, wMax, h);
      nk = yMajorCrossings(xs, ys, s, dy, px, py, nk, wMax, h);
      const tLast = flip ? 0 : dy;
      pu = (xs + s * tLast + 0.5) | 0;
      pv = tLast + ys;
    }
  }
  return nk;
}

/** The pixel row kept for a crossing whose smaller upsampled v is v, clamped to [0, h]. */
function pixelRow(v: number, h: number): number {
  const yd = v < 2 ? 0 : ((v + 2) / 5) | 0;
  return yd > h ? h : yd;
}

/**
 * frPoly's test for one pair of consecutive boundary points (u0, v0) -> (u1, v1) with u0 != u1: appends the
 * pixel-column crossing maskApi.c keeps for it, if any, at px/py[nk]; returns the new count.
 */
function keepCrossing(u0: number, v0: number, u1: number, v1: number, px: Int32Array, py: Int32Array, nk: number, wMax: number, h: number): number {
  const ux = u1 < u0 ? u1 : u1 - 1;
  if (ux < 2 || (ux - 2) % 5 !== 0) return nk;
  const xd = (ux - 2) / 5;
  if (xd > wMax) return nk;
  px[nk] = xd;
  py[nk] = pixelRow(v1 < v0 ? v1 : v0, h);
  return nk + 1;
}

/**
 * Crossings inside an x-major edge (u moves by one each step): consecutive points t and t + 1 (in either
 * walking direction) give u' = xs + t, so only t with xs + t = 2 mod 5 are visited.
 */
function xMajorCrossings(xs: number, ys: number, s: number, dx: number, px: Int32Array, py: Int32Array, nk: number, wMax: number, h: number): number {
  let t = (2 - xs) % 5;
  if (t < 0) t += 5;
  for (; t < dx; t += 5) {
    const ux = xs + t;
    if (ux < 2) continue;
    const xd = (ux - 2) / 5;
    if (xd > wMax) break;
    // ys + s*t lies between two int32 vertices, so | 0 is C's (int) truncation here.
    const v0 = (ys + s * t + 0.5) | 0;
    const v1 = (ys + s * (t + 1) + 0.5) | 0;
    px[nk] = xd;
    py[nk] = pixelRow(v1 < v0 ? v1 : v0, h);
    nk++;
  }
  return nk;
}

/**
 * Crossings inside a y-major edge: u(t) = (int)(xs + s*t + .5) is monotone and moves by at most one a step,
 * so the pairs whose u differ are the steps t -> t + 1 where it passes from U to U + 1 (or back); the kept
 * point is u' = U, v'' = ys + t. Only U = 2 mod 5 can be kept: those steps are found directly.
 */
function yMajorCrossings(xs: number, ys: number, s: number, dy: number, px: Int32Array, py: Int32Array, nk: number, wMax: number, h: number): number {
  const u0 = (xs + 0.5) | 0;
  const u1 = (xs + s * dy + 0.5) | 0;
  const uLo = u0 < u1 ? u0 : u1;
  const uHi = u0 < u1 ? u1 : u0;
  let U = uLo < 2 ? 2 : uLo;
  U += (((2 - U) % 5) + 5) % 5;
  for (; U < uHi; U += 5) {
    const xd = (U - 2) / 5;
    if (xd > wMax) break;
    px[nk] = xd;
    py[nk] = pixelRow(ys + lastStepOnSide(xs, s, dy, U), h);
    nk++;
  }
  return nk;
}

/**
 * The last step t of a y-major edge with u(t) on U's side (for s > 0: u(t) <= U; for s < 0: u(t) >= U + 1):
 * z = U + 1 is the boundary, u being floor(z) here (z >= 2); the estimate is corrected to the exact rounding.
 */
function lastStepOnSide(xs: number, s: number, dy: number, U: number): number {
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
  return t;
}

/**
 * The crossings' pixel indices x * h + y, sorted (column, then row: the same order, y being at most h), with
 * h * w appended: counting sort on the column, then insertion sort on the few rows of each column.
 */
function sortedPixelIndices(px: Int32Array, py: Int32Array, m: number, h: number, w: number): Uint32Array {
  const a = u32Scratch(m + 1);
  if (m > 0) {
    // only the polygon's own columns: small polygons on big images must not pay for the image width
    let x0 = w;
    let x1 = -1;
    for (let j = 0; j < m; j++) {
      if (px[j] < x0) x0 = px[j];
      if (px[j] > x1) x1 = px[j];
    }
    const nc = x1 - x0 + 1;
    const start = colScratch(2 * (nc + 1)); // start[c]: first slot of column x0 + c; start[nc + 1 + c]: its next free slot
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
  }
  a[m] = (h * w) >>> 0; // no key exceeds h * w, so the array stays sorted
  return a;
}

/** maskApi.c's last step: sorted indices a[0 .. m] to run lengths, zero-length runs merged away, into b. */
function runsFromIndices(a: Uint32Array, m: number, b: Uint32Array): number {
  let p = 0;
  for (let j = 0; j <= m; j++) {
    const t = a[j];
    a[j] = (a[j] - p) >>> 0;
    p = t;
  }
  const kn = m + 1;
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
  return bm;
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
