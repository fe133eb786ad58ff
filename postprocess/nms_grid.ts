/**
 * The greedy NMS engine behind postprocess/nms.ts: the visit-order scan, the size-level grid fast path and its
 * WebAssembly kernel (postprocess/nms_greedy.wat) with the scratch memory they share. Kept apart from the
 * framework entry points because it is stateful, speed-tuned machinery that changes as one piece, while
 * nms.ts holds the torchvision/mmcv semantics that callers and reviewers read.
 */

import { NMS_GREEDY_WASM } from './nms_greedy_wasm.ts';

const f32 = Math.fround;

export type NmsStrategy = 'auto' | 'grid' | 'brute';

// Scratch memory reused across calls (NMS is synchronous and never re-entered): allocating and zeroing a
// dozen arrays per call costs as much as the greedy loop itself on a few thousand boxes. It is the
// WebAssembly kernel's memory where that loads, so the arrays built here are the kernel's input as they are.
// Layout (see postprocess/nms_greedy.wat): a pointer table, the per-box arrays (capacity capN), the per-level
// arrays (capL), the cells (capC). Growing the tail keeps what lies before it.
interface Kernel {
  memory: WebAssembly.Memory;
  greedy: (n: number, thr: number, off: number, minX: number, minY: number, tl: number, reach: number,
    nlw: number, nlh: number, lw0: number, lh0: number, shift: number) => number;
  cells: (n: number, nc: number, minX: number, minY: number) => void;
  prep: (n: number, off: number) => void;
  levels: (n: number, shift: number, lw0: number, lh0: number, nlh: number, nl: number) => void;
}
let kernel: Kernel | null | undefined;
let kernelEnabled = true;

function loadKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  kernel = null;
  try {
    const bytes = Buffer.from(NMS_GREEDY_WASM, 'base64');
    if (WebAssembly.validate(bytes)) kernel = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as Kernel;
  } catch {
    kernel = null; // no WebAssembly here: the JS scan gives the same result
  }
  return kernel;
}

/**
 * Chooses the greedy scan of the grid strategy: WebAssembly (default where the runtime has it) or plain JS.
 * Both give identical results; the switch exists for tests and benchmarks. Returns whether WebAssembly is
 * now in use.
 */
export function useWasmNms(on: boolean): boolean {
  kernelEnabled = on;
  return on && loadKernel() !== null;
}

let buf: ArrayBuffer = new ArrayBuffer(0);
let capN = -1, capL = 0, capC = 0;
let X1 = new Float32Array(0), Y1 = X1, X2 = X1, Y2 = X1, AREA = X1;
let CX = new Float64Array(0), CY = CX, BW = CX, BH = CX, ICSX = CX, ICSY = CX;
let IREC = new Int32Array(0), LVL = IREC, CELL = LVL, KEEP = LVL, CNT = LVL, BASE = LVL, GXS = LVL, GYS = LVL, START = LVL, LEN = LVL;
let SUPP = new Uint8Array(0);
let FREC = new Float32Array(0);

const align8 = (v: number): number => (v + 7) & ~7;

