/**
 * Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit images, bit for bit (src/libImaging/Resample.c):
 * separable convolution, horizontal pass then vertical, each rounding to uint8.
 *  - precompute_coeffs: scale = in / out; filterscale = max(scale, 1) (antialiasing when shrinking);
 *    support = 2 * filterscale; for output index xx: center = (xx + 0.5) * scale,
 *    xmin = (int)(center - support + 0.5) clamped to 0, xmax = (int)(center + support + 0.5) clamped to in,
 *    w[x] = bicubic((x + xmin - center + 0.5) / filterscale) with a = -0.5, normalized to sum 1 (doubles).
 *  - normalize_coeffs_8bpc: k = (int)(w * 2^22 +- 0.5) (round half away from zero, PRECISION_BITS = 22).
 *  - per pixel: ss = 2^21 + sum(pixel * k) in int; out = clip8: clamp(ss >> 22, 0, 255).
 * A pass whose size does not change is skipped (Pillow's need_horizontal / need_vertical), so is a same-size
 * resize. Checked against Debian python3-pil 9.4 in test/image_resize.test.ts.
 */
import type { ImageU8 } from '../core/tensor.ts';

const PRECISION_BITS = 22;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs { ksize: number; bounds: Int32Array; kk: Int32Array }

function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = Math.floor(ss / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function resampleHorizontal(src: ImageU8, outW: number): ImageU8 {
  const { width, height, channels: cn } = src;
  const { ksize, bounds, kk } = precomputeCoeffs(width, outW);
  const out = new Uint8Array(outW * height * cn);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < height; y++) {
    const row = y * width * cn;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1], k0 = xx * ksize;
      for (let c = 0; c < cn; c++) {
        let ss = half;
        for (let x = 0; x < xmax; x++) ss += src.data[row + (x + xmin) * cn + c] * kk[k0 + x];
        out[(y * outW + xx) * cn + c] = clip8(ss);
      }
    }
  }
  return { data: out, width: outW, height, channels: cn };
}

function resampleVertical(src: ImageU8, outH: number): ImageU8 {
  const { width, height, channels: cn } = src;
  const { ksize, bounds, kk } = precomputeCoeffs(height, outH);
  const out = new Uint8Array(width * outH * cn);
  const half = 1 << (PRECISION_BITS - 1);
  const stride = width * cn;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1], k0 = yy * ksize;
    for (let i = 0; i < stride; i++) {
      let ss = half;
      for (let y = 0; y < ymax; y++) ss += src.data[(y + ymin) * stride + i] * kk[k0 + y];
      out[yy * stride + i] = clip8(ss);
    }
  }
  return { data: out, width, height: outH, channels: cn };
}

/** Pillow `img.resize((width, height), Image.BICUBIC)` for interleaved uint8 images. */
export function resizeBicubicPillow(img: ImageU8, width: number, height: number): ImageU8 {
  if (!(width > 0 && height > 0 && Number.isInteger(width) && Number.isInteger(height))) {
    throw new Error(`resize target must be positive integers, got ${width}x${height}`);
  }
  let out = img;
  if (width !== img.width) out = resampleHorizontal(out, width);
  if (height !== img.height) out = resampleVertical(out, height);
  return out === img ? { ...img, data: img.data.slice() } : out;
}

/** torchvision.transforms.Resize(size) output size for an int size: short side to `size`, long side truncated. */
export function shortSideSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}
