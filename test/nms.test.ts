import { describe, expect, it } from 'vitest';
import { argsortDescending, argsortDescendingStable } from '../postprocess/sort.ts';
import { batchedNms, batchedNmsMmcv, multiclassNms, nms, nmsMmcv } from '../postprocess/nms.ts';
import { loadTopic } from './ops_fixtures.ts';

const T = loadTopic('nms');
const byKind = (k: string) => T.cases.filter((c) => c.kind === k);

describe('argsortDescending / argsortDescendingStable (torch CPU sort order)', () => {
  for (const c of byKind('sort')) {
    it(c.name, () => {
      expect(Array.from(argsortDescending(T.f32(c.values)))).toEqual(Array.from(T.i32(c.expected)));
      expect(Array.from(argsortDescendingStable(T.f32(c.values)))).toEqual(Array.from(T.i32(c.stable)));
    });
  }
});

describe('nms vs torchvision.ops.nms and mmcv nms_cpu', () => {
  for (const c of byKind('nms')) {
    it(c.name, () => {
      const b = T.f32(c.boxes), s = T.f32(c.scores);
      expect(Array.from(nms(b, s, c.iou))).toEqual(Array.from(T.i32(c.torchvision)));
      expect(Array.from(nmsMmcv(b, s, c.iou))).toEqual(Array.from(T.i32(c.mmcv)));
    });
  }
  it('mmcv offset / score_threshold / max_num', () => {
    const c = byKind('nms_mmcv_opts')[0];
    const keep = nmsMmcv(T.f32(c.boxes), T.f32(c.scores), c.iou, { offset: c.offset, scoreThreshold: c.scoreThreshold, maxNum: c.maxNum });
    expect(Array.from(keep)).toEqual(Array.from(T.i32(c.mmcv)));
  });
  it('float vs double threshold: IoU exactly float32(0.3) is suppressed by torchvision only', () => {
    const b = new Float32Array([0, 0, 10, 1, 0, 0, 3, 1]);
    const s = new Float32Array([0.9, 0.8]);
    expect(Array.from(nms(b, s, 0.3))).toEqual([0]);
    expect(Array.from(nmsMmcv(b, s, 0.3))).toEqual([0, 1]);
  });
  it('grid candidate search decides exactly like the all-pairs loop', () => {
    // Deterministic boxes of mixed sizes, some empty or inverted; scores with ties.
    let a = 12345;
    const rnd = () => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0) / 4294967296);
    const n = 1500;
    const b = new Float32Array(n * 4), s = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const w = 2 + rnd() * (i % 7 === 0 ? 600 : 60), h = 2 + rnd() * 80, x = rnd() * 900, y = rnd() * 700;
      b.set(i % 50 === 3 ? [x, y, x - w, y + h] : [x, y, x + w, y + h], i * 4);
      s[i] = Math.floor(rnd() * 32) / 32;
    }
    for (const thr of [0.05, 0.2, 0.3, 0.5, 0.6, 0.7, 0.9, 1]) {
      expect(Array.from(nms(b, s, thr, { strategy: 'grid' }))).toEqual(Array.from(nms(b, s, thr, { strategy: 'brute' })));
      for (const offset of [0, 1]) {
        expect(Array.from(nmsMmcv(b, s, thr, { offset, strategy: 'grid' }))).toEqual(Array.from(nmsMmcv(b, s, thr, { offset, strategy: 'brute' })));
      }
    }
  });
  it('rejects mismatched inputs', () => {
    expect(() => nms(new Float32Array(7), new Float32Array(2), 0.5)).toThrow(/boxes has 7 values/);
  });
});

describe('batched NMS', () => {
  for (const c of byKind('batched')) {
    it(c.name, () => {
      const b = T.f32(c.boxes), s = T.f32(c.scores), idx = T.i32(c.idxs);
      expect(Array.from(batchedNms(b, s, idx, c.iou))).toEqual(Array.from(T.i32(c.torchvision)));
      const { dets, keep } = batchedNmsMmcv(b, s, idx, { iouThreshold: c.iou });
      expect(Array.from(keep)).toEqual(Array.from(T.i32(c.mmcv)));
      expect(Array.from(dets)).toEqual(Array.from(T.f32(c.mmcvDets)));
      expect(Array.from(batchedNms(b, s, idx, c.iou, { flavor: 'mmcv', splitThr: 500 }))).toEqual(Array.from(T.i32(c.mmcvSplit500)));
      expect(Array.from(batchedNms(b, s, idx, c.iou, { flavor: 'mmcv', classAgnostic: true }))).toEqual(Array.from(T.i32(c.mmcvAgnostic)));
    });
  }
});

describe('mmdet multiclass_nms', () => {
  for (const c of byKind('multiclass')) {
    it(c.name, () => {
      const r = multiclassNms(T.f32(c.boxes), T.f32(c.scores), c.numClasses, c.scoreThr, { iouThreshold: c.iou }, c.maxNum);
      expect(Array.from(r.dets)).toEqual(Array.from(T.f32(c.dets)));
      expect(Array.from(r.labels)).toEqual(Array.from(T.i32(c.labels)));
      expect(Array.from(r.inds)).toEqual(Array.from(T.i32(c.inds)));
    });
  }
});