/** (Re)lays out the scratch memory for n boxes, nl levels and nc cells; contents before a grown part stay. */
function layout(n: number, nl: number, nc: number): void {
  const k = kernelEnabled ? loadKernel() : null;
  if (n <= capN && nl <= capL && nc <= capC && buf === (k ? k.memory.buffer : buf) && buf.byteLength > 0) return;
  if (n > capN) capN = Math.max(n, capN * 2, 1024);
  if (nl > capL) capL = Math.max(nl, capL * 2, 1024);
  if (nc > capC) capC = Math.max(nc, capC * 2, 2048);
  const N = capN, L = capL, C = capC;
  let p = 256; // pointer table, prep's results (96..147)
  const at = (bytes: number): number => { const q = p; p = align8(p + bytes); return q; };
  const o = {
    x1: at(4 * N), y1: at(4 * N), x2: at(4 * N), y2: at(4 * N), area: at(4 * N),
    cx: at(8 * N), cy: at(8 * N), bw: at(8 * N), bh: at(8 * N),
    lvl: at(4 * N), supp: at(N), keep: at(4 * N), items: at(32 * N), cell: at(4 * N),
    cnt: at(4 * L), base: at(4 * L), gx: at(4 * L), gy: at(4 * L), icsx: at(8 * L), icsy: at(8 * L),
    start: at(4 * (C + 1)), len: at(4 * C),
  };
  if (k) {
    const pages = Math.ceil((p - k.memory.buffer.byteLength) / 65536);
    if (pages > 0) k.memory.grow(pages);
    buf = k.memory.buffer;
  } else if (buf.byteLength < p || (buf as unknown) === kernel?.memory.buffer) {
    const nb = new ArrayBuffer(p);
    new Uint8Array(nb).set(new Uint8Array(buf, 0, Math.min(buf.byteLength, p)));
    buf = nb;
  }
  X1 = new Float32Array(buf, o.x1, N); Y1 = new Float32Array(buf, o.y1, N);
  X2 = new Float32Array(buf, o.x2, N); Y2 = new Float32Array(buf, o.y2, N); AREA = new Float32Array(buf, o.area, N);
  CX = new Float64Array(buf, o.cx, N); CY = new Float64Array(buf, o.cy, N);
  BW = new Float64Array(buf, o.bw, N); BH = new Float64Array(buf, o.bh, N);
  LVL = new Int32Array(buf, o.lvl, N); SUPP = new Uint8Array(buf, o.supp, N); KEEP = new Int32Array(buf, o.keep, N);
  IREC = new Int32Array(buf, o.items, 8 * N); FREC = new Float32Array(buf, o.items, 8 * N); CELL = new Int32Array(buf, o.cell, N);
  CNT = new Int32Array(buf, o.cnt, L); BASE = new Int32Array(buf, o.base, L);
  GXS = new Int32Array(buf, o.gx, L); GYS = new Int32Array(buf, o.gy, L);
  ICSX = new Float64Array(buf, o.icsx, L); ICSY = new Float64Array(buf, o.icsy, L);
  START = new Int32Array(buf, o.start, C + 1); LEN = new Int32Array(buf, o.len, C);
  new Int32Array(buf, 0, 22).set([o.x1, o.y1, o.x2, o.y2, o.area, o.cx, o.cy, o.bw, o.bh, o.lvl, o.supp, o.keep,
    o.items, o.start, o.len, o.cnt, o.base, o.gx, o.gy, o.icsx, o.icsy, o.cell]);
}

/**
 * Greedy NMS over `order` (visit order); returns kept original indices in visit order.
 * `thr` is compared with the float32 IoU as given (pass Math.fround(t) for mmcv's float threshold).
 * `offset` is mmcv's legacy +1 box extent (0 or 1).
 *
 * The kernels compare every kept box with every later live box. We reach the same decisions while only
 * looking at boxes that can possibly exceed the threshold (see gridGreedy). Whether j is suppressed depends
 * only on the IoU of (i, j), computed exactly as the kernel does, so the kept set and its order are identical.
 */
export function nmsInOrder(
  boxes: Float32Array, order: Int32Array, thr: number, offset: number, maxOut: number, strategy: NmsStrategy = 'auto',
): Int32Array {
  const n = order.length;
  const finite = loadSorted(boxes, order, n, offset);
  // Decided here, not in the hot function: string compares there deopted it on every call.
  const useGrid = strategy === 'brute' ? false : strategy === 'grid' || n > 64;
  if (useGrid && finite && thr >= 0.05) return gridGreedy(order, n, thr, offset, maxOut);
  return bruteGreedy(order, n, thr, offset, maxOut);
}

