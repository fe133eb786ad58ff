import { describe, expect, it } from 'vitest';
import {
  inferScale, levelMapperTorchvision, mapRoiLevelsMmdet, multiScaleRoiAlign, roiAlign, toNHWC, type FeatureMap,
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
