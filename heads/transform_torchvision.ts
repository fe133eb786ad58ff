/**
 * torchvision 0.14 GeneralizedRCNNTransform for one image at inference, replayed in float32:
 *   to_tensor        x / 255 (float32)
 *   normalize        (x - mean) / std, BEFORE resizing
 *   resize           scale = min(min_size / short, max_size / long) computed in float32 tensors
 *                    (as reciprocal(short) * min_size: Tensor.__rtruediv__),
 *                    F.interpolate(scale_factor=scale, bilinear, align_corners=False,
 *                    recompute_scale_factor=True): output size floor(size * double(scale)); the kernel then
 *                    uses scale = float(in) / out (not the given factor)
 *   batch_images     zero padding (after normalization) to a multiple of 32
 *   postprocess      boxes * (original / resized) per axis in float32 (resize_boxes)
 */
import { floatTensor, type FloatTensor } from '../core/tensor.ts';
import type { ImageU8 } from '../image/resize_cv2.ts';
import type { TorchvisionPreprocess } from './config.ts';

const f32 = Math.fround;

export interface TorchvisionPreprocessed {
  /** [1, 3, padH, padW]. */
  input: FloatTensor;
  /** [h, w] of the decoded image. */
  originalSize: [number, number];
  /** [h, w] after resize (before padding): clip bounds for proposals and boxes. */
  imageSize: [number, number];
}

/**
 * Output size of _resize_image_and_masks: `self_min_size / min_size` with a float32 tensor on the right is
 * Tensor.__rtruediv__, i.e. reciprocal(min_size) * 800 in float32; then floor(size * scale) in double.
 */
export function torchvisionResizeSize(h: number, w: number, minSize = 800, maxSize = 1333): [number, number] {
  const mn = f32(Math.min(h, w));
  const mx = f32(Math.max(h, w));
  const scale = Math.min(f32(f32(1 / mn) * minSize), f32(f32(1 / mx) * maxSize));
  return [Math.floor(h * scale), Math.floor(w * scale)];
}

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

/** Decoded RGB image -> padded, normalized, resized network input. */
export function torchvisionPreprocess(img: ImageU8, p: TorchvisionPreprocess): TorchvisionPreprocessed {
  if (img.channels !== 3) throw new Error(`torchvision preprocessing needs an RGB image, got ${img.channels} channels`);
  const { width: w, height: h } = img;
  const plane = h * w;
  const norm = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = f32(p.mean[c]);
    const std = f32(p.std[c]);
    const dst = norm.subarray(c * plane, (c + 1) * plane);
    for (let i = 0; i < plane; i++) dst[i] = f32(f32(f32(img.data[i * 3 + c] / 255) - mean) / std);
  }
  const [nh, nw] = torchvisionResizeSize(h, w, p.minSize, p.maxSize);
  const div = p.sizeDivisible;
  const padH = Math.ceil(nh / div) * div;
  const padW = Math.ceil(nw / div) * div;
  const input = floatTensor([1, 3, padH, padW]);
  resizeBilinearTorch(norm, 3, h, w, nh, nw, input.data, padW, padH * padW);
  return { input, originalSize: [h, w], imageSize: [nh, nw] };
}

/** transform.postprocess resize_boxes: network-scale boxes -> original image coordinates. */
export function boxesToOriginalTorchvision(boxes: Float32Array, imageSize: [number, number], originalSize: [number, number]): Float32Array {
  const rh = f32(originalSize[0] / imageSize[0]);
  const rw = f32(originalSize[1] / imageSize[1]);
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 4) {
    out[i] = boxes[i] * rw;
    out[i + 1] = boxes[i + 1] * rh;
    out[i + 2] = boxes[i + 2] * rw;
    out[i + 3] = boxes[i + 3] * rh;
  }
  return out;
}
