/**
 * RoIAlign (torchvision.ops.roi_align semantics, CPU kernel of torchvision 0.14 == mmcv 1.x roi_align with
 * pool_mode 'avg') and the FPN level assignment of torchvision (LevelMapper) and mmdet
 * (SingleRoIExtractor.map_roi_levels).
 *
 * Sampling positions, the out-of-range rule (y < -1 || y > H -> no contribution), the clamping at 0 and
 * H - 1 and the adaptive grid (ceil(roi / bin)) are computed in float32 exactly as the C++ kernel does, so
 * every sample lands on the same pixels with the same weights. Bilinear weights are separable, so for each
 * output bin we merge all samples into one small (rows x cols) stencil of pixel weights and then sweep the
 * channels once per stencil tap; the sum is accumulated in float64 (torch accumulates in float32), which
 * keeps results within ~1e-7 relative of torch's.
 *
 * Layout: features may be NCHW (as ONNX Runtime returns them) or NHWC (channel-last, see `toNHWC`); the NHWC
 * path streams each tap's channels contiguously and is the faster one. Output is always [R, C, ph, pw].
 *
 * Speed: over NHWC features the channel sweep runs in a WebAssembly SIMD kernel (heads/roi_align.wat, results
 * bit-identical to the JS sweep, which remains for NCHW and runtimes without WebAssembly SIMD), optionally on
 * two threads; the detector stages the features once per image for its box and mask RoIAlign and reuses the
 * output arrays. `npx tsx bench/stages.ts stages` times it against the JS sweep at detector scale.
 * The WebAssembly engine (staging, helper thread, kernel calls) is heads/roi_align_kernel.ts.
 */

import { loadEngine, multiScaleRoiAlignWasm, stageFeatures, wasmEnabled, type StagedFeatures } from './roi_align_kernel.ts';

export {
  roiAlignHelperReady, stageFeatures, startRoiAlignHelper, useWasmRoiAlign, type StagedFeatures,
} from './roi_align_kernel.ts';

const f32 = Math.fround;

export type Layout = 'nchw' | 'nhwc';

/** One feature map of a single image. `data` is C*H*W in the given layout. */
export interface FeatureMap {
  /**
   * float32, or uint8 (an int8 model's FPN level, channel-last only) read as (x - quant.zeroPoint) * quant.scale:
   * RoIAlign is linear, so it runs on the bytes ONNX Runtime made, a quarter of the memory traffic, with no
   * DequantizeLinear over the whole pyramid.
   */
  data: Float32Array | Uint8Array;
  channels: number;
  height: number;
  width: number;
  /** Default 'nchw'. */
  layout?: Layout;
  /** Scale and zero point of uint8 `data`. */
  quant?: { scale: number; zeroPoint: number };
}

export interface RoiAlignOptions {
  /** Pooled size, e.g. 7 or [7, 7]. */
  outputSize: number | readonly [number, number];
  /** Feature pixels per input pixel, e.g. 1/4. */
  spatialScale: number;
  /** Samples per bin side; <= 0 means adaptive ceil(roi / bin). torchvision Mask R-CNN: 2; mmdet: 0. */
  samplingRatio: number;
  /** Half-pixel offset (mmcv default True, torchvision MultiScaleRoIAlign False). */
  aligned: boolean;
}

/** Convert C*H*W to H*W*C (once per image; the NHWC RoIAlign path then reads channels contiguously). */
export function toNHWC(data: Float32Array, channels: number, height: number, width: number, out?: Float32Array): Float32Array {
  const hw = height * width;
  if (data.length !== channels * hw) throw new Error(`toNHWC: ${data.length} values do not match ${channels}x${height}x${width}`);
  const dst = out ?? new Float32Array(data.length);
  // Blocked over pixels so both the reads (per channel) and the writes (per pixel) stay in cache.
  const B = 64;
  for (let p0 = 0; p0 < hw; p0 += B) {
    const p1 = Math.min(p0 + B, hw);
    for (let c = 0; c < channels; c++) {
      const src = c * hw;
      for (let p = p0; p < p1; p++) dst[p * channels + c] = data[src + p];
    }
  }
  return dst;
}

