/**
 * Deterministic synthetic weights, implemented identically in scripts/fixtures/make_backbone_fixtures.py, so
 * that parity fixtures need only a seed instead of megabytes of weights. Each tensor's values come from a
 * counter-based mulberry32 stream keyed by FNV-1a(key) ^ seed; the float mapping uses only exactly-rounded
 * double operations, so Python (numpy float64) and JS produce the same float32 bits.
 *
 * Value rules by key (PyTorch state_dict conventions):
 *   *.num_batches_tracked  -> int64 0
 *   *.running_var          -> 0.5 + u
 *   1-D *.weight (norm γ)  -> 0.5 + u
 *   *.running_mean, 1-D *  -> (2u - 1) * 0.2
 *   N-D weights            -> (2u - 1) * sqrt(3 / fan_in)      (variance 1 / fan_in)
 * with u uniform in [0, 1) on a 2^-24 grid.
 */
import { numel, type StateDict, type Tensor } from '../core/tensor.ts';

export interface ParamSpec { key: string; shape: number[] }

export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** u_i in [0, 1) for i = 0..n-1 of the stream `streamSeed`. */
export function uniformStream(streamSeed: number, n: number): Float64Array {
  const out = new Float64Array(n);
  let state = streamSeed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const x = (t ^ (t >>> 14)) >>> 0;
    out[i] = (x >>> 8) / 16777216;
  }
  return out;
}

export function syntheticTensor(key: string, shape: number[], seed: number): Tensor {
  const n = numel(shape);
  if (key.endsWith('num_batches_tracked')) return { shape, data: new BigInt64Array(n) };
  const u = uniformStream((fnv1a32(key) ^ seed) >>> 0, n);
  const data = new Float32Array(n);
  if (key.endsWith('.running_var') || (shape.length === 1 && key.endsWith('.weight'))) {
    for (let i = 0; i < n; i++) data[i] = 0.5 + u[i];
  } else if (shape.length <= 1) {
    for (let i = 0; i < n; i++) data[i] = (2 * u[i] - 1) * 0.2;
  } else {
    const scale = Math.sqrt(3 / numel(shape.slice(1)));
    for (let i = 0; i < n; i++) data[i] = (2 * u[i] - 1) * scale;
  }
  return { shape, data };
}

export function syntheticStateDict(specs: ParamSpec[], seed: number, prefix = ''): StateDict {
  const sd: StateDict = new Map();
  for (const s of specs) sd.set(prefix + s.key, syntheticTensor(s.key, s.shape, seed));
  return sd;
}

/** A uniform [-1, 1) input tensor from the same generator (key 'input'). */
export function syntheticInput(shape: number[], seed: number): Tensor<Float32Array> {
  const u = uniformStream((fnv1a32('input') ^ seed) >>> 0, numel(shape));
  const data = new Float32Array(u.length);
  for (let i = 0; i < u.length; i++) data[i] = 2 * u[i] - 1;
  return { shape, data };
}
