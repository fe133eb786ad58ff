/**
 * torch.nn.functional.interpolate(mode='bilinear', align_corners=False) on float32 CHW planes, bit-exact
 * against torch 1.13's CPU kernel (the resize inside torchvision's GeneralizedRCNNTransform).
 */
const f32 = Math.fround;

interface Axis { i0: Int32Array; i1: Int32Array; l0: Float32Array; l1: Float32Array }

/** upsample_bilinear2d source indices and weights along one axis (align_corners=False, no scale given). */
function bilinearAxis(inSize: number, outSize: number): Axis {
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize);
  const l0 = new Float32Array(outSize), l1 = new Float32Array(outSize);
  const scale = f32(inSize / outSize);
  for (let d = 0; d < outSize; d++) {
    // area_pixel_compute_source_index: evaluated in double, stored as float, negative -> 0
    let real = f32(scale * (d + 0.5) - 0.5);
    if (real < 0) real = 0;
    const a = Math.trunc(real);
    i0[d] = a;
    i1[d] = a < inSize - 1 ? a + 1 : a;
    const lam = Math.min(Math.max(f32(real - a), 0), 1);
    l1[d] = lam;
    l0[d] = f32(1 - lam);
  }
  return { i0, i1, l0, l1 };
}

/**
 * F.interpolate(bilinear, align_corners=False) of C planes (CHW float32) to outH x outW, written into `out`
 * (row stride `outStride`, plane stride `outPlane`). Float ops as ATen's AVX2 CPU kernel (compiled with FMA
 * contraction) evaluates them, found bit-exact against torch 1.13 on this machine:
 *   t0 = fma(a, wx0, b * wx1), t1 = fma(c, wx0, d * wx1), out = fma(t0, wy0, t1 * wy1)
 * fma is emulated in double (exact product, one rounding of the sum in double, then to float32).
 */
export function resizeBilinearTorch(
  src: Float32Array, c: number, h: number, w: number, outH: number, outW: number,
  out: Float32Array = new Float32Array(c * outH * outW), outStride = outW, outPlane = outH * outW,
): Float32Array {
  const ay = bilinearAxis(h, outH);
  const ax = bilinearAxis(w, outW);
  for (let ch = 0; ch < c; ch++) {
    const s = src.subarray(ch * h * w, (ch + 1) * h * w);
    const o = ch * outPlane;
    for (let y = 0; y < outH; y++) {
      const r0 = ay.i0[y] * w, r1 = ay.i1[y] * w;
      const wy0 = ay.l0[y], wy1 = ay.l1[y];
      const row = o + y * outStride;
      for (let x = 0; x < outW; x++) {
        const c0 = ax.i0[x], c1 = ax.i1[x];
        const wx0 = ax.l0[x], wx1 = ax.l1[x];
        const t0 = f32(s[r0 + c0] * wx0 + f32(s[r0 + c1] * wx1));
        const t1 = f32(s[r1 + c0] * wx0 + f32(s[r1 + c1] * wx1));
        out[row + x] = t0 * wy0 + f32(t1 * wy1);
      }
    }
  }
  return out;
}
