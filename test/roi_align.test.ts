import { describe, expect, it, vi } from 'vitest';
import {
  inferScale, levelMapperTorchvision, mapRoiLevelsMmdet, multiScaleRoiAlign, roiAlign, roiAlignHelperReady, stageFeatures,
  startRoiAlignHelper, toNHWC, useWasmRoiAlign, type FeatureMap,
} from '../heads/roi_align.ts';
import { featureHash, loadTopic } from './ops_fixtures.ts';

const T = loadTopic('roi_align');

/** max |got - want| / (1e-5 + 1e-5 * |want|): <= 1 means within 1e-5 abs + rel. */
function worst(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let w = 0;
  for (let i = 0; i < got.length; i++) w = Math.max(w, Math.abs(got[i] - want[i]) / (1e-5 + 1e-5 * Math.abs(want[i])));
  return w;
}

describe('RoIAlign vs torchvision.ops.roi_align (single level, edge cases)', () => {
  const feats = new Map<string, FeatureMap[]>();
  for (const c of T.cases.filter((c) => c.name.startsWith('edge_'))) {
    it(c.name, () => {
      const key = `${c.level}`;
      if (!feats.has(key)) {
        const [H, W] = c.featureSize;
        const data = featureHash(c.level, c.channels, H, W);
        feats.set(key, [
          { data, channels: c.channels, height: H, width: W },
          { data: toNHWC(data, c.channels, H, W), channels: c.channels, height: H, width: W, layout: 'nhwc' },
        ]);
      }
      const want = T.f32(c.out);
      for (const f of feats.get(key)!) {
        const got = roiAlign(f, T.f32(c.boxes), { outputSize: c.outputSize, spatialScale: c.spatialScale, samplingRatio: c.samplingRatio, aligned: c.aligned });
        expect(worst(got, want)).toBeLessThanOrEqual(1);
      }
    });
  }
});

describe('multi-level RoIAlign over an 800x1216 pyramid (16 channels)', () => {
  const pyramid = new Map<string, FeatureMap[]>();
  const levelsOf = (c: Record<string, any>, layout: 'nchw' | 'nhwc'): FeatureMap[] => {
    const key = layout;
    if (!pyramid.has(key)) {
      pyramid.set(key, c.strides.map((s: number, l: number) => {
        const H = Math.floor(c.imageSize[0] / s), W = Math.floor(c.imageSize[1] / s);
        const d = featureHash(l, c.channels, H, W);
        return { data: layout === 'nhwc' ? toNHWC(d, c.channels, H, W) : d, channels: c.channels, height: H, width: W, layout };
      }));
    }
    return pyramid.get(key)!;
  };
  for (const c of T.cases.filter((c) => c.strides)) {
    it(c.name, () => {
      const boxes = T.f32(c.boxes);
      const levels = c.name.startsWith('torchvision') ? levelMapperTorchvision(boxes) : mapRoiLevelsMmdet(boxes, 4);
      expect(Array.from(levels)).toEqual(Array.from(T.i32(c.levels)));
      for (const layout of ['nhwc', 'nchw'] as const) {
        const got = multiScaleRoiAlign(levelsOf(c, layout), boxes, levels, { outputSize: c.outputSize, samplingRatio: c.samplingRatio, aligned: c.aligned, scales: c.scales });
        expect(worst(got, T.f32(c.out))).toBeLessThanOrEqual(1);
      }
    });
  }
});

describe('torchvision _infer_scale', () => {
  it('reproduces MultiScaleRoIAlign.scales of the fixture pyramid', () => {
    const c = T.cases.find((c) => c.name.startsWith('torchvision_multiscale'))!;
    const got = c.strides.map((s: number) => inferScale([Math.floor(c.imageSize[0] / s), Math.floor(c.imageSize[1] / s)], c.imageSize));
    expect(got).toEqual(c.scales);
  });
});