function pooledSize(o: number | readonly [number, number]): [number, number] {
  const [ph, pw] = typeof o === 'number' ? [o, o] : o;
  if (!(Number.isInteger(ph) && Number.isInteger(pw) && ph > 0 && pw > 0)) throw new Error(`roiAlign: bad outputSize ${o}`);
  return [ph, pw];
}

export function checkFeature(f: FeatureMap): void {
  if (f.data.length !== f.channels * f.height * f.width) {
    throw new Error(`roiAlign: feature data has ${f.data.length} values, expected ${f.channels}x${f.height}x${f.width}`);
  }
  if (f.data instanceof Uint8Array) {
    const q = f.quant;
    if (f.layout !== 'nhwc') throw new Error('roiAlign: uint8 features must be channel-last (nhwc)');
    if (!q || !(q.scale > 0 && Number.isFinite(q.scale)) || !Number.isInteger(q.zeroPoint) || q.zeroPoint < 0 || q.zeroPoint > 255) {
      throw new Error(`roiAlign: uint8 features need a positive scale and a zero point in [0, 255], got ${JSON.stringify(q)}`);
    }
  }
}

/**
 * Stencil of one axis for all bins: for bin b, taps start..end in (idx, w) with summed bilinear weights of
 * the bin's samples along this axis (validity folded in: a sample outside [-1, size] has weight 0).
 */
export interface AxisStencil {
  start: Int32Array; // bins + 1 offsets
  idx: Int32Array;
  w: Float64Array;
  grid: number;
}

/**
 * Samples of one axis, replaying pre_calc_for_bilinear_interpolate in float32:
 *   yy = start + p * bin + (i + .5f) * bin / grid; invalid if yy < -1 || yy > size; clamp <= 0 to 0;
 *   low = (int)y; if low >= size - 1 { low = high = size - 1; y = low }; l = y - low; h = 1 - l.
 */
function axisStencil(start: number, binSize: number, pooled: number, grid: number, size: number, scratchIdx: Int32Array, scratchW: Float64Array): AxisStencil {
  const starts = new Int32Array(pooled + 1);
  const idx: number[] = [];
  const ws: number[] = [];
  const g = f32(grid);
  for (let p = 0; p < pooled; p++) {
    starts[p] = idx.length;
    const base = f32(start + f32(p * binSize));
    let m = 0; // distinct pixels of this bin along the axis, merged in scratch
    for (let i = 0; i < grid; i++) {
      let y = f32(base + f32(f32(f32(i + 0.5) * binSize) / g));
      if (!(y >= -1 && y <= size)) continue;
      if (y <= 0) y = 0;
      let low = Math.trunc(y);
      let high: number;
      if (low >= size - 1) {
        high = low = size - 1;
        y = low;
      } else high = low + 1;
      const l = f32(y - low);
      const h = f32(1 - l);
      m = addTap(scratchIdx, scratchW, m, low, h);
      m = addTap(scratchIdx, scratchW, m, high, l);
    }
    for (let t = 0; t < m; t++) {
      if (scratchW[t] !== 0) {
        idx.push(scratchIdx[t]);
        ws.push(scratchW[t]);
      }
    }
  }
  starts[pooled] = idx.length;
  return { start: starts, idx: Int32Array.from(idx), w: Float64Array.from(ws), grid };
}

function addTap(idx: Int32Array, w: Float64Array, m: number, at: number, weight: number): number {
  for (let t = m - 1; t >= 0 && t >= m - 4; t--) {
    if (idx[t] === at) {
      w[t] += weight;
      return m;
    }
  }
  idx[m] = at;
  w[m] = weight;
  return m + 1;
}

export interface RoiGeometry {
  ys: AxisStencil;
  xs: AxisStencil;
  count: number;
}

/** The sampling grid of one RoI: start, bin size and samples per bin along each axis (float32, as the C++ kernel). */
export interface RoiGrid { sx: number; sy: number; binW: number; binH: number; gw: number; gh: number }

