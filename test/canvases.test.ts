import { describe, it, expect } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import {
  DEFAULT_CANVAS_OPTIONS,
  buildSplit,
  encodePng,
  itemPixel,
  itemShape,
  renderCanvas,
  resizeBilinear,
  silhouette,
  type CanvasSample,
  type CocoDataset,
} from '../datasets/fashion_canvases.ts';
import { FASHION_MNIST_DIR, itemSetFromIdx, loadFashionMnist, parseIdx, subsetItems } from '../datasets/fashion_mnist.ts';

const FIX = 'test/fixtures/canvases';
const items = itemSetFromIdx('t10k', readFileSync(`${FIX}/t10k_items.idx3.gz`), readFileSync(`${FIX}/t10k_labels.idx1.gz`));
const opts = DEFAULT_CANVAS_OPTIONS;

/** COCO compressed RLE string -> row-major 0/1 mask (the test's own decoder, after maskApi.c rleFrString). */
function decodeCocoRle(seg: { size: [number, number]; counts: string }): Uint8Array {
  const [h, w] = seg.size;
  const s = seg.counts;
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = 1;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++;
      k++;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const mask = new Uint8Array(h * w);
  let pos = 0;
  counts.forEach((n, i) => {
    for (let j = 0; j < n; j++, pos++) {
      if (i % 2) {
        const x = Math.floor(pos / h);
        const y = pos % h;
        mask[y * w + x] = 1;
      }
    }
  });
  expect(pos).toBe(h * w);
  return mask;
}

/** Visible masks recomputed from the placements alone: silhouette placed on the canvas, minus later ones. */
function expectedMasks(sample: CanvasSample): Uint8Array[] {
  const S = sample.width;
  const sils = sample.placements.map((pl) => {
    const { sil } = itemShape(items, pl.item, pl.size, opts.threshold);
    const m = new Uint8Array(S * S);
    for (let r = 0; r < pl.size; r++) for (let c = 0; c < pl.size; c++) m[(pl.y + r) * S + pl.x + c] = sil[r * pl.size + c];
    return m;
  });
  return sils.map((m, k) => {
    const v = m.slice();
    for (let j = k + 1; j < sils.length; j++) for (let p = 0; p < v.length; p++) if (sils[j][p]) v[p] = 0;
    return v;
  });
}

function countDiff(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

describe('Fashion-MNIST IDX reader', () => {
  it('reads the committed subset of the test file', () => {
    expect(items.count).toBe(64);
    expect([items.rows, items.cols]).toEqual([28, 28]);
    expect(items.labels.every((l) => l <= 9)).toBe(true);
    // the subset keeps every class, so the canvases below see all of them
    expect(new Set(items.labels).size).toBe(10);
    const { dims } = parseIdx(readFileSync(`${FIX}/t10k_items.idx3.gz`));
    expect(dims).toEqual([64, 28, 28]);
  });

  it('rejects files that are not unsigned-byte IDX', () => {
    expect(() => parseIdx(new Uint8Array([1, 2, 3, 4]))).toThrow(/bad magic/);
    expect(() => parseIdx(new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]))).toThrow(/not unsigned byte/);
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 3, 7]))).toThrow(/payload/);
  });

  it.skipIf(!existsSync(FASHION_MNIST_DIR))('matches the Debian package files (when installed)', () => {
    const t10k = loadFashionMnist('t10k');
    expect(t10k.count).toBe(10000);
    expect(Buffer.from(t10k.images.subarray(0, 64 * 784)).equals(Buffer.from(items.images))).toBe(true);
    expect(Buffer.from(t10k.labels.subarray(0, 64)).equals(Buffer.from(items.labels))).toBe(true);
    expect(loadFashionMnist('train').count).toBe(60000);
  });
});

describe('item geometry against torch / scipy', () => {
  const ref = JSON.parse(readFileSync(`${FIX}/reference.json`, 'utf8'));
  const blob = gunzipSync(readFileSync(`${FIX}/reference.bin.gz`));
  it('uses the threshold the reference was made with', () => {
    expect(ref.threshold).toBe(opts.threshold);
  });
  for (const c of ref.cases as any[]) {
    it(`item ${c.item} (label ${c.label}) at ${c.size}px: torch bilinear and scipy fill_holes`, () => {
      const src = items.images.subarray(c.item * 784, (c.item + 1) * 784);
      const grey = resizeBilinear(src, 28, 28, c.size, c.size);
      if (c.grey_bytes > 0) {
        const want = new Float32Array(blob.buffer.slice(blob.byteOffset + c.grey_offset, blob.byteOffset + c.grey_offset + c.grey_bytes));
        let maxErr = 0;
        for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(grey[i] - want[i]));
        expect(maxErr).toBeLessThan(1e-3);
      }
      const want = blob.subarray(c.sil_offset, c.sil_offset + c.sil_bytes);
      const got = silhouette(grey, c.size, c.size, ref.threshold);
      expect(countDiff(got, want)).toBe(0);
      expect(itemShape(items, c.item, c.size, ref.threshold).sil).toEqual(got);
    });
  }
});