describe('FPN level assignment', () => {
  const c = T.cases.find((c) => c.name === 'levels')!;
  it('torchvision LevelMapper (k_min 2, k_max 5, 224, 4, eps 1e-6)', () => {
    expect(Array.from(levelMapperTorchvision(T.f32(c.boxes)))).toEqual(Array.from(T.i32(c.torchvision)));
  });
  it('mmdet map_roi_levels (finest_scale 56, 4 levels)', () => {
    expect(Array.from(mapRoiLevelsMmdet(T.f32(c.boxes), 4))).toEqual(Array.from(T.i32(c.mmdet)));
  });
});

describe('input checks', () => {
  it('rejects a feature/shape mismatch', () => {
    expect(() => roiAlign({ data: new Float32Array(5), channels: 1, height: 2, width: 2 }, new Float32Array(4), { outputSize: 2, spatialScale: 1, samplingRatio: 2, aligned: false })).toThrow(/expected 1x2x2/);
  });
});

describe('WebAssembly channel sweep (NHWC) against the JS one', () => {
  // The two must agree bit for bit (same float64 association); the JS path is the fallback without WebAssembly.
  /** Number of values whose bit patterns differ (toEqual on millions of values is far too slow). */
  const differing = (a: Float32Array, b: Float32Array): number => {
    expect(a.length).toBe(b.length);
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
    let d = 0;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) d++;
    return d;
  };
  const both = (f: () => Float32Array): [Float32Array, Float32Array] => {
    useWasmRoiAlign(false);
    try {
      const js = f();
      expect(useWasmRoiAlign(true)).toBe(true);
      return [js, f()];
    } finally {
      useWasmRoiAlign(true);
    }
  };

  it('fixture cases, single and multi level', () => {
    for (const c of T.cases.filter((c) => c.name.startsWith('edge_'))) {
      const [H, W] = c.featureSize;
      const f: FeatureMap = { data: toNHWC(featureHash(c.level, c.channels, H, W), c.channels, H, W), channels: c.channels, height: H, width: W, layout: 'nhwc' };
      const [js, wasm] = both(() => roiAlign(f, T.f32(c.boxes), { outputSize: c.outputSize, spatialScale: c.spatialScale, samplingRatio: c.samplingRatio, aligned: c.aligned }));
      expect(differing(wasm, js)).toBe(0);
    }
    for (const c of T.cases.filter((c) => c.strides)) {
      const maps: FeatureMap[] = c.strides.map((s: number, l: number) => {
        const H = Math.floor(c.imageSize[0] / s), W = Math.floor(c.imageSize[1] / s);
        return { data: toNHWC(featureHash(l, c.channels, H, W), c.channels, H, W), channels: c.channels, height: H, width: W, layout: 'nhwc' };
      });
      const boxes = T.f32(c.boxes);
      const levels = c.name.startsWith('torchvision') ? levelMapperTorchvision(boxes) : mapRoiLevelsMmdet(boxes, 4);
      const [js, wasm] = both(() => multiScaleRoiAlign(maps, boxes, levels, { outputSize: c.outputSize, samplingRatio: c.samplingRatio, aligned: c.aligned, scales: c.scales }));
      expect(differing(wasm, js)).toBe(0);
    }
  });

  it('odd channel counts, degenerate and out-of-level RoIs, staged features, a helper thread, `out`', async () => {
    // 19 channels: two 8-channel chunks, one pair, one single; 2 + 19 levels of different sizes
    const C = 19;
    const sizes: [number, number][] = [[64, 80], [32, 40], [16, 20], [8, 10]];
    const maps: FeatureMap[] = sizes.map(([H, W], l) => ({ data: toNHWC(featureHash(l, C, H, W), C, H, W), channels: C, height: H, width: W, layout: 'nhwc' }));
    let s = 12345;
    const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const n = 3000;
    const boxes = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) {
      const w = rnd() * 200, h = rnd() * 150, x = rnd() * 340 - 10, y = rnd() * 270 - 10;
      boxes.set([x, y, x + w, y + h], i * 4);
    }
    boxes.set([50, 50, 40, 60, 30, 30, 30, 30, NaN, 1, 2, 3, -20, -20, -5, -5], 0); // inverted, empty, NaN, outside
    const levels = mapRoiLevelsMmdet(boxes, 4);
    levels[7] = 9; // no such level: zeros
    for (const [outputSize, samplingRatio, aligned] of [[7, 0, true], [14, 2, false]] as const) {
      const opts = { outputSize, samplingRatio, aligned, scales: [1 / 4, 1 / 8, 1 / 16, 1 / 32] };
      const [js, wasm] = both(() => multiScaleRoiAlign(maps, boxes, levels, opts));
      expect(differing(wasm, js)).toBe(0);
      startRoiAlignHelper();
      await vi.waitFor(() => expect(roiAlignHelperReady()).toBe(true), { timeout: 10_000 });
      const staged = stageFeatures(maps);
      const out = new Float32Array(js.length).fill(7);
      expect(multiScaleRoiAlign(staged, boxes, levels, { ...opts, threads: 2, out })).toBe(out);
      expect(differing(out, js)).toBe(0);
      stageFeatures([maps[0]]); // overwrites the staged copy: the handle must re-stage
      expect(differing(multiScaleRoiAlign(staged, boxes, levels, { ...opts, threads: 2 }), js)).toBe(0);
    }
  });
});