/** Float32 replay of the per-RoI setup of roi_align_forward_kernel_impl; null for an empty grid (zeros). */
export function roiGrid(
  x1: number, y1: number, x2: number, y2: number, scale: number, ph: number, pw: number, samplingRatio: number, aligned: boolean,
): RoiGrid | null {
  const offset = aligned ? 0.5 : 0;
  const sx = f32(f32(x1 * scale) - offset);
  const sy = f32(f32(y1 * scale) - offset);
  const ex = f32(f32(x2 * scale) - offset);
  const ey = f32(f32(y2 * scale) - offset);
  let rw = f32(ex - sx);
  let rh = f32(ey - sy);
  if (!aligned) {
    // Force malformed RoIs to be 1x1 (std::max(roi_width, 1.f))
    if (rw < 1) rw = 1;
    if (rh < 1) rh = 1;
  }
  const binH = f32(rh / ph);
  const binW = f32(rw / pw);
  const gh = samplingRatio > 0 ? samplingRatio : Math.ceil(f32(rh / ph));
  const gw = samplingRatio > 0 ? samplingRatio : Math.ceil(f32(rw / pw));
  // An empty (or negative) grid means zeros; (int)ceil(NaN) is undefined in C++, we also give zeros.
  if (!(gh > 0 && gw > 0)) return null;
  return { sx, sy, binW, binH, gw, gh };
}

export function roiGeometry(
  x1: number, y1: number, x2: number, y2: number,
  scale: number, ph: number, pw: number, samplingRatio: number, aligned: boolean,
  height: number, width: number, scratchIdx: Int32Array, scratchW: Float64Array,
): RoiGeometry | null {
  const g = roiGrid(x1, y1, x2, y2, scale, ph, pw, samplingRatio, aligned);
  if (g === null) return null;
  const need = 2 * Math.max(g.gh, g.gw);
  if (scratchIdx.length < need) return roiGeometry(x1, y1, x2, y2, scale, ph, pw, samplingRatio, aligned, height, width, new Int32Array(need), new Float64Array(need));
  const ys = axisStencil(g.sy, g.binH, ph, g.gh, height, scratchIdx, scratchW);
  const xs = axisStencil(g.sx, g.binW, pw, g.gw, width, scratchIdx, scratchW);
  return { ys, xs, count: g.gh * g.gw };
}

/** acc[0..C) = sum over taps of w[q] * pixel(pos[q])[0..C), four taps per sweep to cut accumulator traffic. */
function accumulateNHWC(data: Float32Array, C: number, pos: Int32Array, w: Float64Array, t: number, acc: Float64Array): void {
  if (t === 0) {
    acc.fill(0);
    return;
  }
  let q = 0;
  {
    // first sweep assigns
    const n = Math.min(t, 4);
    const b0 = pos[0] * C, w0 = w[0];
    if (n === 4) {
      const b1 = pos[1] * C, b2 = pos[2] * C, b3 = pos[3] * C, w1 = w[1], w2 = w[2], w3 = w[3];
      for (let ch = 0; ch < C; ch++) acc[ch] = w0 * data[b0 + ch] + w1 * data[b1 + ch] + w2 * data[b2 + ch] + w3 * data[b3 + ch];
      q = 4;
    } else {
      for (let ch = 0; ch < C; ch++) acc[ch] = w0 * data[b0 + ch];
      q = 1;
    }
  }
  for (; q + 4 <= t; q += 4) {
    const b0 = pos[q] * C, b1 = pos[q + 1] * C, b2 = pos[q + 2] * C, b3 = pos[q + 3] * C;
    const w0 = w[q], w1 = w[q + 1], w2 = w[q + 2], w3 = w[q + 3];
    for (let ch = 0; ch < C; ch++) acc[ch] += w0 * data[b0 + ch] + w1 * data[b1 + ch] + w2 * data[b2 + ch] + w3 * data[b3 + ch];
  }
  for (; q + 2 <= t; q += 2) {
    const b0 = pos[q] * C, b1 = pos[q + 1] * C, w0 = w[q], w1 = w[q + 1];
    for (let ch = 0; ch < C; ch++) acc[ch] += w0 * data[b0 + ch] + w1 * data[b1 + ch];
  }
  for (; q < t; q++) {
    const b0 = pos[q] * C, w0 = w[q];
    for (let ch = 0; ch < C; ch++) acc[ch] += w0 * data[b0 + ch];
  }
}