/** Sorted, contiguous copies of the boxes (inner loops then stream through memory) and float32 areas. */
function loadSorted(boxes: Float32Array, order: Int32Array, n: number, offset: number): boolean {
  layout(n, 0, 0);
  const x1 = X1, y1 = Y1, x2 = X2, y2 = Y2, area = AREA;
  let bad = 0;
  for (let k = 0; k < n; k++) {
    const b = order[k] * 4;
    const a = boxes[b], c = boxes[b + 1], d = boxes[b + 2], e = boxes[b + 3];
    x1[k] = a;
    y1[k] = c;
    x2[k] = d;
    y2[k] = e;
    area[k] = offset === 0 ? f32(f32(d - a) * f32(e - c)) : f32(f32(f32(d - a) + offset) * f32(f32(e - c) + offset));
    const s = a + c + d + e;
    bad += s - s; // NaN if any coordinate is NaN or infinite
  }
  return bad === 0;
}

/** The kernel's test: does kept box i suppress box j (float32 IoU > thr)? Reads the sorted copies. */
function iouAbove(i: number, j: number, thr: number, offset: number): boolean {
  const x1 = X1, y1 = Y1, x2 = X2, y2 = Y2;
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
  return f32(inter / f32(f32(AREA[i] + AREA[j]) - inter)) > thr;
}

function bruteGreedy(order: Int32Array, n: number, thr: number, offset: number, maxOut: number): Int32Array {
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
      if (!iouAbove(i, j, thr, offset)) live[w++] = j;
    }
    nLive = w;
  }
  return keep.slice(0, nKeep);
}

const GRID_MAX = 64;
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);

/** floor(log2(v)) for positive finite v (the binary exponent; -1023 for subnormals). */
function log2Floor(v: number): number {
  F64[0] = v;
  return (U32[1] >>> 20) - 1023;
}

/**
 * Greedy NMS visiting only the pairs that can exceed the threshold. IoU <= ow/max(w) (the intersection
 * ow*min(h) over the area of the wider box, ow = overlap width), so a box j that box i can suppress has
 * w_j in (thr w_i, w_i / thr), h_j likewise, and a centre within w_i * max(1 - thr, 1/(2 thr) - 1/2) of i's
 * (same for y). Boxes are binned by size into levels (pairs of octaves of w and of h), each level a uniform grid
 * by centre with cells about half its boxes' mean size; each kept box scans the cells of its window in the
 * levels its size range reaches (all with a 0.1% margin, far above float rounding of the IoU). Cells are
 * compacted as they are scanned: boxes already visited or suppressed drop out. Whether j is suppressed
 * depends only on the IoU of (i, j), computed exactly as the kernel does, so the kept set and its order are
 * the kernel's. Empty, negative or non-finite boxes never suppress nor get suppressed when thr >= 0 (their
 * IoU is 0, -0 or NaN): they are in no cell and are kept when their turn comes.
 * One function of 85 lines on purpose: it is the NMS hot path, and the cell build and the scan work on the
 * same local views of the scratch arrays.
 */
