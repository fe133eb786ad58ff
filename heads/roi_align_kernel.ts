/**
 * The WebAssembly engine of RoIAlign over NHWC features (heads/roi_align.ts holds the reference JS RoIAlign it
 * must match bit for bit): kept apart because staging, the shared memory and the helper thread are runtime
 * machinery with their own state and failure modes, which the float32 sampling rules should not be read through.
 */

import { Worker } from 'node:worker_threads';
import { ROI_ALIGN_WASM } from './roi_align_wasm.ts';
// An import cycle with roi_align.ts, harmless: neither module uses the other's bindings while it loads.
import { checkFeature, roiGrid, type FeatureMap } from './roi_align.ts';

const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------------------------
// WebAssembly path (NHWC features): heads/roi_align.wat replays each RoI's sampling grid, builds every bin's taps
// exactly as roiAlignInto does and runs the multiply-adds over the channels (float32 features: the same float64
// association as accumulateNHWC, so the results are bit-identical; uint8 features: the integer sweep of
// accumulateU8; test/roi_align.test.ts checks both paths against each other). In WebAssembly SIMD the sweep runs
// about 4x faster than the JS loop, and with `threads: 2` a helper thread takes RoIs from the same shared counter
// as the main thread. The features are copied once per pyramid into the kernel's (shared) memory: stageFeatures
// lets the box and mask RoIAlign of one image share that copy. roiAlignInto stays as the path for NCHW features
// and runtimes without WebAssembly SIMD or shared memory.

export interface Engine {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  /** RoIs g0 .. g1 of the records at `groups` (heads/roi_align.wat); `u8` 1 for uint8 features. */
  run: (g0: number, g1: number, groups: number, ph: number, pw: number, C: number, stride: number, scratch: number, u8: number,
    samplingRatio: number, aligned: number, capY: number, capX: number, counter: number) => void;
  helper: Worker | null;
}
let engine: Engine | null | undefined;
export let wasmEnabled = true;

export function loadEngine(): Engine | null {
  if (engine !== undefined) return engine;
  engine = null;
  try {
    const bytes = Buffer.from(ROI_ALIGN_WASM, 'base64');
    const module = new WebAssembly.Module(bytes);
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
    const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Pick<Engine, 'run'>;
    engine = { memory, module, run: ex.run, helper: null };
  } catch {
    engine = null; // no SIMD or shared memory here: the JS path gives the same result
  }
  return engine;
}

/**
 * Chooses the channel sweep of NHWC RoIAlign: WebAssembly (default where the runtime has it) or plain JS. Both
 * give identical results; the switch exists for tests and benchmarks. Returns whether WebAssembly is now in use.
 */
export function useWasmRoiAlign(on: boolean): boolean {
  wasmEnabled = on;
  return on && loadEngine() !== null;
}