/**
 * The channel sweep over uint8 pixels, in integers as the WebAssembly kernel does it (heads/roi_align.wat): tap
 * weights wq = floor(w * 2^14 + 1/2), acc = sum wq * x exactly, out = f32(f32(acc - zp * sum wq) * f32(scale * 2^-14)).
 * The weight rounding (at most 2^-15 per tap) is far below the int8 features' own quantization step.
 */
function accumulateU8(data: Uint8Array, C: number, pos: Int32Array, w: Float64Array, t: number, zp: number, scale: number, acc: Float64Array): void {
  acc.fill(0);
  let sw = 0;
  for (let q = 0; q < t; q++) {
    const b = pos[q] * C, wq = Math.floor(w[q] * 16384 + 0.5);
    sw += wq;
    for (let ch = 0; ch < C; ch++) acc[ch] += wq * data[b + ch];
  }
  const k = f32(f32(scale) * 2 ** -14);
  for (let ch = 0; ch < C; ch++) acc[ch] = f32((acc[ch] - zp * sw) * k);
}

/**
 * RoIAlign of the RoIs `boxes[sel[k]]` (x1y1x2y2 in input pixels) over one feature map, written into
 * `out` at RoI slot `slot[k]` ([R, C, ph, pw]). Internal building block of roiAlign / multiScaleRoiAlign.
 */
function roiAlignInto(
  feat: FeatureMap, boxes: Float32Array, sel: ArrayLike<number>, slot: ArrayLike<number>,
  opts: RoiAlignOptions, out: Float32Array,
): void {
  const [ph, pw] = pooledSize(opts.outputSize);
  const C = feat.channels, H = feat.height, W = feat.width;
  const nhwc = (feat.layout ?? 'nchw') === 'nhwc';
  const data = feat.data;
  const PP = ph * pw;
  const scale = f32(opts.spatialScale);
  const acc = new Float64Array(C);
  const scratchIdx = new Int32Array(64);
  const scratchW = new Float64Array(64);
  // Flattened stencil of one bin: pixel offsets and weights.
  let tapPos = new Int32Array(256);
  let tapW = new Float64Array(256);
  for (let k = 0; k < sel.length; k++) {
    const b = sel[k] * 4;
    const outBase = slot[k] * C * PP;
    const geo = roiGeometry(boxes[b], boxes[b + 1], boxes[b + 2], boxes[b + 3], scale, ph, pw, opts.samplingRatio, opts.aligned, H, W, scratchIdx, scratchW);
    if (geo === null || H === 0 || W === 0) {
      out.fill(0, outBase, outBase + C * PP);
      continue;
    }
    const { ys, xs } = geo;
    const inv = 1 / geo.count;
    for (let py = 0; py < ph; py++) {
      const r0 = ys.start[py], r1 = ys.start[py + 1];
      for (let px = 0; px < pw; px++) {
        const c0 = xs.start[px], c1 = xs.start[px + 1];
        const nt = (r1 - r0) * (c1 - c0);
        if (nt > tapPos.length) {
          tapPos = new Int32Array(nt * 2);
          tapW = new Float64Array(nt * 2);
        }
        let t = 0;
        for (let r = r0; r < r1; r++) {
          const rowOff = ys.idx[r] * W;
          const wy = ys.w[r] * inv;
          for (let c = c0; c < c1; c++) {
            tapPos[t] = rowOff + xs.idx[c];
            tapW[t++] = wy * xs.w[c];
          }
        }
        const o = outBase + py * pw + px;
        if (data instanceof Uint8Array) {
          accumulateU8(data, C, tapPos, tapW, t, feat.quant!.zeroPoint, feat.quant!.scale, acc);
          for (let ch = 0; ch < C; ch++) out[o + ch * PP] = acc[ch];
        } else if (nhwc) {
          accumulateNHWC(data, C, tapPos, tapW, t, acc);
          for (let ch = 0; ch < C; ch++) out[o + ch * PP] = acc[ch];
        } else {
          const HW = H * W;
          for (let ch = 0, cb = 0; ch < C; ch++, cb += HW) {
            let s = 0;
            for (let q = 0; q < t; q++) s += tapW[q] * data[cb + tapPos[q]];
            out[o + ch * PP] = s;
          }
        }
      }
    }
  }
}

