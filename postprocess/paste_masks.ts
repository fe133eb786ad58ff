/**
 * Mask pasting: a per-RoI mask of probabilities (M x M, after sigmoid) is resampled into image coordinates
 * and binarised. Two reference behaviours:
 *  - torchvision 0.14 `paste_masks_in_image`: pad the mask by 1 (zeros), expand the box by (M+2)/M, cast
 *    the box to int64, `F.interpolate(bilinear, align_corners=False)` to the integer box size, paste with
 *    clipping; COCO evaluation binarises with `> 0.5`.
 *  - mmdet 2.25 `_do_paste_mask` on CPU (skip_empty=True, one mask per chunk): `F.grid_sample(bilinear,
 *    zeros, align_corners=False)` over the pixel centres of [floor(x0)-1, ceil(x1)+1) x [...] clipped to
 *    the image, then `>= mask_thr_binary` (0.5).
 * Sampling coordinates and bilinear weights are replayed in float32 in PyTorch's order.
 *
 * The result is cropped: `data` is a row-major `height x width` uint8 (0/1) mask whose top-left pixel is
 * image pixel (x0, y0); everything outside the crop is 0. `blitMask`/`clearMask` move a crop in and out of
 * a full-image buffer reused across detections, so RLE encoding never needs a fresh full-size mask.
 */

const f32 = Math.fround;

export interface PastedMask {
  data: Uint8Array;
  x0: number;
  y0: number;
  width: number;
  height: number;
}

export interface PasteOptions {
  /** Binarisation threshold. Default 0.5. */
  threshold?: number;
  /** Comparison: torchvision's COCO evaluation uses '>' (default there), mmdet uses '>=' (default there). */
  compare?: '>' | '>=';
}

function maskDims(mask: Float32Array, maskSize: number | readonly [number, number], what: string): [number, number] {
  const [mh, mw] = typeof maskSize === 'number' ? [maskSize, maskSize] : maskSize;
  if (mask.length !== mh * mw) throw new Error(`${what}: mask has ${mask.length} values, expected ${mh}x${mw}`);
  return [mh, mw];
}

const EMPTY = (x0: number, y0: number): PastedMask => ({ data: new Uint8Array(0), x0, y0, width: 0, height: 0 });

/** Source indices and lambdas of upsample_bilinear2d (align_corners=False) along one axis. */
function linearAxis(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; l0: Float32Array; l1: Float32Array } {
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize);
  const l0 = new Float32Array(outSize), l1 = new Float32Array(outSize);
  const scale = f32(inSize / outSize);
  for (let d = 0; d < outSize; d++) {
    if (inSize === outSize) {
      i0[d] = i1[d] = d;
      l0[d] = 1;
      l1[d] = 0;
      continue;
    }
    // area_pixel_compute_source_index: `scale * (dst_index + 0.5) - 0.5` is evaluated in double, stored as float
    let real = f32(scale * (d + 0.5) - 0.5);
    if (real < 0) real = 0;
    const a = Math.trunc(real);
    i0[d] = a;
    i1[d] = a < inSize - 1 ? a + 1 : a;
    let lam = f32(real - a);
    if (lam < 0) lam = 0;
    if (lam > 1) lam = 1;
    l1[d] = lam;
    l0[d] = f32(1 - lam);
  }
  return { i0, i1, l0, l1 };
}

/**
 * torchvision paste_mask_in_image for one mask (probabilities, M x M) and one box (x1y1x2y2 in the target
 * image), binarised. Crop = the pasted box region clipped to the image.
 */