describe('uint8 features (an int8 model\'s FPN levels)', () => {
  // Bytes x with scale s and zero point z stand for (x - z) * s. RoIAlign is linear, so running it on the bytes
  // must follow RoIAlign of the dequantized float features to within the kernel's weight rounding (14-bit tap
  // weights); WebAssembly and JS bit for bit.
  const C = 37; // one 32-channel chunk and five single channels
  const sizes: [number, number][] = [[64, 80], [32, 40], [16, 20], [8, 10]];
  const quants = [{ scale: 0.05, zeroPoint: 131 }, { scale: 0.011, zeroPoint: 0 }, { scale: 0.3, zeroPoint: 255 }, { scale: 0.07, zeroPoint: 17 }];
  let s = 777;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const bytes = sizes.map(([H, W]) => Uint8Array.from({ length: C * H * W }, () => Math.floor(rnd() * 256)));
  const u8maps: FeatureMap[] = sizes.map(([H, W], l) => ({ data: bytes[l], channels: C, height: H, width: W, layout: 'nhwc', quant: quants[l] }));
  const f32maps: FeatureMap[] = sizes.map(([H, W], l) => ({
    data: Float32Array.from(bytes[l], (x) => (x - quants[l].zeroPoint) * quants[l].scale), channels: C, height: H, width: W, layout: 'nhwc',
  }));
  const n = 2000;
  const boxes = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const w = rnd() * 220, h = rnd() * 160, x = rnd() * 340 - 10, y = rnd() * 270 - 10;
    boxes.set([x, y, x + w, y + h], i * 4);
  }
  boxes.set([50, 50, 40, 60, 30, 30, 30, 30, NaN, 1, 2, 3, -20, -20, -5, -5], 0);
  const levels = mapRoiLevelsMmdet(boxes, 4);
  levels[9] = 7; // no such level: zeros

  it('follows RoIAlign of the dequantized features; WebAssembly (1 and 2 threads) and JS agree bit for bit', async () => {
    for (const [outputSize, samplingRatio, aligned] of [[7, 0, true], [14, 2, false]] as const) {
      const opts = { outputSize, samplingRatio, aligned, scales: [1 / 4, 1 / 8, 1 / 16, 1 / 32] };
      const want = multiScaleRoiAlign(f32maps, boxes, levels, opts);
      useWasmRoiAlign(false);
      let js: Float32Array;
      try {
        js = multiScaleRoiAlign(u8maps, boxes, levels, opts);
      } finally {
        expect(useWasmRoiAlign(true)).toBe(true);
      }
      // The kernel rounds each tap weight to 2^-15 at most: over a bin's taps (up to 400 here) that moves a value
      // by at most 400 * 2^-15 * 255 steps of `scale` in the worst case, and typically by far less.
      let worst = 0, sumErr = 0, nonzero = 0;
      for (let i = 0; i < want.length; i++) {
        const l = levels[Math.floor(i / (C * outputSize * outputSize))];
        const step = l >= 0 && l < 4 ? quants[l].scale : 1;
        const e = Math.abs(js[i] - want[i]) / step;
        worst = Math.max(worst, e);
        sumErr += e;
        if (want[i] !== 0) nonzero++;
      }
      expect(worst).toBeLessThan(1);
      expect(sumErr / want.length).toBeLessThan(0.01);
      expect(nonzero).toBeGreaterThan(want.length / 2);
      const wasm1 = multiScaleRoiAlign(u8maps, boxes, levels, opts);
      expect(Buffer.compare(Buffer.from(wasm1.buffer), Buffer.from(js.buffer))).toBe(0);
      startRoiAlignHelper();
      await vi.waitFor(() => expect(roiAlignHelperReady()).toBe(true), { timeout: 10_000 });
      const wasm2 = multiScaleRoiAlign(stageFeatures(u8maps), boxes, levels, { ...opts, threads: 2 });
      expect(Buffer.compare(Buffer.from(wasm2.buffer), Buffer.from(js.buffer))).toBe(0);
    }
  });

  it('refuses uint8 features without a valid scale/zero point, in NCHW, or mixed with float levels', () => {
    const o = { outputSize: 2, spatialScale: 1, samplingRatio: 2, aligned: false };
    const b = new Float32Array([0, 0, 4, 4]);
    expect(() => roiAlign({ data: new Uint8Array(4), channels: 1, height: 2, width: 2, layout: 'nhwc' }, b, o)).toThrow(/positive scale/);
    expect(() => roiAlign({ data: new Uint8Array(4), channels: 1, height: 2, width: 2, layout: 'nhwc', quant: { scale: 1, zeroPoint: 300 } }, b, o)).toThrow(/zero point/);
    expect(() => roiAlign({ data: new Uint8Array(4), channels: 1, height: 2, width: 2, quant: { scale: 1, zeroPoint: 0 } }, b, o)).toThrow(/channel-last/);
    expect(() => multiScaleRoiAlign([u8maps[0], f32maps[1]], b, new Int32Array(1), { outputSize: 2, samplingRatio: 2, aligned: false, scales: [0.25, 0.125] })).toThrow(/mix/);
  });
});

