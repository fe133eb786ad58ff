import { describe, expect, it } from 'vitest';
import {
  clipBoxesToImage, decodeBoxesMmdet, decodeBoxesMmdetPairs, decodeBoxesTorchvision, useWasmDecode, MMDET_RCNN_STDS, MMDET_RPN_STDS,
  removeSmallBoxes, TORCHVISION_BOX_WEIGHTS,
} from '../postprocess/box_coder.ts';
import { loadTopic } from './ops_fixtures.ts';

const T = loadTopic('box_coder');

/** Largest difference in float32 ulps (at the reference's magnitude); NaN must match NaN. */
function maxUlps(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const a = got[i], b = want[i];
    if (Number.isNaN(b)) {
      expect(Number.isNaN(a)).toBe(true);
      continue;
    }
    if (a === b) continue;
    const ulp = Math.max(Math.abs(b) * 2 ** -23, 2 ** -149);
    worst = Math.max(worst, Math.abs(a - b) / ulp);
  }
  return worst;
}

describe('torchvision BoxCoder / clip / remove_small_boxes', () => {
  const c = T.cases.find((c) => c.kind === 'torchvision')!;
  const boxes = T.f32(c.boxes);
  it('decode RPN (weights 1,1,1,1) bit-exact', () => {
    expect(maxUlps(decodeBoxesTorchvision(T.f32(c.deltas), boxes), T.f32(c.rpn))).toBe(0);
  });
  it('decode box head (weights 10,10,5,5), 5 classes, bit-exact', () => {
    expect(maxUlps(decodeBoxesTorchvision(T.f32(c.deltasK), boxes, TORCHVISION_BOX_WEIGHTS), T.f32(c.head))).toBe(0);
  });
  it('clip_boxes_to_image and remove_small_boxes', () => {
    // Clip the reference decode so that this checks clipping alone.
    const clipped = clipBoxesToImage(T.f32(c.rpn), c.imageSize[0], c.imageSize[1]);
    expect(Array.from(clipped)).toEqual(Array.from(T.f32(c.clipped)));
    expect(Array.from(removeSmallBoxes(clipped, 1e-3))).toEqual(Array.from(T.i32(c.keep1e3)));
    expect(Array.from(removeSmallBoxes(clipped, 10))).toEqual(Array.from(T.i32(c.keep10)));
  });
});

describe('mmdet delta2bbox', () => {
  const c = T.cases.find((c) => c.kind === 'mmdet')!;
  const boxes = T.f32(c.boxes);
  const maxShape: [number, number] = [c.imageSize[0], c.imageSize[1]];
  it('RPN stds, clipped to img_shape, bit-exact', () => {
    expect(maxUlps(decodeBoxesMmdet(T.f32(c.deltas), boxes, { stds: MMDET_RPN_STDS, maxShape }), T.f32(c.rpn))).toBe(0);
  });
  it('RPN stds, no clipping, bit-exact', () => {
    expect(maxUlps(decodeBoxesMmdet(T.f32(c.deltas), boxes), T.f32(c.rpnNoClip))).toBe(0);
  });
  it('RCNN stds (0.1, 0.1, 0.2, 0.2), 5 classes, bit-exact', () => {
    expect(maxUlps(decodeBoxesMmdet(T.f32(c.deltasK), boxes, { stds: MMDET_RCNN_STDS, maxShape }), T.f32(c.head))).toBe(0);
  });
  it('rejects deltas that do not fit the boxes', () => {
    expect(() => decodeBoxesMmdet(new Float32Array(6), new Float32Array(4))).toThrow(/does not fit/);
  });
  it('chosen (box, class) pairs only: the rows of the full decode against torch', () => {
    const want = T.f32(c.head);
    const k = want.length / boxes.length;
    const pairs = Int32Array.from({ length: want.length / 4 }, (_, j) => j).filter((j) => j % 3 !== 1).reverse();
    const got = decodeBoxesMmdetPairs(T.f32(c.deltasK), boxes, pairs, { stds: MMDET_RCNN_STDS, maxShape });
    const rows = new Float32Array(pairs.length * 4);
    pairs.forEach((p, j) => rows.set(want.subarray(p * 4, p * 4 + 4), j * 4));
    expect(k).toBeGreaterThan(1);
    expect(maxUlps(got, rows)).toBe(0);
    expect(() => decodeBoxesMmdetPairs(T.f32(c.deltasK), boxes, Int32Array.of(want.length / 4))).toThrow(/outside/);
  });
});

describe('mmdet decode: WebAssembly twin against the JS code', () => {
  it('bit for bit, with NaN, infinite, huge and subnormal deltas and degenerate RoIs', () => {
    let s = 7;
    const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const n = 300, k = 20;
    const rois = new Float32Array(n * 4), deltas = new Float32Array(n * k * 4);
    for (let i = 0; i < n; i++) {
      const x = rnd() * 1200, y = rnd() * 800, w = rnd() * 300, h = rnd() * 300;
      rois.set([x, y, x + w, y + h], i * 4);
    }
    for (let i = 0; i < deltas.length; i++) deltas[i] = (rnd() - 0.5) * (i % 11 === 0 ? 250 : 3);
    const specials = [NaN, Infinity, -Infinity, 1e30, -1e30, 0, -0, 4.1, -4.2, 1e-40];
    for (let i = 0; i < 300; i++) deltas[Math.floor(rnd() * deltas.length)] = specials[i % specials.length];
    rois.set([10, 10, 5, 5, NaN, 1, 2, 3, 0, 0, 0, 0], 0);
    const pairs = Int32Array.from({ length: n * k }, (_, j) => (j * 7919) % (n * k));
    const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
    for (const opts of [{ stds: MMDET_RCNN_STDS, maxShape: [800, 1216] as [number, number] }, { stds: MMDET_RPN_STDS, means: [0.5, -0.25, 0.125, 0] }]) {
      expect(useWasmDecode(false)).toBe(false);
      const js = [decodeBoxesMmdetPairs(deltas, rois, pairs, opts), decodeBoxesMmdet(deltas, rois, opts)];
      expect(useWasmDecode(true)).toBe(true);
      const wasm = [decodeBoxesMmdetPairs(deltas, rois, pairs, opts), decodeBoxesMmdet(deltas, rois, opts)];
      for (let t = 0; t < 2; t++) {
        const a = bits(js[t]), b = bits(wasm[t]);
        let differing = 0;
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
        expect(a.length).toBe(b.length);
        expect(differing).toBe(0);
      }
    }
  });
});
