/**
 * OpenCV's `cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)` on uint8 images, bit for bit.
 *
 * mmdetection resizes with mmcv.imresize -> cv2.resize(INTER_LINEAR). For 8-bit images OpenCV 4.x
 * (modules/imgproc/src/resize.cpp, hal::resize -> resizeGeneric_) does NOT use float bilinear: it
 * takes the fixed-point path (`fixpt = depth == CV_8U`), which this file reproduces:
 *  - coordinates: fx = (float)((dx + 0.5) * scale_x - 0.5) in double then float, sx = floor(fx),
 *    fx -= sx; scale_x = 1 / (dst_w / src_w) in double.
 *  - borders: sx < 0 -> sx = 0, fx = 0; sx >= src_w - 1 -> sx = src_w - 1, fx = 0 (columns);
 *    rows are clamped to [0, src_h - 1] with the fractional weight kept (resizeGeneric_ `clip`).
 *  - weights: saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE) with INTER_RESIZE_COEF_BITS = 11,
 *    i.e. round-half-even of the float weight times 2048, separately for (1 - f) and f.
 *  - HResizeLinear: exact int32 sum S[sx] * a0 + S[sx + cn] * a1.
 *  - VResizeLinear<uchar, int, short, FixedPtCast<.., 22>> (its uchar specialisation, also the
 *    SIMD VResizeLinearVec_32s8u): ((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16) + 2) >> 2.
 *    This is not round((S0*b0 + S1*b1) / 2^22): the >> 4 and the two truncating >> 16 lose bits,
 *    which is why a float bilinear differs from cv2 by 1 on many pixels.
 *  - same size: plain copy; exactly half size in both axes: hal::resize switches INTER_LINEAR to
 *    the fast INTER_AREA path, (a + b + c + d + 2) >> 2 over each 2x2 block (cn 1, 3, 4).
 * Checked pixel-exact against Debian python3-opencv 4.6.0 (baseline SSE2, no IPP, no custom HAL)
 * in test/resize_cv2.test.ts.
 */

import type { ImageU8 } from '../core/tensor.ts';


const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

/** cvRound on a float: round half to even (lrintf in the default rounding mode). */
function rint(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function saturateShort(v: number): number {
  const r = rint(v);
  return r < -32768 ? -32768 : r > 32767 ? 32767 : r;
}

interface AxisTable {
  ofs: Int32Array;
  w0: Int16Array;
  w1: Int16Array;
}

/** Source index and fixed-point weights per destination coordinate, as hal::resize computes them. */
function linearTable(srcSize: number, dstSize: number, clampFraction: boolean): AxisTable {
  const scale = 1 / (dstSize / srcSize);
  const ofs = new Int32Array(dstSize);
  const w0 = new Int16Array(dstSize);
  const w1 = new Int16Array(dstSize);
  for (let d = 0; d < dstSize; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampFraction) {
      if (s < 0) { f = 0; s = 0; }
      if (s >= srcSize - 1) { f = 0; s = srcSize - 1; }
    }
    ofs[d] = s;
    w0[d] = saturateShort(Math.fround(Math.fround(1 - f) * COEF_SCALE));
    w1[d] = saturateShort(Math.fround(f * COEF_SCALE));
  }
  return { ofs, w0, w1 };
}

function checkImage(img: ImageU8): void {
  const { width, height, channels, data } = img;
  if (!(width > 0 && height > 0 && Number.isInteger(width) && Number.isInteger(height)))
    throw new Error(`resize: bad source size ${width}x${height}`);
  if (!(channels >= 1 && channels <= 4)) throw new Error(`resize: ${channels} channels unsupported (1-4)`);
  if (data.length !== width * height * channels)
    throw new Error(`resize: data has ${data.length} bytes, ${width}x${height}x${channels} needs ${width * height * channels}`);
}

function resizeAreaHalf(img: ImageU8, dw: number, dh: number): Uint8Array {
  const { data, width, channels: cn } = img;
  const out = new Uint8Array(dw * dh * cn);
  const rowStride = width * cn;
  for (let y = 0; y < dh; y++) {
    const r0 = 2 * y * rowStride;
    const r1 = r0 + rowStride;
    const o = y * dw * cn;
    for (let x = 0; x < dw; x++) {
      const s = 2 * x * cn;
      for (let c = 0; c < cn; c++) {
        const i = s + c;
        out[o + x * cn + c] = (data[r0 + i] + data[r0 + i + cn] + data[r1 + i] + data[r1 + i + cn] + 2) >> 2;
      }
    }
  }
  return out;
}