describe('RoIAlign of a RoI far larger than its level', () => {
  it('samples each bin over the whole axis at most, in WebAssembly as in JS', () => {
    // A 40000-pixel box at stride 4 asks for 1429 samples per bin side: the tap lists stay bounded by the
    // level's own size (here 12 x 16 pixels) and the result matches the JS sweep.
    const C = 3, H = 12, W = 16;
    const f: FeatureMap = { data: toNHWC(Float32Array.from({ length: C * H * W }, (_, i) => Math.cos(i)), C, H, W), channels: C, height: H, width: W, layout: 'nhwc' };
    const boxes = new Float32Array([-20000, -20000, 20000, 20000, 3, 4, 40, 30]);
    const opts = { outputSize: 7, samplingRatio: 0, aligned: true, scales: [1 / 4] };
    useWasmRoiAlign(false);
    let js: Float32Array;
    try {
      js = multiScaleRoiAlign([f], boxes, new Int32Array(2), opts);
    } finally {
      useWasmRoiAlign(true);
    }
    const wasm = multiScaleRoiAlign([f], boxes, new Int32Array(2), opts);
    expect(Buffer.compare(Buffer.from(wasm.buffer), Buffer.from(js.buffer))).toBe(0);
    expect(js.some((v) => v !== 0)).toBe(true);
  });
});
