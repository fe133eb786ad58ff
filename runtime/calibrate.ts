/**
 * Activation ranges for static quantization, from the float model's own tensors on calibration inputs.
 * Three methods, as in ONNX Runtime's calibrate.py and TensorRT:
 *   - minmax: the extreme values seen;
 *   - percentile: the 0.001 % / 99.999 % quantiles of a 2048-bin histogram (clips rare outliers);
 *   - entropy: the clipping threshold whose 8-bit quantized histogram is closest, in KL divergence, to the
 *     unclipped one (TensorRT's calibration, "8-bit Inference with TensorRT", Migacz 2017).
 * Histograms need the range first, so percentile and entropy take two passes over the calibration data.
 */
import type { FloatTensor } from '../core/tensor.ts';
import type { Range } from './quantize.ts';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'entropy'];

const BINS = 2048;

export interface Histogram { lo: number; hi: number; counts: Float64Array }

/** Symmetric around 0 for signed tensors (the entropy search grows thresholds out from zero). */
export function emptyHistogram(r: Range, bins = BINS): Histogram {
  if (r.min >= 0) return { lo: 0, hi: r.max > 0 ? r.max : 1, counts: new Float64Array(bins) };
  const a = Math.max(-r.min, r.max);
  return { lo: -a, hi: a, counts: new Float64Array(bins) };
}

export function addToHistogram(h: Histogram, data: Float32Array): void {
  const n = h.counts.length;
  const k = n / (h.hi - h.lo);
  for (let i = 0; i < data.length; i++) {
    const b = Math.floor((data[i] - h.lo) * k);
    h.counts[b < 0 ? 0 : b >= n ? n - 1 : b]++;
  }
}

function minMaxOf(data: Float32Array): Range {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return { min: lo, max: hi };
}

/** Quantiles (1 - p) and p of the histogram's values, bin edges interpolated. */
export function percentileRange(h: Histogram, observed: Range, p = 0.99999): Range {
  const total = h.counts.reduce((a, b) => a + b, 0);
  const width = (h.hi - h.lo) / h.counts.length;
  const at = (q: number): number => {
    let acc = 0;
    for (let b = 0; b < h.counts.length; b++) {
      if (acc + h.counts[b] >= q * total) return h.lo + (b + (q * total - acc) / Math.max(h.counts[b], 1e-12)) * width;
      acc += h.counts[b];
    }
    return h.hi;
  };
  return { min: observed.min >= 0 ? 0 : Math.max(observed.min, at(1 - p)), max: Math.min(observed.max, at(p)) };
}

/**
 * KL-optimal clipping threshold over a histogram of magnitudes `p` (bin i covers [i, i+1) * width): for each
 * candidate threshold t = i bins, the reference keeps bins < i with the clipped tail added to bin i-1; the
 * candidate is bins < i without the tail, merged into `levels` bins and spread back over the reference's
 * nonzero bins (as ORT's calibrate.py and TensorRT). Returns i.
 */
export function klThresholdBins(p: Float64Array, levels: number): number {
  const n = p.length;
  let best = n;
  let bestKl = Infinity;
  let last = n;
  while (last > levels && p[last - 1] === 0) last--;
  if (last <= levels) return last;
  const tail = new Float64Array(n + 1);
  for (let i = n - 1; i >= 0; i--) tail[i] = tail[i + 1] + p[i];
  const ref = new Float64Array(n);
  const cand = new Float64Array(n);
  for (let i = levels; i <= last; i++) {
    ref.set(p.subarray(0, i));
    ref[i - 1] += tail[i];
    // Merge into `levels` bins, then expand each merged bin evenly over its source bins that were nonzero.
    const step = i / levels;
    for (let j = 0; j < levels; j++) {
      const s = Math.floor(j * step);
      const e = j === levels - 1 ? i : Math.floor((j + 1) * step);
      let sum = 0;
      let nz = 0;
      // The candidate is built from the unclipped bins: the clipped tail is what it cannot represent.
      for (let k = s; k < e; k++) { sum += p[k]; if (ref[k] !== 0) nz++; }
      for (let k = s; k < e; k++) cand[k] = ref[k] !== 0 ? sum / nz : 0;
    }
    const kl = klDivergence(ref, cand, i);
    if (kl < bestKl) { bestKl = kl; best = i; }
  }
  return best;
}

