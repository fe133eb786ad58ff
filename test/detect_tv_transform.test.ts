/**
 * torchvision GeneralizedRCNNTransform replay (heads/transform_torchvision.ts) against torchvision 0.14:
 * resize/pad sizes for many input sizes, and the padded network input bit for bit at an exact scale (coffee.png
 * at 2x). Fixture: transform.json/.bin from scripts/fixtures/make_detect_tv_fixtures.py.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { decodeImage } from '../image/decode.ts';
import { torchvisionDetectorConfig, type TorchvisionPreprocess } from '../heads/config.ts';
import { torchvisionPreprocess, torchvisionResizeSize } from '../heads/transform_torchvision.ts';
import { DIR, loadCase } from './helpers/detect_tv_fixtures.ts';

const pre = torchvisionDetectorConfig(91).preprocess as TorchvisionPreprocess;

describe('torchvision detection transform', () => {
  const c = loadCase('transform') as unknown as ReturnType<typeof loadCase> & { meta: { sizes: number[][]; coffee_padded: number[] } };

  it('resized and padded sizes match torchvision for 15 input sizes', () => {
    for (const [h, w, rh, rw, ph, pw] of c.meta.sizes) {
      expect([h, w, ...torchvisionResizeSize(h, w, pre.minSize, pre.maxSize)]).toEqual([h, w, rh, rw]);
      expect([Math.ceil(rh / 32) * 32, Math.ceil(rw / 32) * 32]).toEqual([ph, pw]);
    }
  });

  it('normalize + bilinear resize + pad is bit-exact at scale 2', async () => {
    const img = await decodeImage(join(DIR, 'coffee.png'));
    const { input, imageSize } = torchvisionPreprocess(img, pre);
    expect(input.shape.slice(2)).toEqual(c.meta.coffee_padded);
    expect(imageSize).toEqual([800, 1200]);
    const [, , H, W] = input.shape;
    const ref = c.get('coffee_input_sample').data;
    let k = 0, differ = 0;
    for (let ch = 0; ch < 3; ch++) {
      for (let y = 0; y < H; y += 13) for (let x = 0; x < W; x += 17) if (input.data[(ch * H + y) * W + x] !== ref[k++]) differ++;
    }
    expect(k).toBe(ref.length);
    expect(differ).toBe(0);
  });
});