describe('canvas rendering', () => {
  const samples = Array.from({ length: 12 }, (_, i) => renderCanvas(items, 7, i, opts));

  it('places 1..maxItems items inside the canvas at sizes within range', () => {
    let total = 0;
    for (const s of samples) {
      expect(s.placements.length).toBeGreaterThanOrEqual(1);
      expect(s.placements.length).toBeLessThanOrEqual(opts.maxItems);
      for (const pl of s.placements) {
        expect(pl.size).toBeGreaterThanOrEqual(opts.minScale);
        expect(pl.size).toBeLessThanOrEqual(opts.maxScale);
        expect(pl.x).toBeGreaterThanOrEqual(0);
        expect(pl.y).toBeGreaterThanOrEqual(0);
        expect(pl.x + pl.size).toBeLessThanOrEqual(s.width);
        expect(pl.y + pl.size).toBeLessThanOrEqual(s.height);
        expect(pl.label).toBe(items.labels[pl.item]);
        expect(pl.sourceIndex).toBe(pl.item); // the fixture is the head of the file
      }
      total += s.placements.length;
    }
    expect(total).toBeGreaterThan(12 * 2);
  });

  it("each mask is the item's silhouette minus what later items cover", () => {
    let occluded = 0;
    for (const s of samples) {
      const want = expectedMasks(s);
      s.masks.forEach((m, k) => expect(countDiff(m, want[k])).toBe(0));
      // occlusion really happens in this sample set, so the subtraction is exercised
      for (const pl of s.placements.keys()) {
        const { sil } = itemShape(items, s.placements[pl].item, s.placements[pl].size, opts.threshold);
        const full = sil.reduce((a, b) => a + b, 0);
        const vis = s.masks[pl].reduce((a, b) => a + b, 0);
        if (vis < full) occluded++;
        expect(vis).toBeGreaterThanOrEqual(Math.max(opts.minVisibleArea, opts.minVisibleFraction * full));
      }
    }
    expect(occluded).toBeGreaterThan(3);
  });

  it('paints each visible pixel with its own item colour and leaves no pixel in two masks', () => {
    for (const s of samples) {
      const S = s.width;
      const seen = new Uint8Array(S * S);
      s.placements.forEach((pl, k) => {
        const { grey } = itemShape(items, pl.item, pl.size, opts.threshold);
        for (let p = 0; p < S * S; p++) {
          if (!s.masks[k][p]) continue;
          expect(seen[p]).toBe(0);
          seen[p] = 1;
          const g = grey[(Math.floor(p / S) - pl.y) * pl.size + (p % S) - pl.x];
          for (let c = 0; c < 3; c++) {
            if (s.image[p * 3 + c] !== itemPixel(pl.tint[c], g)) {
              throw new Error(`pixel ${p} channel ${c}: ${s.image[p * 3 + c]} != item colour`);
            }
          }
        }
      });
    }
  });

  it('is deterministic in (seed, index) and differs across seeds', () => {
    const again = renderCanvas(items, 7, 5, opts);
    expect(Buffer.from(again.image).equals(Buffer.from(samples[5].image))).toBe(true);
    expect(again.placements).toEqual(samples[5].placements);
    const other = renderCanvas(items, 8, 5, opts);
    expect(Buffer.from(other.image).equals(Buffer.from(samples[5].image))).toBe(false);
  });
});

