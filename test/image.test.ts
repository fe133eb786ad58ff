import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { centerCropTransform, decodeImage } from '../image/decode.ts';
import { resizeBicubicPillow } from '../image/resize_pillow.ts';
import { imagenetPreprocess } from '../runtime/metadata.ts';

const dir = new URL('./fixtures/images/', import.meta.url).pathname;
const ref = JSON.parse(readFileSync(`${dir}expected.json`, 'utf8'));
const sha = (a: ArrayBufferView) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

describe('decodeImage matches PIL Image.open().convert("RGB")', () => {
  for (const [name, r] of Object.entries(ref.decode as Record<string, { width: number; height: number; sha256: string; head: number[] }>)) {
    it(name, async () => {
      const img = await decodeImage(`${dir}${name}`);
      expect([img.width, img.height, img.channels]).toEqual([r.width, r.height, 3]);
      expect(Array.from(img.data.slice(0, 12))).toEqual(r.head);
      expect(sha(img.data)).toBe(r.sha256);
    });
  }

  it('ignores the embedded ICC profile that sharp would otherwise apply', async () => {
    const converted = await sharp(`${dir}icc_p3.png`).removeAlpha().raw().toBuffer();
    expect(sha(converted)).not.toBe(ref.decode['icc_p3.png'].sha256);
  });

  it('rotates by EXIF orientation only when asked', async () => {
    const img = await decodeImage(`${dir}exif_rot6.jpg`, { autoOrient: true });
    expect([img.width, img.height]).toEqual([40, 64]);
  });

  it('refuses images over the pixel limit', async () => {
    await expect(decodeImage(`${dir}chelsea.jpg`, { maxPixels: 1000 })).rejects.toThrow(/over the limit of 1000/);
  });

  it('reports undecodable files', async () => {
    await expect(decodeImage(`${dir}expected.json`)).rejects.toThrow(/not a decodable image/);
  });
});

describe('resizeBicubicPillow matches Pillow Image.resize(BICUBIC)', async () => {
  const src = await decodeImage(`${dir}coffee_crop.png`);
  for (const r of ref.resize as Array<{ width: number; height: number; sha256: string; head: number[] }>) {
    it(`200x133 -> ${r.width}x${r.height}`, () => {
      const out = resizeBicubicPillow(src, r.width, r.height);
      expect([out.width, out.height]).toEqual([r.width, r.height]);
      expect(Array.from(out.data.slice(0, 12))).toEqual(r.head);
      expect(sha(out.data)).toBe(r.sha256);
    });
  }
  it('every pixel of 200x133 -> 23x17', () => {
    const out = resizeBicubicPillow(src, 23, 17);
    expect(Array.from(out.data)).toEqual(ref.resize_small.pixels);
  });
});

describe('ImageNet evaluation transform matches torchvision (Resize 248 bicubic, CenterCrop 224, Normalize)', () => {
  for (const r of ref.preprocess as Array<{ file: string; shape: number[]; sha256: string; head: number[]; sum: number }>) {
    it(r.file, async () => {
      const x = centerCropTransform(await decodeImage(`${dir}${r.file}`), imagenetPreprocess());
      expect(x.shape).toEqual(r.shape);
      expect(Array.from(x.data.slice(0, 6))).toEqual(r.head);
      expect(sha(x.data)).toBe(r.sha256);
    });
  }
});
