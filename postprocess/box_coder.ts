/**
 * Box delta decoding and box filters of torchvision 0.14 (`BoxCoder.decode_single`, `clip_boxes_to_image`,
 * `remove_small_boxes`) and mmdet 2.25 (`DeltaXYWHBBoxCoder.decode` -> `delta2bbox`, add_ctr_clamp=False).
 * Every op is rounded to float32 in the frameworks' order (Math.fround) and exp replays torch's SLEEF expf,
 * so results are bit-identical to PyTorch on CPU.
 *
 * Layout: `boxes` is (n, 4) x1y1x2y2; `deltas` is (n, k*4) (k = 1 for the RPN, numClasses for a box head);
 * the output has the shape of `deltas`.
 */

import { expf } from './torch_math.ts';
import { BOX_DECODE_WASM } from './box_decode_wasm.ts';

const f32 = Math.fround;

/** (2, 2, ...) -> number of deltas per box, with a clear error for a mismatch. */
function deltasPerBox(deltas: Float32Array, boxes: Float32Array, what: string): number {
  const n = boxes.length / 4;
  if (!Number.isInteger(n)) throw new Error(`${what}: boxes length ${boxes.length} is not a multiple of 4`);
  if (n === 0) {
    if (deltas.length !== 0) throw new Error(`${what}: ${deltas.length} deltas for 0 boxes`);
    return 0;
  }
  const k = deltas.length / (n * 4);
  if (!Number.isInteger(k) || k < 1) throw new Error(`${what}: deltas length ${deltas.length} does not fit ${n} boxes`);
  return k;
}

/** torchvision BoxCoder(weights (1,1,1,1)) for the RPN. */
export const TORCHVISION_RPN_WEIGHTS = [1, 1, 1, 1] as const;
/** torchvision RoIHeads box coder weights. */
export const TORCHVISION_BOX_WEIGHTS = [10, 10, 5, 5] as const;
/** torchvision bbox_xform_clip = log(1000 / 16). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

/**
 * torchvision BoxCoder.decode_single: pred (n, k*4) from deltas (n, k*4) relative to boxes (n, 4).
 * No +1 on widths (0.14); boxes x1 = ctr - 0.5 * w.
 */
export function decodeBoxesTorchvision(
  deltas: Float32Array,
  boxes: Float32Array,
  weights: readonly [number, number, number, number] | readonly number[] = TORCHVISION_RPN_WEIGHTS,
  bboxXformClip: number = BBOX_XFORM_CLIP,
): Float32Array {
  const k = deltasPerBox(deltas, boxes, 'decodeBoxesTorchvision');
  const n = boxes.length / 4;
  const [wx, wy, ww, wh] = weights.map(f32);
  const clip = f32(bboxXformClip);
  const out = new Float32Array(deltas.length);
  for (let i = 0; i < n; i++) {
    const x1 = boxes[i * 4], y1 = boxes[i * 4 + 1], x2 = boxes[i * 4 + 2], y2 = boxes[i * 4 + 3];
    const widths = f32(x2 - x1);
    const heights = f32(y2 - y1);
    const ctrX = f32(x1 + f32(0.5 * widths));
    const ctrY = f32(y1 + f32(0.5 * heights));
    for (let c = 0; c < k; c++) {
      const o = (i * k + c) * 4;
      const dx = f32(deltas[o] / wx);
      const dy = f32(deltas[o + 1] / wy);
      let dw = f32(deltas[o + 2] / ww);
      let dh = f32(deltas[o + 3] / wh);
      if (dw > clip) dw = clip;
      if (dh > clip) dh = clip;
      const px = f32(f32(dx * widths) + ctrX);
      const py = f32(f32(dy * heights) + ctrY);
      const pw = f32(expf(dw) * widths);
      const ph = f32(expf(dh) * heights);
      const cw = f32(0.5 * pw);
      const ch = f32(0.5 * ph);
      out[o] = px - cw;
      out[o + 1] = py - ch;
      out[o + 2] = px + cw;
      out[o + 3] = py + ch;
    }
  }
  return out;
}

