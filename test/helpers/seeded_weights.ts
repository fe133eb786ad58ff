/**
 * Seeded float32 weights, generated identically here and in Python
 * (scripts/fixtures/mmdet_reference.py, `seeded_tensor`), so parity fixtures can stand for
 * checkpoints far too big to commit: the fixture commits a spec (name, shape, scale, offset)
 * and both sides rebuild the same tensors bit for bit.
 *
 * Counter-based, so any element can be computed on its own and numpy can vectorise it:
 *   key   = fnv1a32(name) ^ seed
 *   bits  = mix32(key ^ mix32(i + 0x9e3779b9))        (uint32, lowbias32 finaliser)
 *   r     = ((bits >>> 8) - 2^23) / 2^23               (exact in float32, in [-1, 1))
 *   value = f32(f32(r * f32(scale)) + f32(offset))
 */
import type { FloatTensor, StateDict } from '../../core/tensor.ts';
import { numel } from '../../core/tensor.ts';
import { fnv1a32 } from '../../backbones/synthetic.ts';

export interface SeededSpec {
  name: string;
  shape: number[];
  scale: number;
  offset: number;
}

// The same FNV-1a that keys the backbones' synthetic weights.
export { fnv1a32 };

export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

export function seededTensor(spec: SeededSpec, seed: number): FloatTensor {
  const n = numel(spec.shape);
  const data = new Float32Array(n);
  const key = (fnv1a32(spec.name) ^ seed) >>> 0;
  const scale = Math.fround(spec.scale);
  const offset = Math.fround(spec.offset);
  for (let i = 0; i < n; i++) {
    const bits = mix32((key ^ mix32((i + 0x9e3779b9) >>> 0)) >>> 0);
    const r = ((bits >>> 8) - 0x800000) / 0x800000;
    data[i] = Math.fround(Math.fround(r * scale) + offset);
  }
  return { shape: spec.shape.slice(), data };
}

export function seededStateDict(specs: readonly SeededSpec[], seed: number): StateDict {
  const sd: StateDict = new Map();
  for (const spec of specs) sd.set(spec.name, seededTensor(spec, seed));
  return sd;
}
