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
import { UserError } from '../core/errors.ts';
import { floatTensor, type FloatTensor } from '../core/tensor.ts';
import type { ImageU8 } from '../core/tensor.ts';
import { resizeBilinearTorch } from '../image/resize_torch.ts';
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

/** Decoded RGB image -> padded, normalized, resized network input. */
export function torchvisionPreprocess(img: ImageU8, p: TorchvisionPreprocess): TorchvisionPreprocessed {
  if (img.channels !== 3) throw new UserError(`torchvision preprocessing needs an RGB image, got ${img.channels} channels`);
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
  if (nh < 1 || nw < 1) {
    // torch's interpolate refuses a zero-size output too: the framework gives no answer for this image.
    throw new UserError(`image ${w}x${h} resizes to ${nw}x${nh} under min_size ${p.minSize} / max_size ${p.maxSize} (too elongated; torchvision fails on it too)`);
  }
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