function gridGreedy(order: Int32Array, n: number, thr: number, offset: number, maxOut: number): Int32Array {
  const INVALID = -0x80000000; // below any size class (log2Floor >= -1023); any level q is >= 0
  const k = kernelEnabled ? loadKernel() : null;
  let minX: number, maxX: number, minY: number, maxY: number, minLw: number, maxLw: number, minLh: number, maxLh: number, nValid: number;
  if (k) {
    k.prep(n, offset);
    const f = new Float64Array(buf, 96, 4), r = new Int32Array(buf, 128, 5);
    [minX, maxX, minY, maxY] = f;
    [minLw, maxLw, minLh, maxLh, nValid] = r;
  } else {
    [minX, maxX, minY, maxY, minLw, maxLw, minLh, maxLh, nValid] = prepJs(n, offset);
  }
  if (nValid === 0) { // nothing can suppress
    const keep = new Int32Array(Math.min(n, maxOut));
    for (let k = 0; k < keep.length; k++) keep[k] = order[k];
    return keep;
  }
  // Coarser size classes (>> shift) when sizes span so many octaves that the level table would outgrow the boxes.
  let shift = 1; // two-octave size classes: fewer, fuller levels scan faster than one-octave ones
  while (((maxLw >> shift) - (minLw >> shift) + 1) * ((maxLh >> shift) - (minLh >> shift) + 1) > 2 * n + 256) shift++;
  const lw0 = minLw >> shift, lh0 = minLh >> shift;
  const nlw = (maxLw >> shift) - lw0 + 1, nlh = (maxLh >> shift) - lh0 + 1, nl = nlw * nlh;
  layout(n, nl, 0); // may move every view (memory grown), never the contents: read them again
  // Per level: count, mean size -> grid geometry and the level's first cell.
  let cnt = CNT, base = BASE, gxs = GXS, gys = GYS, icsx = ICSX, icsy = ICSY;
  // sums of w and h per level, in icsx / icsy until the geometry below
  if (k) k.levels(n, shift, lw0, lh0, nlh, nl);
  else {
    cnt.fill(0, 0, nl);
    icsx.fill(0, 0, nl);
    icsy.fill(0, 0, nl);
    const lvl = LVL, cellOf = CELL, bw = BW, bh = BH;
    for (let j = 0; j < n; j++) {
      if (lvl[j] === INVALID) continue;
      const q = ((cellOf[j] >> shift) - lw0) * nlh + ((lvl[j] >> shift) - lh0);
      lvl[j] = q;
      cnt[q]++;
      icsx[q] += bw[j];
      icsy[q] += bh[j];
    }
  }
  const spanX = maxX - minX, spanY = maxY - minY;
  let nc = 0;
  for (let q = 0; q < nl; q++) {
    if (cnt[q] === 0) continue;
    let csx = Math.max(0.5 * icsx[q] / cnt[q], spanX / GRID_MAX, 1e-6);
    let csy = Math.max(0.5 * icsy[q] / cnt[q], spanY / GRID_MAX, 1e-6);
    let gx = Math.floor(spanX / csx) + 1, gy = Math.floor(spanY / csy) + 1;
    // A sparse level gets a coarse grid (about a cell per box), so building the grids stays O(n).
    const maxCells = cnt[q] + 2;
    if (gx * gy > maxCells) {
      const f = Math.sqrt((gx * gy) / maxCells);
      csx *= f;
      csy *= f;
      gx = Math.floor(spanX / csx) + 1;
      gy = Math.floor(spanY / csy) + 1;
    }
    gx = Math.min(gx, GRID_MAX);
    gy = Math.min(gy, GRID_MAX);
    gxs[q] = gx;
    gys[q] = gy;
    icsx[q] = 1 / csx;
    icsy[q] = 1 / csy;
    base[q] = nc;
    nc += gx * gy;
  }
  layout(n, nl, nc);
  cnt = CNT; base = BASE; gxs = GXS; gys = GYS; icsx = ICSX; icsy = ICSY;
  // Counting sort of valid boxes into cells; filled in visit order, so each cell lists ascending positions.
  if (k) k.cells(n, nc, minX, minY);
  else cellsJs(n, nc, minX, minY);
  SUPP.fill(0, 0, n);
  // Window half-size per unit of the kept box's size: the overlap ow <= (w_i + w_j)/2 - |dcx| must exceed
  // thr * max(w_i, w_j) with w_j in (thr w_i, w_i / thr), so |dcx| < w_i * max(1 - thr, 1/(2 thr) - 1/2).
  const tl = thr * 0.999; // lowered threshold: a margin far above the float rounding of the IoU
  const reach = Math.max(1 - tl, 1 / (2 * tl) - 0.5) + 1e-3;
  let nKeep: number;
  if (k) nKeep = k.greedy(n, thr, offset, minX, minY, tl, reach, nlw, nlh, lw0, lh0, shift);
  else nKeep = scanJs(n, thr, offset, minX, minY, tl, reach, nlw, nlh, lw0, lh0, shift);
  if (nKeep > maxOut) nKeep = maxOut;
  const keep = new Int32Array(nKeep);
  const kept = KEEP;
  for (let t = 0; t < nKeep; t++) keep[t] = order[kept[t]];
  return keep;
}