// Words 0, 1 and 2 of the kernel's memory: the helper's job state (0 running, 1 done, 2 failed), whether it is
// ready, and the next RoI of a shared run (taken in chunks by both threads). The helper is a plain-JS worker (no TypeScript loader needed) that instantiates the same module on the
// same memory and runs `run` on the ranges posted to it.
const JOB = 0, READY = 1, COUNTER = 2;
const HELPER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, memory } = workerData;
const { run } = new WebAssembly.Instance(module, { env: { memory } }).exports;
const flags = () => new Int32Array(memory.buffer, 0, 2);
Atomics.store(flags(), ${READY}, 1);
parentPort.on('message', (a) => {
  let state = 1;
  try { run(...a); } catch { state = 2; }
  const f = flags();
  Atomics.store(f, ${JOB}, state);
  Atomics.notify(f, ${JOB});
});`;

/**
 * Starts the helper thread of `threads: 2` RoIAlign ahead of the first call (it takes tens of ms to start; a
 * call made before it is ready runs on one thread). Detectors call this when loaded with two or more threads.
 */
export function startRoiAlignHelper(): void {
  const e = wasmEnabled ? loadEngine() : null;
  if (!e || e.helper) return;
  try {
    const w = new Worker(HELPER_SRC, { eval: true, workerData: { module: e.module, memory: e.memory } });
    w.unref(); // never keeps the process alive
    w.on('error', () => { Atomics.store(flags(e), READY, 0); });
    w.on('exit', () => { Atomics.store(flags(e), READY, 0); });
    e.helper = w;
  } catch {
    e.helper = null;
  }
}

const flags = (e: Engine): Int32Array => new Int32Array(e.memory.buffer, 0, 3);

/** Whether the helper thread of `threads: 2` is up (for tests and benchmarks). */
export function roiAlignHelperReady(): boolean {
  const e = engine;
  return !!e && !!e.helper && Atomics.load(flags(e), READY) === 1;
}

/** Grows the kernel's memory to at least `bytes`. */
function reserve(e: Engine, bytes: number): void {
  const have = e.memory.buffer.byteLength;
  if (bytes > have) e.memory.grow(Math.ceil((bytes - have) / 65536));
}

const FEAT_BASE = 64;
let stagedStamp = 0; // bumped whenever the feature region is rewritten
let stagedBytes = 0;

/** NHWC features copied into the WebAssembly kernel's memory (see stageFeatures). */
export interface StagedFeatures {
  levels: readonly FeatureMap[];
  /** Byte address of each level in the kernel's memory. */
  bases: number[];
  stamp: number;
}

/**
 * Copies a pyramid of NHWC features into the RoIAlign kernel's memory once, for several multiScaleRoiAlign
 * calls (a detector's box and mask RoIAlign). The copy is refreshed from `levels` if other features were
 * staged in between; the arrays must not change while the handle is in use. Without WebAssembly it just
 * holds the levels.
 */
export function stageFeatures(levels: readonly FeatureMap[]): StagedFeatures {
  levels.forEach(checkFeature);
  const bases: number[] = [];
  let p = FEAT_BASE;
  for (const f of levels) {
    bases.push(p);
    p += ((f.data.byteLength + 15) & ~15);
  }
  const staged = { levels, bases, stamp: -1 };
  const e = wasmEnabled ? loadEngine() : null;
  if (e && levels.every((f) => f.layout === 'nhwc')) copyStaged(e, staged, p);
  return staged;
}

function copyStaged(e: Engine, s: StagedFeatures, end: number): void {
  reserve(e, end);
  // Buffer.copy is a plain memcpy; TypedArray.set into a SharedArrayBuffer took twice as long (Node 20).
  const heap = Buffer.from(e.memory.buffer);
  s.levels.forEach((f, l) => Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength).copy(heap, s.bases[l]));
  stagedBytes = end;
  s.stamp = ++stagedStamp;
}

/**
 * An order of the RoIs in which neighbours read the same feature pixels: by level, then along a Z-order curve
 * of the centres on a grid of 16 feature pixels. Proposals cluster on objects, so consecutive RoIs then find
 * most of their pixels still in cache; the sweep is memory-bound in proposal (score) order. Results do not
 * depend on the order (every bin is computed on its own and written to its own place).
 */
function localityOrder(boxes: Float32Array, levels: Int32Array, scales: readonly number[]): Int32Array {
  const n = levels.length;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const l = levels[i];
    const s = l >= 0 && l < scales.length ? scales[l] / 16 : 0;
    let gx = Math.floor(0.5 * (boxes[i * 4] + boxes[i * 4 + 2]) * s), gy = Math.floor(0.5 * (boxes[i * 4 + 1] + boxes[i * 4 + 3]) * s);
    if (!(gx >= 0)) gx = 0;
    if (!(gy >= 0)) gy = 0;
    let z = 0;
    for (let b = 0; b < 12; b++) z += (((gx >> b) & 1) * 2 + ((gy >> b) & 1)) * 4 ** b;
    keys[i] = (l + 1) * 4 ** 12 + z;
  }
  const order = Int32Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => keys[a] - keys[b] || a - b);
  return order;
}

/** Bytes of a RoI's record in the kernel's memory (see `run` in heads/roi_align.wat). */
const REC = 96;

/**
 * multiScaleRoiAlign over NHWC levels with the WebAssembly kernel; `levels[i]` outside the pyramid gives a
 * zero RoI. JS writes one 96-byte record per RoI (its box, level and output place); the kernel replays the
 * sampling grid (roiGeometry), builds each bin's taps and sweeps the channels, so with `threads` 2 the helper
 * thread does all of that for its share of the RoIs.
 */
export function multiScaleRoiAlignWasm(
  e: Engine, s: StagedFeatures, boxes: Float32Array, levels: Int32Array, scales: readonly number[],
  ph: number, pw: number, samplingRatio: number, aligned: boolean, threads: number, out?: Float32Array,
): Float32Array {
  if (s.stamp !== stagedStamp) {
    const last = s.levels.length - 1;
    copyStaged(e, s, s.bases[last] + ((s.levels[last].data.byteLength + 15) & ~15));
  }
  const n = boxes.length / 4;
  const C = s.levels[0].channels;
  const PP = ph * pw;
  const u8 = s.levels[0].data instanceof Uint8Array;
  const order = localityOrder(boxes, levels, scales);
  const outAt = stagedBytes;
  const outBytes = n * C * PP * 4;
  const recAt = outAt + ((outBytes + 15) & ~15);
  reserve(e, recAt + n * REC);
  const buf0 = e.memory.buffer;
  const i32 = new Int32Array(buf0), f32v = new Float32Array(buf0);
  // Each RoI's grid bounds its stencils and estimates its cost (is a second thread worth it).
  let cost = 0;
  let capY = 1, capX = 1;
  for (let k = 0; k < n; k++) {
    const i = order[k];
    const l = levels[i];
    const f = l >= 0 && l < s.levels.length ? s.levels[l] : undefined;
    const b = i * 4;
    const r = (recAt + k * REC) >> 2;
    i32[r + 3] = outAt + i * C * PP * 4;
    const grid = f && f.height > 0 && f.width > 0
      ? roiGrid(boxes[b], boxes[b + 1], boxes[b + 2], boxes[b + 3], f32(scales[l]), ph, pw, samplingRatio, aligned) : null;
    i32[r + 14] = grid ? 1 : 0;
    if (!grid || !f) continue;
    const pixBytes = C * f.data.BYTES_PER_ELEMENT;
    i32[r] = s.bases[l];
    i32[r + 1] = f.width * pixBytes;
    i32[r + 2] = pixBytes;
    i32[r + 10] = f.quant?.zeroPoint ?? 0;
    f32v[r + 11] = f.quant?.scale ?? 0;
    i32[r + 15] = f.height;
    i32[r + 16] = f.width;
    f32v[r + 17] = boxes[b];
    f32v[r + 18] = boxes[b + 1];
    f32v[r + 19] = boxes[b + 2];
    f32v[r + 20] = boxes[b + 3];
    f32v[r + 21] = scales[l];
    // A bin touches at most two pixels per sample along an axis, and never more than the axis has.
    capY = Math.max(capY, ph * Math.min(2 * grid.gh, f.height));
    capX = Math.max(capX, pw * Math.min(2 * grid.gw, f.width));
    cost += (ph * (Math.min(grid.binH, f.height) + 1) + 1) * (pw * (Math.min(grid.binW, f.width) + 1) + 1);
  }
  const maxTaps = capY * capX;
  if (!(maxTaps < 1 << 26)) throw new Error(`roiAlign: a RoI samples too many pixels (${capY} x ${capX} taps)`);
  // Scratch per thread: the stencils, then the taps (as `run` lays them out), with slack for alignment.
  const scratchBytes = 12 * (capY + capX) + 4 * (ph + pw) + 128 + (PP + 1) * 4 + 16 + maxTaps * 4 + 16 + maxTaps * 8 + 16 + PP * 4 + 64;
  const at = recAt + n * REC;
  const scratch0 = (at + 63) & ~63;
  const scratch1 = scratch0 + ((scratchBytes + 63) & ~63);
  reserve(e, scratch1 + scratchBytes);
  const buf = e.memory.buffer;
  const args = [recAt, ph, pw, C, PP * 4];
  const tail = (scratch: number) => [scratch, u8 ? 1 : 0, samplingRatio, aligned ? 1 : 0, capY, capX];
  const f = flags(e);
  // Worth a thread hand-off (~0.1 ms) only with some work.
  if (threads >= 2 && !e.helper) startRoiAlignHelper();
  if (threads >= 2 && e.helper && Atomics.load(f, READY) === 1 && cost * C > 1 << 20) {
    // Both threads take chunks of RoIs from a shared counter until none are left: they finish together
    // whatever each RoI costs, and the helper joins whenever its message arrives.
    Atomics.store(f, COUNTER, 0);
    Atomics.store(f, JOB, 0);
    e.helper.postMessage([0, n, ...args, ...tail(scratch1), COUNTER * 4]);
    e.run(0, n, ...(args as [number, number, number, number, number]), ...(tail(scratch0) as [number, number, number, number, number, number]), COUNTER * 4);
    // A synchronous wait keeps roiAlign synchronous; the helper only runs `run`, so it answers or traps.
    if (Atomics.wait(f, JOB, 0, 120_000) === 'timed-out') throw new Error('roiAlign: the helper thread did not answer in 2 minutes');
    if (Atomics.load(f, JOB) !== 1) throw new Error('roiAlign: the helper thread failed');
  } else {
    e.run(0, n, ...(args as [number, number, number, number, number]), ...(tail(scratch0) as [number, number, number, number, number, number]), 0);
  }
  const res = out ?? new Float32Array(n * C * PP);
  res.set(new Float32Array(buf, outAt, n * C * PP));
  return res;
}