describe('COCO output', () => {
  it('annotations decode to the masks, with matching area, bbox and category', async () => {
    const got: CanvasSample[] = [];
    const ds = await buildSplit({ items, count: 6, seed: 11, description: 'test' }, (s) => {
      got.push(s);
    });
    expect(ds.images.map((im) => im.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ds.categories.map((c) => c.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(new Set(ds.annotations.map((a) => a.id)).size).toBe(ds.annotations.length);
    for (const [i, s] of got.entries()) {
      const anns = ds.annotations.filter((a) => a.image_id === i + 1);
      expect(anns.length).toBe(s.placements.length);
      anns.forEach((a, k) => {
        const m = decodeCocoRle(a.segmentation);
        expect(countDiff(m, s.masks[k])).toBe(0);
        expect(a.segmentation.size).toEqual([s.height, s.width]);
        let area = 0;
        let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
        for (let p = 0; p < m.length; p++) {
          if (!m[p]) continue;
          area++;
          const x = p % s.width;
          const y = Math.floor(p / s.width);
          x0 = Math.min(x0, x);
          y0 = Math.min(y0, y);
          x1 = Math.max(x1, x);
          y1 = Math.max(y1, y);
        }
        expect(a.area).toBe(area);
        expect(a.bbox).toEqual([x0, y0, x1 - x0 + 1, y1 - y0 + 1]);
        expect(a.category_id).toBe(s.placements[k].label + 1);
        expect(a.iscrowd).toBe(0);
        expect(a.source).toEqual({ split: 't10k', index: s.placements[k].sourceIndex });
      });
    }
  });

  it('same seed gives byte-identical JSON and PNGs', async () => {
    const run = async () => {
      const pngs: Buffer[] = [];
      const ds = await buildSplit({ items, count: 3, seed: 5, description: 'test' }, async (s) => {
        pngs.push(await encodePng(s));
      });
      return { json: JSON.stringify(ds), pngs };
    };
    const a = await run();
    const b = await run();
    expect(a.json).toBe(b.json);
    a.pngs.forEach((p, i) => expect(p.equals(b.pngs[i])).toBe(true));
    const c = await buildSplit({ items, count: 3, seed: 6, description: 'test' });
    expect(JSON.stringify(c.annotations)).not.toBe(JSON.stringify(JSON.parse(a.json).annotations));
  });

});

describe('committed val split (data/canvases_val)', () => {
  const root = 'data/canvases_val';
  const ds: CocoDataset = JSON.parse(readFileSync(`${root}/annotations.json`, 'utf8'));

  it('draws only Fashion-MNIST test-file items and is a well-formed COCO set', () => {
    expect(ds.images.length).toBe(250);
    expect(ds.categories.length).toBe(10);
    const ids = new Set(ds.images.map((im) => im.id));
    for (const a of ds.annotations) {
      expect(a.source.split).toBe('t10k');
      expect(a.source.index).toBeGreaterThanOrEqual(0);
      expect(a.source.index).toBeLessThan(10000);
      expect(ids.has(a.image_id)).toBe(true);
      expect(a.area).toBeGreaterThanOrEqual(opts.minVisibleArea);
    }
    for (const im of ds.images) expect(existsSync(`${root}/images/${im.file_name}`)).toBe(true);
  });

  it('images are RGB of the listed size; masks are disjoint and match their area and bbox', async () => {
    for (const im of ds.images.slice(0, 5)) {
      const { info } = await sharp(`${root}/images/${im.file_name}`).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([im.width, im.height, 3]);
      const union = new Uint8Array(im.width * im.height);
      let overlaps = 0;
      for (const a of ds.annotations.filter((x) => x.image_id === im.id)) {
        const m = decodeCocoRle(a.segmentation);
        let area = 0;
        for (let p = 0; p < m.length; p++) {
          if (!m[p]) continue;
          area++;
          if (union[p]) overlaps++;
          union[p] = 1;
        }
        expect(a.area).toBe(area);
      }
      expect(overlaps).toBe(0);
    }
  });

  it.skipIf(!existsSync(FASHION_MNIST_DIR))('regenerates from the Debian package (when installed)', async () => {
    const t10k = loadFashionMnist('t10k');
    const info = ds.info as Record<string, unknown>;
    const seed = Number(info.seed);
    for (const im of ds.images.slice(0, 4)) {
      const s = renderCanvas(t10k, seed, im.id - 1, JSON.parse(String(info.options)));
      const { data } = await sharp(`${root}/images/${im.file_name}`).raw().toBuffer({ resolveWithObject: true });
      expect(Buffer.from(s.image).equals(data)).toBe(true);
      const anns = ds.annotations.filter((a) => a.image_id === im.id);
      expect(anns.map((a) => a.source.index)).toEqual(s.placements.map((p) => p.sourceIndex));
      anns.forEach((a, k) => expect(countDiff(decodeCocoRle(a.segmentation), s.masks[k])).toBe(0));
    }
  });
});

// keep subsetItems exercised: a subset keeps original indices so annotations point back to the file
describe('subsetItems', () => {
  it('keeps original Fashion-MNIST indices and pixels', () => {
    const sub = subsetItems(items, [5, 2]);
    expect(Array.from(sub.indices)).toEqual([5, 2]);
    expect(Buffer.from(sub.images.subarray(0, 784)).equals(Buffer.from(items.images.subarray(5 * 784, 6 * 784)))).toBe(true);
    expect(() => subsetItems(items, [64])).toThrow(/out of range/);
  });
});
