/** encodeCropped (api/detect.ts) against the mask API's full-image encoder on random crops. */
import { describe, expect, it } from 'vitest';
import { encodeCropped } from '../api/detect.ts';
import { encode } from '../postprocess/mask.ts';
import { toFullMask } from '../postprocess/paste_masks.ts';

describe('encodeCropped', () => {
  it('equals encode(toFullMask(crop)) for crops at the borders, inside, empty and full', () => {
    let s = 12345;
    const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const H = 23, W = 17;
    const crops: Array<[number, number, number, number, number]> = [
      [0, 0, W, H, 0.5], [0, 0, W, H, 1], [0, 0, W, H, 0], [3, 4, 5, 6, 0.5], [0, 5, 4, 18, 0.7], [12, 0, 5, 3, 0.3], [16, 22, 1, 1, 1], [2, 2, 0, 0, 1],
    ];
    for (let k = 0; k < 40; k++) {
      const x0 = Math.floor(rnd() * W), y0 = Math.floor(rnd() * H);
      crops.push([x0, y0, Math.floor(rnd() * (W - x0 + 1)), Math.floor(rnd() * (H - y0 + 1)), rnd()]);
    }
    for (const [x0, y0, width, height, p] of crops) {
      const data = new Uint8Array(width * height).map(() => (rnd() < p ? 1 : 0));
      const crop = { data, x0, y0, width, height };
      expect(Array.from(encodeCropped(crop, H, W).counts)).toEqual(Array.from(encode(toFullMask(crop, H, W), H, W).counts));
    }
  });
});