export function pasteMaskTorchvision(
  mask: Float32Array,
  maskSize: number | readonly [number, number],
  box: ArrayLike<number>,
  imH: number,
  imW: number,
  opts: PasteOptions & { padding?: number } = {},
): PastedMask {
  const [mh, mw] = maskDims(mask, maskSize, 'pasteMaskTorchvision');
  const pad = opts.padding ?? 1;
  const thr = opts.threshold ?? 0.5;
  const ge = (opts.compare ?? '>') === '>=';
  // expand_masks: scale from the last dim; expand_boxes in float32; .to(int64) truncates toward zero
  const scale = f32((mw + 2 * pad) / mw);
  const bx1 = box[0], by1 = box[1], bx2 = box[2], by2 = box[3];
  const wHalf = f32(f32(f32(bx2 - bx1) * 0.5) * scale);
  const hHalf = f32(f32(f32(by2 - by1) * 0.5) * scale);
  const xc = f32(f32(bx2 + bx1) * 0.5);
  const yc = f32(f32(by2 + by1) * 0.5);
  const b0 = Math.trunc(f32(xc - wHalf));
  const b2 = Math.trunc(f32(xc + wHalf));
  const b1 = Math.trunc(f32(yc - hHalf));
  const b3 = Math.trunc(f32(yc + hHalf));
  const w = Math.max(b2 - b0 + 1, 1);
  const h = Math.max(b3 - b1 + 1, 1);
  const x0 = Math.max(b0, 0), x1 = Math.min(b2 + 1, imW);
  const y0 = Math.max(b1, 0), y1 = Math.min(b3 + 1, imH);
  if (!(x1 > x0 && y1 > y0)) return EMPTY(Math.min(Math.max(x0, 0), imW), Math.min(Math.max(y0, 0), imH));
  const ph = mh + 2 * pad, pw = mw + 2 * pad;
  // Only the output rows/cols inside the crop are computed.
  const ya = linearAxis(ph, h);
  const xa = linearAxis(pw, w);
  const cw = x1 - x0, chh = y1 - y0;
  const out = new Uint8Array(cw * chh);
  // Zero-padded source, then every padded row interpolated along x once for the crop's columns:
  // upsample_bilinear2d computes (v00*wx0 + v01*wx1) per row first, so caching it is bit-identical.
  const src = new Float32Array(ph * pw);
  for (let r = 0; r < mh; r++) src.set(mask.subarray(r * mw, (r + 1) * mw), (r + pad) * pw + pad);
  const rowA = ya.i0[y0 - b1], rowB = ya.i1[y1 - 1 - b1]; // rows the crop touches
  const hrow = new Float32Array((rowB - rowA + 1) * cw);
  for (let r = rowA; r <= rowB; r++) {
    const so = r * pw, ho = (r - rowA) * cw;
    for (let ox = 0; ox < cw; ox++) {
      const dx = x0 + ox - b0;
      hrow[ho + ox] = f32(f32(src[so + xa.i0[dx]] * xa.l0[dx]) + f32(src[so + xa.i1[dx]] * xa.l1[dx]));
    }
  }
  for (let oy = 0; oy < chh; oy++) {
    const dy = y0 + oy - b1;
    const h0 = (ya.i0[dy] - rowA) * cw, h1 = (ya.i1[dy] - rowA) * cw, wy0 = ya.l0[dy], wy1 = ya.l1[dy];
    const o = oy * cw;
    if (ge) {
      for (let ox = 0; ox < cw; ox++) out[o + ox] = f32(f32(hrow[h0 + ox] * wy0) + f32(hrow[h1 + ox] * wy1)) >= thr ? 1 : 0;
    } else {
      for (let ox = 0; ox < cw; ox++) out[o + ox] = f32(f32(hrow[h0 + ox] * wy0) + f32(hrow[h1 + ox] * wy1)) > thr ? 1 : 0;
    }
  }
  return { data: out, x0, y0, width: cw, height: chh };
}

/** Normalised grid coordinate of pixel centres i + 0.5 for i in [lo, hi): ((i + .5 - a) / (b - a)) * 2 - 1. */
function gridAxis(lo: number, hi: number, a: number, b: number): Float32Array {
  const n = Math.max(hi - lo, 0);
  const g = new Float32Array(n);
  const span = f32(b - a);
  for (let k = 0; k < n; k++) {
    let v = f32(f32(f32(f32(f32(lo + k) + 0.5) - a) / span) * 2);
    v = f32(v - 1);
    // mmdet zeroes infinities (zero-size boxes); NaN stays and yields 0 below.
    if (v === Infinity || v === -Infinity) v = 0;
    g[k] = v;
  }
  return g;
}