/** gridGreedy's first pass in JS (the `prep` of nms_greedy.wat). */
function prepJs(n: number, offset: number): number[] {
  const x1 = X1, y1 = Y1, x2 = X2, y2 = Y2, cx = CX, cy = CY, bw = BW, bh = BH, lvl = LVL, cellOf = CELL;
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  let minLw = 1 << 30, maxLw = -(1 << 30), minLh = 1 << 30, maxLh = -(1 << 30);
  const INVALID = -0x80000000;
  let nValid = 0;
  for (let k = 0; k < n; k++) {
    const w = x2[k] - x1[k] + offset, h = y2[k] - y1[k] + offset;
    if (!(w > 0 && h > 0)) {
      lvl[k] = INVALID;
      continue;
    }
    nValid++;
    bw[k] = w;
    bh[k] = h;
    const px = 0.5 * (x1[k] + x2[k] + offset), py = 0.5 * (y1[k] + y2[k] + offset);
    cx[k] = px;
    cy[k] = py;
    if (px < minX) minX = px;
    if (px > maxX) maxX = px;
    if (py < minY) minY = py;
    if (py > maxY) maxY = py;
    const lw = log2Floor(w), lh = log2Floor(h);
    if (lw < minLw) minLw = lw;
    if (lw > maxLw) maxLw = lw;
    if (lh < minLh) minLh = lh;
    if (lh > maxLh) maxLh = lh;
    cellOf[k] = lw; // the size classes for now, combined into a level below
    lvl[k] = lh;
  }
  return [minX, maxX, minY, maxY, minLw, maxLw, minLh, maxLh, nValid];
}

/** gridGreedy's counting sort of the boxes into cells and item records in JS (the `cells` of nms_greedy.wat). */
function cellsJs(n: number, nc: number, minX: number, minY: number): void {
  const gxs = GXS, gys = GYS, icsx = ICSX, icsy = ICSY, base = BASE;
  const start = START, len = LEN, irec = IREC, frec = FREC, cell = CELL, lv = LVL, px = CX, py = CY;
  start.fill(0, 0, nc + 1);
  for (let k = 0; k < n; k++) {
    const q = lv[k];
    if (q < 0) continue;
    const gx = gxs[q], gy = gys[q];
    let ix = Math.floor((px[k] - minX) * icsx[q]);
    let iy = Math.floor((py[k] - minY) * icsy[q]);
    if (ix >= gx) ix = gx - 1;
    if (iy >= gy) iy = gy - 1;
    const c = base[q] + iy * gx + ix;
    cell[k] = c;
    start[c + 1]++;
  }
  for (let c = 0; c < nc; c++) start[c + 1] += start[c];
  len.fill(0, 0, nc);
  const sx1 = X1, sy1 = Y1, sx2 = X2, sy2 = Y2, sarea = AREA, sbw = BW, sbh = BH;
  for (let k = 0; k < n; k++) {
    if (lv[k] < 0) continue;
    const c = cell[k];
    // item records (8 words): j, then x1 y1 x2 y2 area w h as float32, so that a cell scan streams memory
    const r = (start[c] + len[c]++) * 8;
    irec[r] = k;
    frec[r + 1] = sx1[k];
    frec[r + 2] = sy1[k];
    frec[r + 3] = sx2[k];
    frec[r + 4] = sy2[k];
    frec[r + 5] = sarea[k];
    frec[r + 6] = sbw[k];
    frec[r + 7] = sbh[k];
  }
}

