/**
 * Float32 elementwise math exactly as PyTorch's CPU kernels compute it (torch 1.13, AVX2/AVX-512 builds).
 * `torch.exp` on a float32 tensor runs SLEEF's `expf_u10` (vectorised, with fused multiply-adds), which is
 * not correctly rounded: ~9% of results differ by one ulp from Math.fround(Math.exp(x)). Replaying its
 * polynomial with an exact float32 FMA makes decoded boxes bit-identical.
 */

const f32 = Math.fround;

/** Exact float32 fused multiply-add fma(a, b, c) for float32 inputs, using double arithmetic. */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 + 24 bit significands fit in 53
  const s = p + c;
  const r = f32(s);
  if (r === s || !Number.isFinite(s)) return r;
  // Double rounding can only go wrong when s lands exactly on a float32 midpoint.
  const other = 2 * s - r;
  if (f32(other) !== other) return r;
  const bb = s - p;
  const e = (p - (s - bb)) + (c - bb); // TwoSum error of p + c
  if (e === 0) return r;
  return (e > 0) === (other > r) ? other : r;
}

const R_LN2f = f32(1.442695040888963407359924681001892137426645954152985934135449406931);
const L2Uf = f32(0.693145751953125);
const L2Lf = f32(1.428606765330187045e-6);
const C0 = f32(0.000198527617612853646278381);
const C1 = f32(0.00139304355252534151077271);
const C2 = f32(0.00833336077630519866943359);
const C3 = f32(0.0416664853692054748535156);
const C4 = f32(0.166666671633720397949219);

// 2^k for k in [-160, 160]: the scalings of xexpf's vldexp2 (Math.pow there cost as much as the rest of expf).
const POW2 = Float64Array.from({ length: 321 }, (_, i) => 2 ** (i - 160));
const pow2 = (k: number): number => (k >= -160 && k <= 160 ? POW2[k + 160] : 2 ** k);

/** torch.exp for one float32 value (SLEEF xexpf, u10). */
export function expf(d: number): number {
  // vrint: round half to even
  let q = Math.round(f32(d * R_LN2f));
  if (q - f32(d * R_LN2f) === 0.5 && q % 2 !== 0) q -= 1;
  let s = fmaf(q, -L2Uf, d);
  s = fmaf(q, -L2Lf, s);
  let u = C0;
  u = fmaf(u, s, C1);
  u = fmaf(u, s, C2);
  u = fmaf(u, s, C3);
  u = fmaf(u, s, C4);
  u = fmaf(u, s, 0.5);
  u = f32(1 + fmaf(f32(s * s), u, s));
  const q1 = q >> 1; // vldexp2: two half-size scalings avoid overflow of 2^q
  u = f32(f32(u * pow2(q1)) * pow2(q - q1));
  if (d < -104) u = 0;
  if (100 < d) u = Infinity;
  return u;
}