/** grid_sample (align_corners=False, zeros) source position along one axis: (g + 1) * size/2 - 0.5. */
function unnormalize(g: Float32Array, size: number): { i0: Int32Array; w0: Float32Array; w1: Float32Array } {
  const n = g.length;
  const i0 = new Int32Array(n);
  const w0 = new Float32Array(n); // weight of floor neighbour ("e"/"s")
  const w1 = new Float32Array(n); // weight of the next one ("w"/"n")
  const half = f32(size / 2);
  for (let k = 0; k < n; k++) {
    const x = f32(f32(f32(g[k] + 1) * half) - 0.5);
    const fl = Math.floor(x);
    const d = f32(x - fl);
    i0[k] = x === x ? fl : -2; // NaN: never in bounds
    w1[k] = x === x ? d : NaN;
    w0[k] = f32(1 - d);
  }
  return { i0, w0, w1 };
}

/**
 * mmdet _do_paste_mask (CPU, skip_empty) for one mask and one box in the target image, binarised.
 * Crop = [max(floor(x0) - 1, 0), min(ceil(x1) + 1, imW)) x (same for y).
 */
export function pasteMaskMmdet(
  mask: Float32Array,
  maskSize: number | readonly [number, number],
  box: ArrayLike<number>,
  imH: number,
  imW: number,
  opts: PasteOptions = {},
): PastedMask {
  const [mh, mw] = maskDims(mask, maskSize, 'pasteMaskMmdet');
  const thr = opts.threshold ?? 0.5;
  const ge = (opts.compare ?? '>=') === '>=';
  const bx0 = f32(box[0]), by0 = f32(box[1]), bx1 = f32(box[2]), by1 = f32(box[3]);
  const xs = Math.max(Math.floor(bx0) - 1, 0);
  const ys = Math.max(Math.floor(by0) - 1, 0);
  const xe = Math.min(Math.ceil(bx1) + 1, imW);
  const ye = Math.min(Math.ceil(by1) + 1, imH);
  if (!(xe > xs && ye > ys)) return EMPTY(Math.min(xs, imW), Math.min(ys, imH));
  const gx = unnormalize(gridAxis(xs, xe, bx0, bx1), mw);
  const gy = unnormalize(gridAxis(ys, ye, by0, by1), mh);
  const cw = xe - xs, chh = ye - ys;
  const out = new Uint8Array(cw * chh);
  // Source with a zero border: index i in [-1, size] maps to i + 1, anything else to the border (0), which
  // is what grid_sample's in-bounds masks do; the float sum then needs no branches.
  const pw = mw + 2;
  const src = new Float32Array((mh + 2) * pw);
  for (let r = 0; r < mh; r++) src.set(mask.subarray(r * mw, (r + 1) * mw), (r + 1) * pw + 1);
  const padIdx = (i: number, size: number): number => (i >= -1 && i <= size ? i + 1 : 0);
  // Mask values are probabilities in [0, 1]; for anything else (logits) always take the exact path.
  let lo = Infinity, hi = -Infinity;
  for (let k = 0; k < mask.length; k++) {
    if (mask[k] < lo) lo = mask[k];
    if (mask[k] > hi) hi = mask[k];
  }
  const fast = lo >= 0 && hi <= 1;
  const hiThr = fast ? thr + 1e-5 : Infinity, loThr = fast ? thr - 1e-5 : -Infinity;
  const col0 = new Int32Array(cw), col1 = new Int32Array(cw);
  for (let ox = 0; ox < cw; ox++) {
    col0[ox] = padIdx(gx.i0[ox], mw);
    col1[ox] = padIdx(gx.i0[ox] + 1, mw);
  }
  for (let oy = 0; oy < chh; oy++) {
    const r0 = padIdx(gy.i0[oy], mh) * pw, r1 = padIdx(gy.i0[oy] + 1, mh) * pw;
    const s = gy.w0[oy], nn = gy.w1[oy];
    const o = oy * cw;
    for (let ox = 0; ox < cw; ox++) {
      const c0 = col0[ox], c1 = col1[ox];
      const e = gx.w0[ox], w = gx.w1[ox];
      const a = src[r0 + c0], b = src[r0 + c1], c = src[r1 + c0], d = src[r1 + c1];
      // The float32 sum differs from the double one by far less than 1e-5 (weights and values are small):
      // only values that close to the threshold need the exact replay.
      const vd = a * (s * e) + b * (s * w) + c * (nn * e) + d * (nn * w);
      if (vd > hiThr) out[o + ox] = 1;
      else if (vd < loThr) out[o + ox] = 0;
      else {
        // interpolated = (nw_val * nw) + (ne_val * ne) + (sw_val * sw) + (se_val * se), in float32
        const v = f32(f32(f32(f32(a * f32(s * e)) + f32(b * f32(s * w))) + f32(c * f32(nn * e))) + f32(d * f32(nn * w)));
        out[o + ox] = (ge ? v >= thr : v > thr) ? 1 : 0;
      }
    }
  }
  return { data: out, x0: xs, y0: ys, width: cw, height: chh };
}