/** torchvision.ops.clip_boxes_to_image on (n, 4) boxes (or any multiple of 4), in place when `out` is boxes. */
export function clipBoxesToImage(boxes: Float32Array, height: number, width: number, out: Float32Array = new Float32Array(boxes.length)): Float32Array {
  for (let o = 0; o < boxes.length; o += 2) {
    out[o] = clampNaN(boxes[o], 0, width);
    out[o + 1] = clampNaN(boxes[o + 1], 0, height);
  }
  return out;
}

/** torch.clamp: NaN stays NaN. */
function clampNaN(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** torchvision.ops.remove_small_boxes: indices whose width and height are both >= minSize (float32 compare). */
export function removeSmallBoxes(boxes: Float32Array, minSize: number): Int32Array {
  const n = boxes.length / 4;
  const m = f32(minSize);
  const keep = new Int32Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const w = f32(boxes[i * 4 + 2] - boxes[i * 4]);
    const h = f32(boxes[i * 4 + 3] - boxes[i * 4 + 1]);
    if (w >= m && h >= m) keep[k++] = i;
  }
  return keep.slice(0, k);
}

/** mmdet DeltaXYWHBBoxCoder(target_stds) of the RPN head. */
export const MMDET_RPN_STDS = [1, 1, 1, 1] as const;
/** mmdet Shared2FCBBoxHead bbox_coder target_stds. */
export const MMDET_RCNN_STDS = [0.1, 0.1, 0.2, 0.2] as const;

export interface MmdetDecodeOptions {
  means?: readonly number[];
  stds?: readonly number[];
  /** (H, W) of the resized image (img_shape); boxes are clipped to it when given. */
  maxShape?: readonly [number, number] | null;
  /** Default 16 / 1000. */
  whRatioClip?: number;
}

/** mmdet 2.25 delta2bbox (add_ctr_clamp=False, clip_border=True): (n, k*4) boxes. */
export function decodeBoxesMmdet(deltas: Float32Array, rois: Float32Array, opts: MmdetDecodeOptions = {}): Float32Array {
  const k = deltasPerBox(deltas, rois, 'decodeBoxesMmdet');
  return decodeMmdet(deltas, rois, k, null, opts);
}

/**
 * delta2bbox of the chosen pairs only: `pairs[j]` = box * k + class indexes (n, k*4) deltas over (n, 4) rois;
 * row j of the (m, 4) result is row pairs[j] of decodeBoxesMmdet's, bit for bit (the same code computes it).
 * The box head decodes only the pairs that pass the score threshold this way.
 */
export function decodeBoxesMmdetPairs(
  deltas: Float32Array, rois: Float32Array, pairs: Int32Array, opts: MmdetDecodeOptions = {},
): Float32Array {
  const k = deltasPerBox(deltas, rois, 'decodeBoxesMmdetPairs');
  const n = rois.length / 4;
  for (let j = 0; j < pairs.length; j++) {
    if (!(pairs[j] >= 0 && pairs[j] < n * k)) throw new Error(`decodeBoxesMmdetPairs: pair ${pairs[j]} outside ${n} boxes x ${k}`);
  }
  return decodeMmdet(deltas, rois, k, pairs, opts);
}

// The WebAssembly twin of decodeMmdet (postprocess/box_decode.wat): the same float32 operations, 2-3x faster than
// the JS below (the exact expf replay dominates); the box head decodes up to R x classes = 80000 boxes per image
// at score_thr 0. The JS stays for runtimes without WebAssembly; the two agree bit for bit (test/box_coder.test.ts).
interface Decoder {
  memory: WebAssembly.Memory;
  decode: (m: number, pairs: number, k: number, deltas: number, rois: number, out: number, s0: number, s1: number, s2: number, s3: number,
    m0: number, m1: number, m2: number, m3: number, maxRatio: number, clip: number, H: number, W: number) => void;
}
let decoder: Decoder | null | undefined;
let decoderEnabled = true;

function loadDecoder(): Decoder | null {
  if (decoder !== undefined) return decoder;
  decoder = null;
  try {
    decoder = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(BOX_DECODE_WASM, 'base64')), {}).exports as unknown as Decoder;
  } catch {
    decoder = null; // no WebAssembly: the JS decode gives the same result
  }
  return decoder;
}

