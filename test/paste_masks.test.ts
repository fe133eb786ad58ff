import { describe, expect, it } from 'vitest';
import { blitMask, clearMask, pasteMasks, pasteMaskTorchvision, toFullMask } from '../postprocess/paste_masks.ts';
import { decodeRuns, loadTopic } from './ops_fixtures.ts';

const T = loadTopic('paste_masks');
const c = T.cases[0];
const [H, W] = c.imageSize;
const probs = T.f32(c.probs);
const boxes = T.f32(c.boxes);
const n = boxes.length / 4;

function expected(runsKey: string, countsKey: string): Uint8Array[] {
  const runs = T.i32(runsKey), counts = T.i32(countsKey);
  const out: Uint8Array[] = [];
  for (let i = 0, o = 0; i < counts.length; o += counts[i], i++) out.push(decodeRuns(runs.subarray(o, o + counts[i]), H * W));
  return out;
}

function diffPixels(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

describe('paste masks into a 427x640 image (60 masks, 28x28)', () => {
  it('torchvision paste_masks_in_image + (> 0.5) is pixel-identical', () => {
    const want = expected(c.torchvisionRuns, c.torchvisionRunCounts);
    const got = pasteMasks(probs, c.maskSize, boxes, H, W, 'torchvision');
    const diffs = got.map((p, i) => diffPixels(toFullMask(p, H, W), want[i]));
    expect(diffs).toEqual(new Array(n).fill(0));
  });
  it('mmdet _do_paste_mask + (>= 0.5) is pixel-identical', () => {
    const want = expected(c.mmdetRuns, c.mmdetRunCounts);
    const got = pasteMasks(probs, c.maskSize, boxes, H, W, 'mmdet');
    const diffs = got.map((p, i) => diffPixels(toFullMask(p, H, W), want[i]));
    expect(diffs).toEqual(new Array(n).fill(0));
  });
  it('blit/clear through one reused full-size buffer leaves it clean', () => {
    const full = new Uint8Array(H * W);
    const want = expected(c.mmdetRuns, c.mmdetRunCounts);
    for (const [i, p] of pasteMasks(probs, c.maskSize, boxes, H, W, 'mmdet').entries()) {
      blitMask(p, full, W);
      expect(diffPixels(full, want[i])).toBe(0);
      clearMask(p, full, W);
    }
    expect(full.every((v) => v === 0)).toBe(true);
  });
  it('rejects a mask of the wrong size', () => {
    expect(() => pasteMaskTorchvision(new Float32Array(10), 28, [0, 0, 5, 5], 10, 10)).toThrow(/expected 28x28/);
  });
});