/**
 * torchvision.ops.roi_align for one image: boxes (n*4, x1y1x2y2 in input coordinates) -> [n, C, ph, pw].
 */
export function roiAlign(feat: FeatureMap, boxes: Float32Array, opts: RoiAlignOptions): Float32Array {
  checkFeature(feat);
  const n = boxes.length / 4;
  if (!Number.isInteger(n)) throw new Error(`roiAlign: boxes length ${boxes.length} is not a multiple of 4`);
  const [ph, pw] = pooledSize(opts.outputSize);
  const e = wasmEnabled && feat.layout === 'nhwc' ? loadEngine() : null;
  if (e) {
    return multiScaleRoiAlignWasm(e, stageFeatures([feat]), boxes, new Int32Array(n), [opts.spatialScale], ph, pw, opts.samplingRatio, opts.aligned, 1);
  }
  const out = new Float32Array(n * feat.channels * ph * pw);
  const ids = Int32Array.from({ length: n }, (_, i) => i);
  roiAlignInto(feat, boxes, ids, ids, opts, out);
  return out;
}

export interface MultiScaleOptions {
  outputSize: number | readonly [number, number];
  samplingRatio: number;
  aligned: boolean;
  /** Spatial scale of each level, e.g. [1/4, 1/8, 1/16, 1/32]. */
  scales: readonly number[];
  /** 2: a helper thread takes half of the work (NHWC features, WebAssembly). Default 1. Results never depend on it. */
  threads?: number;
  /**
   * Write the result here (length n * C * ph * pw) instead of a new array: on this machine a fresh 50 MB array
   * (1000 RoIs x 256 x 7 x 7) costs more in page faults (~40 ms) than the whole RoIAlign.
   */
  out?: Float32Array;
}

/**
 * Multi-level RoIAlign: RoI i is pooled from level `levels[i]` (from levelMapperTorchvision or
 * mapRoiLevelsMmdet). Output [n, C, ph, pw], RoI order preserved — the box/mask head input. A RoI whose
 * level is outside [0, levels) (-1: NaN area) stays zero, as in both frameworks (zero-initialised result
 * filled level by level). `feats` may be staged once for several calls (stageFeatures).
 */
export function multiScaleRoiAlign(
  feats: readonly FeatureMap[] | StagedFeatures, boxes: Float32Array, levels: Int32Array, opts: MultiScaleOptions,
): Float32Array {
  const staged = 'levels' in feats ? feats : null;
  const maps = staged ? staged.levels : feats as readonly FeatureMap[];
  const n = boxes.length / 4;
  if (levels.length !== n) throw new Error(`multiScaleRoiAlign: ${levels.length} levels for ${n} boxes`);
  if (opts.scales.length !== maps.length) throw new Error(`multiScaleRoiAlign: ${opts.scales.length} scales for ${maps.length} levels`);
  maps.forEach(checkFeature);
  const C = maps[0].channels;
  if (maps.some((f) => f.channels !== C)) throw new Error('multiScaleRoiAlign: levels differ in channel count');
  if (maps.some((f) => f.data.constructor !== maps[0].data.constructor)) throw new Error('multiScaleRoiAlign: levels mix float32 and uint8 features');
  const [ph, pw] = pooledSize(opts.outputSize);
  if (opts.out && opts.out.length !== n * C * ph * pw) throw new Error(`multiScaleRoiAlign: out has ${opts.out.length} values, expected ${n * C * ph * pw}`);
  const e = wasmEnabled && maps.every((f) => f.layout === 'nhwc') ? loadEngine() : null;
  if (e) {
    return multiScaleRoiAlignWasm(e, staged ?? stageFeatures(maps), boxes, levels, opts.scales, ph, pw, opts.samplingRatio, opts.aligned, opts.threads ?? 1, opts.out);
  }
  const out = opts.out ?? new Float32Array(n * C * ph * pw);
  if (opts.out) out.fill(0);
  for (let l = 0; l < maps.length; l++) {
    const sel: number[] = [];
    for (let i = 0; i < n; i++) if (levels[i] === l) sel.push(i);
    if (sel.length === 0) continue;
    roiAlignInto(maps[l], boxes, sel, sel, { outputSize: opts.outputSize, spatialScale: opts.scales[l], samplingRatio: opts.samplingRatio, aligned: opts.aligned }, out);
  }
  return out;
}

