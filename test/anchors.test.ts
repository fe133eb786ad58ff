import { describe, expect, it } from 'vitest';
import { anchorsMmdet, anchorsTorchvision, baseAnchorsMmdet } from '../postprocess/anchors.ts';
import { loadTopic } from './ops_fixtures.ts';

const T = loadTopic('anchors');

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function pick(all: Float32Array, sel: Int32Array): number[] {
  const out: number[] = [];
  for (const i of sel) out.push(all[i * 4], all[i * 4 + 1], all[i * 4 + 2], all[i * 4 + 3]);
  return out;
}

describe('anchor grids are bit-identical', () => {
  for (const c of T.cases.filter((c) => c.featureSizes)) {
    it(c.name, () => {
      const tv = concat(anchorsTorchvision(c.featureSizes, c.imageSize));
      const mm = concat(anchorsMmdet(c.featureSizes));
      if (c.select) {
        expect(tv.length / 4).toBe(c.count);
        expect(mm.length / 4).toBe(c.count);
        const sel = T.i32(c.select);
        expect(pick(tv, sel)).toEqual(Array.from(T.f32(c.torchvision)));
        expect(pick(mm, sel)).toEqual(Array.from(T.f32(c.mmdet)));
      } else {
        expect(Array.from(tv)).toEqual(Array.from(T.f32(c.torchvision)));
        expect(Array.from(mm)).toEqual(Array.from(T.f32(c.mmdet)));
      }
    });
  }
  it('mmdet base anchors with center offset 0.5 and two scales', () => {
    const c = T.cases.find((c) => c.name === 'mmdet_base_center_0.5')!;
    expect(Array.from(baseAnchorsMmdet(c.baseSize, c.scales, c.ratios, c.centerOffset))).toEqual(Array.from(T.f32(c.base)));
  });
  it('rejects a level count mismatch', () => {
    expect(() => anchorsMmdet([[4, 4]])).toThrow(/1 feature maps but 5 strides/);
  });
});