function klDivergence(p: Float64Array, q: Float64Array, n: number): number {
  let sp = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) { sp += p[i]; sq += q[i]; }
  if (sp === 0 || sq === 0) return Infinity;
  let kl = 0;
  for (let i = 0; i < n; i++) {
    if (p[i] === 0) continue;
    const pi = p[i] / sp;
    // A reference bin the candidate left empty: smooth it (as TensorRT and ORT do) instead of infinite KL.
    const qi = q[i] > 0 ? q[i] / sq : 1e-4 / n;
    kl += pi * Math.log(pi / qi);
  }
  return kl;
}

/** Entropy range: one-sided [0, t] (256 levels) for non-negative tensors, else symmetric (128 per side). */
export function entropyRange(h: Histogram, observed: Range): Range {
  const n = h.counts.length;
  const width = (h.hi - h.lo) / n;
  if (h.lo >= 0) {
    // The first bin is mostly exact zeros (ReLU outputs), which every uint8 range with zero point 0 holds
    // exactly: left in, that spike dominates the divergence and pins the threshold to merge-ratio artifacts.
    const p = h.counts.slice();
    p[0] = 0;
    const t = klThresholdBins(p, 256) * width;
    return { min: 0, max: Math.min(observed.max, t) };
  }
  // Fold the symmetric histogram into magnitudes.
  const half = n / 2;
  const mag = new Float64Array(half);
  for (let b = 0; b < half; b++) mag[b] = h.counts[half + b] + h.counts[half - 1 - b];
  const t = klThresholdBins(mag, 128) * width;
  return { min: Math.max(observed.min, -t), max: Math.min(observed.max, t) };
}

/**
 * Collects ranges of `tensors` over `passes` runs of the calibration data (1 for minmax, 2 for the histogram
 * methods: the first finds each tensor's extremes, the second fills histograms over them). Feed every run's
 * tensors to observe(), call endPass() after each pass, then ranges().
 */
export interface RangeCollector {
  passes: number;
  observe(outputs: Record<string, FloatTensor>): void;
  endPass(): void;
  ranges(): Map<string, Range>;
}

export function rangeCollector(tensors: string[], method: CalibrationMethod): RangeCollector {
  const wanted = new Set(tensors);
  const mm = new Map<string, Range>();
  const hists = new Map<string, Histogram>();
  let pass = 1;
  const passes = method === 'minmax' ? 1 : 2;
  return {
    passes,
    observe(outs) {
      for (const [k, v] of Object.entries(outs)) {
        if (!wanted.has(k) || v.data.length === 0) continue;
        if (pass === 1) {
          const r = minMaxOf(v.data);
          const cur = mm.get(k);
          mm.set(k, cur ? { min: Math.min(cur.min, r.min), max: Math.max(cur.max, r.max) } : r);
        } else {
          addToHistogram(hists.get(k)!, v.data);
        }
      }
    },
    endPass() {
      if (pass === 1) {
        const missing = tensors.filter((t) => !mm.has(t));
        if (missing.length) throw new Error(`calibration saw no values for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`);
        for (const [k, r] of mm) hists.set(k, emptyHistogram(r));
      }
      pass++;
    },
    ranges() {
      if (pass <= passes) throw new Error('ranges() before the last pass ended');
      if (method === 'minmax') return new Map(mm);
      const out = new Map<string, Range>();
      for (const [k, h] of hists) out.set(k, method === 'percentile' ? percentileRange(h, mm.get(k)!) : entropyRange(h, mm.get(k)!));
      return out;
    },
  };
}

/** Ranges of `tensors` by `method`; `run` runs the calibration data once, handing its tensors to observe. */
export async function calibrateRanges(
  tensors: string[], method: CalibrationMethod, run: (observe: (outputs: Record<string, FloatTensor>) => void) => Promise<void>,
): Promise<Map<string, Range>> {
  const c = rangeCollector(tensors, method);
  for (let p = 0; p < c.passes; p++) {
    await run((o) => c.observe(o));
    c.endPass();
  }
  return c.ranges();
}
