/**
 * FPN anchor grids of the two reference frameworks. Both order anchors location-major (row by row, x
 * fastest) with the base anchors of one location contiguous; they differ in the base anchors:
 *  - torchvision 0.14 `AnchorGenerator`: one size per level, base anchors rounded half-to-even to integers,
 *    stride = padded image size // feature size (per axis);
 *  - mmdet 2.25 `AnchorGenerator`: base size = stride, scales multiply it, float base anchors centred on
 *    `centerOffset * stride` (0 in Mask R-CNN).
 * All arithmetic replays the float32 ops of the PyTorch code, so anchors are bit-identical.
 */
import { roundHalfEven } from '../core/math.ts';

const f32 = Math.fround;

/** Zero-centred base anchors (A*4) of torchvision's generate_anchors(scales, aspect_ratios). */
export function baseAnchorsTorchvision(sizes: readonly number[], aspectRatios: readonly number[]): Float32Array {
  const out = new Float32Array(sizes.length * aspectRatios.length * 4);
  let k = 0;
  for (const ar of aspectRatios) {
    const hRatio = f32(Math.sqrt(f32(ar)));
    const wRatio = f32(1 / hRatio);
    for (const size of sizes) {
      const ws = f32(wRatio * f32(size));
      const hs = f32(hRatio * f32(size));
      out[k++] = roundHalfEven(f32(-ws / 2));
      out[k++] = roundHalfEven(f32(-hs / 2));
      out[k++] = roundHalfEven(f32(ws / 2));
      out[k++] = roundHalfEven(f32(hs / 2));
    }
  }
  return out;
}

/** Shift base anchors (A*4) over an (h, w) grid with integer strides: (h*w*A)*4, location-major. */
function gridAnchors(base: Float32Array, h: number, w: number, strideH: number, strideW: number): Float32Array {
  const A = base.length / 4;
  const out = new Float32Array(h * w * A * 4);
  let k = 0;
  for (let y = 0; y < h; y++) {
    const sy = y * strideH;
    for (let x = 0; x < w; x++) {
      const sx = x * strideW;
      for (let a = 0; a < A; a++) {
        out[k++] = sx + base[a * 4];
        out[k++] = sy + base[a * 4 + 1];
        out[k++] = sx + base[a * 4 + 2];
        out[k++] = sy + base[a * 4 + 3];
      }
    }
  }
  return out;
}

export interface TorchvisionAnchorOptions {
  /** Anchor sizes per level. Default ((32,), (64,), (128,), (256,), (512,)). */
  sizes?: readonly (readonly number[])[];
  /** Aspect ratios (h/w) per level, or one list for all levels. Default (0.5, 1.0, 2.0). */
  aspectRatios?: readonly number[] | readonly (readonly number[])[];
}

/**
 * torchvision AnchorGenerator.forward for one image: anchors per level, each (h*w*A)*4 in x1y1x2y2.
 * `imageSize` is the (padded) batch tensor's [H, W]; `featureSizes` the [h, w] of each level.
 */
export function anchorsTorchvision(
  featureSizes: readonly (readonly [number, number])[],
  imageSize: readonly [number, number],
  opts: TorchvisionAnchorOptions = {},
): Float32Array[] {
  const sizes = opts.sizes ?? [[32], [64], [128], [256], [512]];
  const ars = opts.aspectRatios ?? [0.5, 1.0, 2.0];
  const perLevel = (i: number): readonly number[] =>
    Array.isArray(ars[0]) ? (ars as readonly (readonly number[])[])[i] : (ars as readonly number[]);
  if (featureSizes.length !== sizes.length) {
    throw new Error(`anchorsTorchvision: ${featureSizes.length} feature maps but ${sizes.length} anchor size levels`);
  }
  return featureSizes.map(([h, w], i) => {
    if (!(h > 0 && w > 0)) throw new Error(`anchorsTorchvision: bad feature size [${h}, ${w}] at level ${i}`);
    const strideH = Math.floor(imageSize[0] / h);
    const strideW = Math.floor(imageSize[1] / w);
    return gridAnchors(baseAnchorsTorchvision(sizes[i], perLevel(i)), h, w, strideH, strideW);
  });
}

/** Base anchors (A*4) of mmdet's gen_single_level_base_anchors (scale_major=True). */
export function baseAnchorsMmdet(
  baseSize: number,
  scales: readonly number[],
  ratios: readonly number[],
  centerOffset = 0,
): Float32Array {
  const out = new Float32Array(scales.length * ratios.length * 4);
  // x_center is a Python float; `x_center - 0.5 * ws` happens in float32.
  const ctr = f32(centerOffset * baseSize);
  let k = 0;
  for (const r of ratios) {
    const hRatio = f32(Math.sqrt(f32(r)));
    const wRatio = f32(1 / hRatio);
    for (const s of scales) {
      const ws = f32(f32(baseSize * wRatio) * f32(s));
      const hs = f32(f32(baseSize * hRatio) * f32(s));
      const hw = f32(0.5 * ws);
      const hh = f32(0.5 * hs);
      out[k++] = f32(ctr - hw);
      out[k++] = f32(ctr - hh);
      out[k++] = f32(ctr + hw);
      out[k++] = f32(ctr + hh);
    }
  }
  return out;
}

export interface MmdetAnchorOptions {
  /** Default [4, 8, 16, 32, 64]. */
  strides?: readonly number[];
  /** Default [0.5, 1.0, 2.0]. */
  ratios?: readonly number[];
  /** Default [8]. */
  scales?: readonly number[];
  /** Default 0. */
  centerOffset?: number;
}

/** mmdet AnchorGenerator.grid_priors: anchors per level, each (h*w*A)*4 in x1y1x2y2. */
export function anchorsMmdet(featureSizes: readonly (readonly [number, number])[], opts: MmdetAnchorOptions = {}): Float32Array[] {
  const strides = opts.strides ?? [4, 8, 16, 32, 64];
  const ratios = opts.ratios ?? [0.5, 1.0, 2.0];
  const scales = opts.scales ?? [8];
  if (featureSizes.length !== strides.length) {
    throw new Error(`anchorsMmdet: ${featureSizes.length} feature maps but ${strides.length} strides`);
  }
  return featureSizes.map(([h, w], i) => {
    if (!(h >= 0 && w >= 0)) throw new Error(`anchorsMmdet: bad feature size [${h}, ${w}] at level ${i}`);
    const base = baseAnchorsMmdet(strides[i], scales, ratios, opts.centerOffset ?? 0);
    return gridAnchors(base, h, w, strides[i], strides[i]);
  });
}
