import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { resizeLinearCv2, rescaleSize } from '../image/resize_cv2.ts';
import type { ImageU8 } from '../core/tensor.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'resize_cv2');

interface Case {
  image: string;
  channels: number;
  width: number;
  height: number;
  sha256: string;
  sample_index: number[];
  sample_value: number[];
  data_b64?: string;
}

/** The PNG as cv2.imread(IMREAD_COLOR) gives it: BGR, then the channel layout the case used. */
function loadBgr(name: string, channels: number): ImageU8 {
  const png = PNG.sync.read(readFileSync(join(DIR, name)));
  const n = png.width * png.height;
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    const r = png.data[4 * i], g = png.data[4 * i + 1], b = png.data[4 * i + 2];
    if (channels === 1) data[i] = g;
    else {
      data[i * channels] = b;
      data[i * channels + 1] = g;
      data[i * channels + 2] = r;
      if (channels === 4) data[i * 4 + 3] = 255;
    }
  }
  return { data, width: png.width, height: png.height, channels };
}

const fixture = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as { opencv: string; cases: Case[] };

describe(`resizeLinearCv2 vs cv2.resize INTER_LINEAR (OpenCV ${fixture.opencv})`, () => {
  const cache = new Map<string, ImageU8>();
  for (const c of fixture.cases) {
    it(`${c.image} x${c.channels} -> ${c.width}x${c.height}`, () => {
      const key = `${c.image}/${c.channels}`;
      if (!cache.has(key)) cache.set(key, loadBgr(c.image, c.channels));
      const out = resizeLinearCv2(cache.get(key)!, c.width, c.height);
      expect(out.data.length).toBe(c.width * c.height * c.channels);
      if (c.data_b64) {
        const want = Buffer.from(c.data_b64, 'base64');
        let diff = 0;
        for (let i = 0; i < want.length; i++) if (want[i] !== out.data[i]) diff++;
        expect(diff).toBe(0);
      }
      expect(c.sample_index.map((i) => out.data[i])).toEqual(c.sample_value);
      expect(createHash('sha256').update(out.data).digest('hex')).toBe(c.sha256);
    });
  }
});

describe('rescaleSize (mmcv.rescale_size)', () => {
  it('fits (1333, 800) keeping the ratio, rounding half up', () => {
    expect(rescaleSize(451, 300)).toMatchObject({ width: 1203, height: 800 });
    expect(rescaleSize(640, 427)).toMatchObject({ width: 1199, height: 800 });
    expect(rescaleSize(1200, 800)).toMatchObject({ width: 1200, height: 800, factor: 1 });
    expect(rescaleSize(2000, 500)).toMatchObject({ width: 1333, height: 333 });
    expect(rescaleSize(300, 200, [667, 400])).toMatchObject({ width: 600, height: 400 });
  });
  it('rejects empty images', () => {
    expect(() => rescaleSize(0, 10)).toThrow(/bad image size/);
  });
});