/**
 * Paste n masks (n x mh x mw probabilities) at n boxes (n*4, target-image coordinates).
 * torchvision flavour pastes the class mask selected by the caller; so does mmdet (`mask_pred[range(N), labels]`).
 */
export function pasteMasks(
  masks: Float32Array,
  maskSize: number | readonly [number, number],
  boxes: Float32Array,
  imH: number,
  imW: number,
  flavor: 'torchvision' | 'mmdet',
  opts: PasteOptions = {},
): PastedMask[] {
  const [mh, mw] = typeof maskSize === 'number' ? [maskSize, maskSize] : maskSize;
  const n = boxes.length / 4;
  if (masks.length !== n * mh * mw) throw new Error(`pasteMasks: ${masks.length} mask values for ${n} boxes of ${mh}x${mw}`);
  const out: PastedMask[] = [];
  for (let i = 0; i < n; i++) {
    const m = masks.subarray(i * mh * mw, (i + 1) * mh * mw);
    const b = boxes.subarray(i * 4, i * 4 + 4);
    out.push(flavor === 'torchvision' ? pasteMaskTorchvision(m, [mh, mw], b, imH, imW, opts) : pasteMaskMmdet(m, [mh, mw], b, imH, imW, opts));
  }
  return out;
}

/** A detector's paste settings (heads/config.ts MaskConfig). */
export interface PasteConfig {
  paste: 'torchvision' | 'mmdet';
  threshold: number;
  compare: '>' | '>=';
}

/** The paste stage of a detector: each detection's mask (n x size x size) at its box, binarised as `cfg` says. */
export function pasteDetectionMasks(probs: Float32Array, size: number, boxes: Float32Array, imH: number, imW: number, cfg: PasteConfig): PastedMask[] {
  return pasteMasks(probs, size, boxes, imH, imW, cfg.paste, { threshold: cfg.threshold, compare: cfg.compare });
}

/** Write a cropped mask into a full row-major imH x imW buffer (only the crop is touched). */
export function blitMask(p: PastedMask, full: Uint8Array, imW: number): void {
  for (let r = 0; r < p.height; r++) full.set(p.data.subarray(r * p.width, (r + 1) * p.width), (p.y0 + r) * imW + p.x0);
}

/** Zero the crop region of a full buffer after use, so the buffer can serve the next detection. */
export function clearMask(p: PastedMask, full: Uint8Array, imW: number): void {
  for (let r = 0; r < p.height; r++) full.fill(0, (p.y0 + r) * imW + p.x0, (p.y0 + r) * imW + p.x0 + p.width);
}

/** Full-size mask (imH x imW) of a crop, for callers that need one. */
export function toFullMask(p: PastedMask, imH: number, imW: number): Uint8Array {
  const full = new Uint8Array(imH * imW);
  blitMask(p, full, imW);
  return full;
}