export interface LevelMapperOptions {
  kMin?: number;
  kMax?: number;
  canonicalScale?: number;
  canonicalLevel?: number;
  eps?: number;
}

/**
 * torchvision LevelMapper: floor(k0 + log2(sqrt(area) / s0) + eps) clamped to [kMin, kMax], minus kMin
 * (float32 arithmetic). Defaults: kMin 2, kMax 5, s0 224, k0 4, eps 1e-6. -1 for a NaN area.
 */
export function levelMapperTorchvision(boxes: Float32Array, opts: LevelMapperOptions = {}): Int32Array {
  const kMin = opts.kMin ?? 2, kMax = opts.kMax ?? 5;
  const s0 = f32(opts.canonicalScale ?? 224);
  const k0 = opts.canonicalLevel ?? 4;
  const eps = f32(opts.eps ?? 1e-6);
  const n = boxes.length / 4;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const area = f32(f32(boxes[i * 4 + 2] - boxes[i * 4]) * f32(boxes[i * 4 + 3] - boxes[i * 4 + 1]));
    const s = f32(Math.sqrt(area));
    let lvl = Math.floor(f32(f32(k0 + f32(Math.log2(f32(s / s0)))) + eps));
    if (lvl !== lvl) {
      out[i] = -1; // NaN area (x2 < x1 xor y2 < y1): torch's int64 cast yields garbage that matches no level
      continue;
    }
    if (lvl < kMin) lvl = kMin;
    if (lvl > kMax) lvl = kMax;
    out[i] = lvl - kMin;
  }
  return out;
}

/**
 * mmdet 2.25 SingleRoIExtractor.map_roi_levels: scale = sqrt(w * h) with w = x2 - x1 (no +1),
 * floor(log2(scale / finestScale + 1e-6)) clamped to [0, numLevels - 1]. Defaults finestScale 56, 4 levels.
 * -1 for a NaN scale (negative area).
 */
export function mapRoiLevelsMmdet(boxes: Float32Array, numLevels = 4, finestScale = 56): Int32Array {
  const n = boxes.length / 4;
  const out = new Int32Array(n);
  const fs = f32(finestScale);
  const eps = f32(1e-6);
  for (let i = 0; i < n; i++) {
    const area = f32(f32(boxes[i * 4 + 2] - boxes[i * 4]) * f32(boxes[i * 4 + 3] - boxes[i * 4 + 1]));
    const scale = f32(Math.sqrt(area));
    let lvl = Math.floor(f32(Math.log2(f32(f32(scale / fs) + eps))));
    if (lvl !== lvl) {
      out[i] = -1; // NaN scale: no level matches in mmdet either
      continue;
    }
    if (lvl < 0) lvl = 0;
    if (lvl > numLevels - 1) lvl = numLevels - 1;
    out[i] = lvl;
  }
  return out;
}

/**
 * torchvision _infer_scale: 2 ** round(log2(featureSize / imageSize)) from the first axis, where imageSize
 * is the (unpadded) max image size of the batch.
 */
export function inferScale(featureSize: readonly [number, number], imageSize: readonly [number, number]): number {
  const approx = f32(featureSize[0] / imageSize[0]);
  const l = f32(Math.log2(approx));
  // torch.round: half to even
  let r = Math.round(l);
  if (r - l === 0.5 && r % 2 !== 0) r -= 1;
  return 2 ** r;
}