/** cv2.resize(img, (dstWidth, dstHeight), interpolation=cv2.INTER_LINEAR) for uint8 HWC images. */
export function resizeLinearCv2(img: ImageU8, dstWidth: number, dstHeight: number): ImageU8 {
  checkImage(img);
  if (!(Number.isInteger(dstWidth) && Number.isInteger(dstHeight) && dstWidth > 0 && dstHeight > 0))
    throw new Error(`resize: bad target size ${dstWidth}x${dstHeight}`);
  const { data, width: sw, height: sh, channels: cn } = img;
  const out = { width: dstWidth, height: dstHeight, channels: cn };
  if (sw === dstWidth && sh === dstHeight) return { ...out, data: data.slice() };
  if (sw === 2 * dstWidth && sh === 2 * dstHeight && cn !== 2)
    return { ...out, data: resizeAreaHalf(img, dstWidth, dstHeight) };

  const xt = linearTable(sw, dstWidth, true);
  const yt = linearTable(sh, dstHeight, false);
  const rowLen = dstWidth * cn;
  // Horizontal pass per source row, cached: consecutive output rows share source rows.
  const hrow = (sy: number, buf: Int32Array): void => {
    const base = sy * sw * cn;
    for (let dx = 0; dx < dstWidth; dx++) {
      const s = base + xt.ofs[dx] * cn;
      const a0 = xt.w0[dx];
      const a1 = xt.w1[dx];
      const o = dx * cn;
      if (a1 === 0) {
        for (let c = 0; c < cn; c++) buf[o + c] = data[s + c] * a0;
      } else {
        for (let c = 0; c < cn; c++) buf[o + c] = data[s + c] * a0 + data[s + c + cn] * a1;
      }
    }
  };
  let bufA = new Int32Array(rowLen);
  let bufB = new Int32Array(rowLen);
  let rowA = -1;
  let rowB = -1;
  const dst = new Uint8Array(rowLen * dstHeight);
  for (let dy = 0; dy < dstHeight; dy++) {
    const sy = yt.ofs[dy];
    const y0 = sy < 0 ? 0 : sy >= sh ? sh - 1 : sy;
    const y1 = sy + 1 < 0 ? 0 : sy + 1 >= sh ? sh - 1 : sy + 1;
    if (rowA !== y0) {
      if (rowB === y0) {
        [bufA, bufB] = [bufB, bufA];
        rowA = y0;
        rowB = -1;
      } else {
        hrow(y0, bufA);
        rowA = y0;
      }
    }
    if (rowB !== y1) {
      if (y1 === y0) bufB.set(bufA);
      else hrow(y1, bufB);
      rowB = y1;
    }
    const b0 = yt.w0[dy];
    const b1 = yt.w1[dy];
    const o = dy * rowLen;
    for (let x = 0; x < rowLen; x++) {
      const v = (((b0 * (bufA[x] >> 4)) >> 16) + ((b1 * (bufB[x] >> 4)) >> 16) + 2) >> 2;
      dst[o + x] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { ...out, data: dst };
}

/**
 * mmcv.rescale_size with a (long, short) scale tuple as mmdet's Resize(keep_ratio=True) uses it:
 * factor = min(max(scale) / max(h, w), min(scale) / min(h, w)), new size int(x * factor + 0.5).
 */
export function rescaleSize(width: number, height: number, scale: readonly [number, number] = [1333, 800]): {
  width: number;
  height: number;
  factor: number;
} {
  if (!(width > 0 && height > 0)) throw new Error(`rescaleSize: bad image size ${width}x${height}`);
  const longEdge = Math.max(scale[0], scale[1]);
  const shortEdge = Math.min(scale[0], scale[1]);
  const factor = Math.min(longEdge / Math.max(height, width), shortEdge / Math.min(height, width));
  return { width: Math.trunc(width * factor + 0.5), height: Math.trunc(height * factor + 0.5), factor };
}