/** Chooses WebAssembly (default) or JS for decodeBoxesMmdet(Pairs); results are identical. Returns whether WebAssembly is in use. */
export function useWasmDecode(on: boolean): boolean {
  decoderEnabled = on;
  return on && loadDecoder() !== null;
}

function decodeMmdetWasm(
  d: Decoder, deltas: Float32Array, rois: Float32Array, k: number, pairs: Int32Array, stds: number[], means: number[], maxRatio: number,
  maxShape: readonly [number, number] | null | undefined,
): Float32Array {
  const m = pairs.length;
  const size = (a: ArrayBufferView) => (a.byteLength + 15) & ~15;
  const need = 16 + size(pairs) + size(deltas) + size(rois) + m * 16;
  const have = d.memory.buffer.byteLength;
  if (need > have) d.memory.grow(Math.ceil((need - have) / 65536));
  const heap = new Uint8Array(d.memory.buffer);
  let at = 16;
  const put = (a: ArrayBufferView): number => {
    heap.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    const p = at;
    at += size(a);
    return p;
  };
  const pp = put(pairs), dp = put(deltas), rp = put(rois);
  d.decode(m, pp, k, dp, rp, at, stds[0], stds[1], stds[2], stds[3], means[0], means[1], means[2], means[3], maxRatio,
    maxShape ? 1 : 0, maxShape ? maxShape[0] : 0, maxShape ? maxShape[1] : 0);
  return new Float32Array(d.memory.buffer, at, m * 4).slice();
}

function decodeMmdet(deltas: Float32Array, rois: Float32Array, k: number, pairs: Int32Array | null, opts: MmdetDecodeOptions): Float32Array {
  const n = rois.length / 4;
  const means = (opts.means ?? [0, 0, 0, 0]).map(f32);
  const stds = (opts.stds ?? MMDET_RPN_STDS).map(f32);
  const maxRatio = f32(Math.abs(Math.log(opts.whRatioClip ?? 16 / 1000)));
  const m = pairs ? pairs.length : n * k;
  const d = decoderEnabled && m >= 64 ? loadDecoder() : null;
  if (d) return decodeMmdetWasm(d, deltas, rois, k, pairs ?? Int32Array.from({ length: m }, (_, j) => j), stds, means, maxRatio, opts.maxShape);
  const out = new Float32Array(m * 4);
  const [s0, s1, s2, s3] = stds, [m0, m1, m2, m3] = means;
  for (let j = 0; j < m; j++) {
    const p = pairs ? pairs[j] : j; // pair = box * k + class
    const i = pairs ? Math.floor(p / k) : Math.floor(j / k);
    const x1 = rois[i * 4], y1 = rois[i * 4 + 1], x2 = rois[i * 4 + 2], y2 = rois[i * 4 + 3];
    const px = f32(f32(x1 + x2) * 0.5);
    const py = f32(f32(y1 + y2) * 0.5);
    const pw = f32(x2 - x1);
    const ph = f32(y2 - y1);
    const d = p * 4;
    const dx = f32(f32(deltas[d] * s0) + m0);
    const dy = f32(f32(deltas[d + 1] * s1) + m1);
    let dw = f32(f32(deltas[d + 2] * s2) + m2);
    let dh = f32(f32(deltas[d + 3] * s3) + m3);
    dw = clampNaN(dw, -maxRatio, maxRatio);
    dh = clampNaN(dh, -maxRatio, maxRatio);
    const gw = f32(pw * expf(dw));
    const gh = f32(ph * expf(dh));
    const gx = f32(px + f32(pw * dx));
    const gy = f32(py + f32(ph * dy));
    const hw = f32(gw * 0.5);
    const hh = f32(gh * 0.5);
    const o = j * 4;
    out[o] = gx - hw;
    out[o + 1] = gy - hh;
    out[o + 2] = gx + hw;
    out[o + 3] = gy + hh;
  }
  if (opts.maxShape) {
    const [H, W] = opts.maxShape;
    // torch.where(b < 0, 0, b); torch.where(b > max, max, b): NaN passes through.
    for (let o = 0; o < out.length; o += 2) {
      out[o] = clampNaN(out[o], 0, W);
      out[o + 1] = clampNaN(out[o + 1], 0, H);
    }
  }
  return out;
}
