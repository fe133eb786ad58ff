/**
 * mmdetection 2.25's test pipeline for Mask R-CNN, as the configs run it:
 *   LoadImageFromFile  mmcv.imfrombytes(flag='color') -> cv2.imdecode(IMREAD_COLOR): BGR uint8,
 *                      EXIF orientation applied (IMREAD_COLOR without IMREAD_IGNORE_ORIENTATION).
 *   MultiScaleFlipAug(img_scale=(1333, 800), flip=False)
 *     Resize(keep_ratio=True)  mmcv.imrescale: factor = min(1333 / long, 800 / short), new size
 *                      int(w * f + 0.5), int(h * f + 0.5), cv2.resize INTER_LINEAR (image/resize_cv2.ts,
 *                      bit-exact); scale_factor = [new_w / w, new_h / h, new_w / w, new_h / h] as
 *                      float32 (from the result's shape, so w and h scales differ slightly).
 *     Normalize        mmcv.imnormalize_: float32, BGR->RGB if to_rgb, cv2.subtract(mean) then
 *                      cv2.multiply(1 / std): f32(f32(x - f32(mean)) * (1 / std in double)) -- the
 *                      subtraction runs in float32, the scalar multiply in double (checked against
 *                      cv2 4.6); neither (x - mean) / std nor an all-float32 product is bit-equal.
 *                      pytorch style: mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375],
 *                      to_rgb=True; caffe style: mean [103.53, 116.28, 123.675], std 1, to_rgb=False
 *                      (network input stays BGR).
 *     Pad(size_divisor=32) mmcv.impad_to_multiple: zeros (after normalisation) at bottom/right.
 * Shapes the model uses: img_shape (resized, unpadded) clips RPN proposals and the box head's
 * decoded boxes; pad_shape is the network input (anchors cover it); ori_shape is where masks are
 * pasted; final boxes are divided by scale_factor (rescale=True), and mask RoIs are those boxes
 * multiplied back by scale_factor.
 */
import { UserError } from '../core/errors.ts';
import { floatTensor, type FloatTensor } from '../core/tensor.ts';
import { rescaleSize, resizeLinearCv2 } from '../image/resize_cv2.ts';
import type { ImageU8 } from '../core/tensor.ts';

export type MmdetNormStyle = 'pytorch' | 'caffe';

export interface MmdetTransformConfig {
  /** (long edge, short edge) limits of Resize(keep_ratio=True). */
  imgScale: [number, number];
  /** Per channel, in the order the network sees them (RGB when toRgb, else BGR). */
  mean: [number, number, number];
  std: [number, number, number];
  toRgb: boolean;
  sizeDivisor: number;
}

export const MMDET_NORM: Record<MmdetNormStyle, Pick<MmdetTransformConfig, 'mean' | 'std' | 'toRgb'>> = {
  pytorch: { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375], toRgb: true },
  caffe: { mean: [103.53, 116.28, 123.675], std: [1, 1, 1], toRgb: false },
};

export function mmdetTransformConfig(
  style: MmdetNormStyle,
  imgScale: [number, number] = [1333, 800],
  sizeDivisor = 32,
): MmdetTransformConfig {
  const norm = MMDET_NORM[style];
  if (!norm) throw new Error(`unknown mmdet normalisation style '${style}' (pytorch or caffe)`);
  return { imgScale, mean: [...norm.mean], std: [...norm.std], toRgb: norm.toRgb, sizeDivisor };
}

export interface MmdetImageMeta {
  /** [h, w, 3] of the decoded image. */
  oriShape: [number, number, number];
  /** [h, w, 3] after Resize: the clipping bounds for proposals and boxes. */
  imgShape: [number, number, number];
  /** [h, w, 3] after Pad: the network input. */
  padShape: [number, number, number];
  /** float32 [w_scale, h_scale, w_scale, h_scale]. */
  scaleFactor: Float32Array;
}

export interface MmdetPreprocessed {
  /** [1, 3, padH, padW] float32 network input. */
  input: FloatTensor;
  meta: MmdetImageMeta;
  /** The resized uint8 image in the caller's channel order (for checks and debugging). */
  resized: ImageU8;
}

/**
 * Runs Resize + Normalize + Pad on a decoded 3-channel image. `channelOrder` says how `image` is
 * laid out ('bgr' for cv2-decoded pixels, 'rgb' for sharp/pngjs); the output follows mmdet.
 */
export function mmdetPreprocess(
  image: ImageU8,
  cfg: MmdetTransformConfig,
  channelOrder: 'rgb' | 'bgr' = 'rgb',
): MmdetPreprocessed {
  if (image.channels !== 3) throw new UserError(`mmdet preprocessing needs a 3-channel image, got ${image.channels}`);
  const { width: w, height: h } = image;
  const size = rescaleSize(w, h, cfg.imgScale);
  if (size.width < 1 || size.height < 1) {
    // mmcv's cv2.resize fails on a zero-size target too: the framework gives no answer for this image.
    throw new UserError(`image ${w}x${h} resizes to ${size.width}x${size.height} under img_scale ${cfg.imgScale.join('x')} (too elongated; mmdetection fails on it too)`);
  }
  const resized = resizeLinearCv2(image, size.width, size.height);
  const nw = resized.width;
  const nh = resized.height;
  const scaleFactor = new Float32Array([nw / w, nh / h, nw / w, nh / h]);
  const div = cfg.sizeDivisor;
  const padH = Math.ceil(nh / div) * div;
  const padW = Math.ceil(nw / div) * div;
  const input = floatTensor([1, 3, padH, padW]);
  // Network channel c reads source channel src[c]: RGB output wants R first, BGR output B first.
  const wantRgb = cfg.toRgb;
  const srcIsRgb = channelOrder === 'rgb';
  const src = wantRgb === srcIsRgb ? [0, 1, 2] : [2, 1, 0];
  const plane = padH * padW;
  const px = resized.data;
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.mean[c]);
    const stdinv = 1 / cfg.std[c]; // cv2.multiply by a scalar works in double, then rounds to float32
    const out = input.data.subarray(c * plane, (c + 1) * plane);
    const sc = src[c];
    for (let y = 0; y < nh; y++) {
      const row = y * padW;
      const srow = y * nw * 3;
      for (let x = 0; x < nw; x++) out[row + x] = Math.fround(Math.fround(px[srow + x * 3 + sc] - mean) * stdinv);
    }
  }
  return {
    input,
    meta: { oriShape: [h, w, 3], imgShape: [nh, nw, 3], padShape: [padH, padW, 3], scaleFactor },
    resized,
  };
}

/** BBoxHead.get_bboxes(rescale=True): network-scale boxes (x1, y1, x2, y2 rows) / scale_factor, float32. */
export function boxesToOriginal(boxes: Float32Array, scaleFactor: Float32Array): Float32Array {
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i++) out[i] = Math.fround(boxes[i] / scaleFactor[i & 3]);
  return out;
}

/** simple_test_mask(rescale=True): original-image boxes * scale_factor, float32 (the mask RoIs). */
export function boxesToNetwork(boxes: Float32Array, scaleFactor: Float32Array): Float32Array {
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i++) out[i] = Math.fround(boxes[i] * scaleFactor[i & 3]);
  return out;
}