/** The greedy scan of gridGreedy in JS: the same steps as postprocess/nms_greedy.wat, for runtimes without it. */
function scanJs(
  n: number, thr: number, offset: number, minX: number, minY: number, tl: number, reach: number,
  nlw: number, nlh: number, lw0: number, lh0: number, shift: number,
): number {
  const x1 = X1, y1 = Y1, x2 = X2, y2 = Y2, area = AREA, cx = CX, cy = CY, bw = BW, bh = BH, lvl = LVL;
  const cnt = CNT, base = BASE, gxs = GXS, gys = GYS, icsx = ICSX, icsy = ICSY;
  const start = START, len = LEN, irec = IREC, frec = FREC, suppressed = SUPP, keep = KEEP;
  let nKeep = 0;
  for (let i = 0; i < n; i++) {
    if (suppressed[i]) continue;
    keep[nKeep++] = i;
    if (lvl[i] < 0) continue;
    const wi = bw[i], hi = bh[i];
    const x1i = x1[i], y1i = y1[i], x2i = x2[i], y2i = y2[i], areai = area[i];
    const rx = reach * wi + 1e-6 * (Math.abs(cx[i]) + 1);
    const ry = reach * hi + 1e-6 * (Math.abs(cy[i]) + 1);
    const xa = cx[i] - rx - minX, xb = cx[i] + rx - minX, ya = cy[i] - ry - minY, yb = cy[i] + ry - minY;
    const wLo = tl * wi, wHi = wi / tl, hLo = tl * hi, hHi = hi / tl;
    let wa = (log2Floor(wLo * 0.999) >> shift) - lw0, wb = (log2Floor(wHi * 1.001) >> shift) - lw0;
    let ha = (log2Floor(hLo * 0.999) >> shift) - lh0, hb = (log2Floor(hHi * 1.001) >> shift) - lh0;
    if (wa < 0) wa = 0;
    if (wb >= nlw) wb = nlw - 1;
    if (ha < 0) ha = 0;
    if (hb >= nlh) hb = nlh - 1;
    for (let qw = wa; qw <= wb; qw++) {
      for (let q = qw * nlh + ha, qe = qw * nlh + hb; q <= qe; q++) {
        if (cnt[q] === 0) continue;
        const gx = gxs[q], gy = gys[q], sx = icsx[q], sy = icsy[q];
        let ca = Math.floor(xa * sx), cb = Math.floor(xb * sx), ra = Math.floor(ya * sy), rb = Math.floor(yb * sy);
        if (ca < 0) ca = 0;
        if (ra < 0) ra = 0;
        if (cb >= gx) cb = gx - 1;
        if (rb >= gy) rb = gy - 1;
        for (let r = ra; r <= rb; r++) {
          for (let c = base[q] + r * gx + ca, ce = base[q] + r * gx + cb; c <= ce; c++) {
            const s = start[c], e = s + len[c];
            let w = s;
            for (let t = s; t < e; t++) {
              const r = t * 8;
              const j = irec[r];
              // Positions <= i are done for all later kept boxes too: drop them. A box sits in one cell
              // only and leaves it when suppressed, so no suppressed box is met here.
              if (j <= i) continue;
              // IoU <= min(w)/max(w) and min(h)/max(h): sizes too different cannot reach the threshold
              const wj = frec[r + 6], hj = frec[r + 7];
              if (!(wj <= wLo || wj >= wHi || hj <= hLo || hj >= hHi)) {
                // the kernel's IoU; both boxes finite with positive extent here, so no NaN cases
                const x1j = frec[r + 1], y1j = frec[r + 2], x2j = frec[r + 3], y2j = frec[r + 4];
                const ww = offset === 0 ? f32((x2j < x2i ? x2j : x2i) - (x1i < x1j ? x1j : x1i))
                  : f32(f32((x2j < x2i ? x2j : x2i) - (x1i < x1j ? x1j : x1i)) + offset);
                const hh = offset === 0 ? f32((y2j < y2i ? y2j : y2i) - (y1i < y1j ? y1j : y1i))
                  : f32(f32((y2j < y2i ? y2j : y2i) - (y1i < y1j ? y1j : y1i)) + offset);
                if (ww > 0 && hh > 0) {
                  const inter = f32(ww * hh);
                  if (f32(inter / f32(f32(areai + frec[r + 5]) - inter)) > thr) {
                    suppressed[j] = 1;
                    continue;
                  }
                }
              }
              if (w !== t) irec.copyWithin(w * 8, r, r + 8);
              w++;
            }
            len[c] = w - s;
          }
        }
      }
    }
  }
  return nKeep;
}
