/**
 * api/annotate.ts: output size = displayed input size (EXIF orientation applied), mask pixels blended with the
 * instance colour, pixels far from every detection untouched, labels inside the image. Detections are made by
 * hand (a rectangle and a disc mask) so that where colour must and must not appear is known exactly.
 */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { annotate, annotationLayers, placeLabel, PALETTE } from '../api/annotate.ts';
import { decodeImage } from '../image/decode.ts';
import { encode, toCocoRle, area } from '../postprocess/mask.ts';
import type { Detection } from '../api/detect.ts';

const EXIF_JPEG = 'examples/canvas_000007_exif6.jpg';
const PNG = 'examples/canvas_000001.png';

/** A detection whose mask is `inside(x, y)` over an h x w image. */
function handDetection(w: number, h: number, box: Detection['box'], score: number, name: string, inside: (x: number, y: number) => boolean): Detection {
  const m = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m[y * w + x] = inside(x, y) ? 1 : 0;
  const rle = encode(m, h, w);
  return {
    box, bbox: [box[0], box[1], box[2] - box[0], box[3] - box[1]], score, label: 8, labelName: name, categoryId: 8,
    mask: toCocoRle(rle), area: area(rle),
  };
}

async function rgb(png: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('annotate', () => {
  it('draws on the displayed orientation: an EXIF-6 JPEG comes out as viewers show it', async () => {
    const out = await rgb(await annotate(EXIF_JPEG, [], { format: 'png' }));
    const shown = await decodeImage(EXIF_JPEG, { autoOrient: true });
    const stored = await decodeImage(EXIF_JPEG);
    expect([out.width, out.height]).toEqual([shown.width, shown.height]);
    expect(Buffer.compare(out.data, Buffer.from(shown.data))).toBe(0);
    expect(Buffer.compare(out.data, Buffer.from(stored.data))).not.toBe(0);
  });

  it('a non-square EXIF-rotated JPEG: output size is the displayed size, JPEG when asked', async () => {
    // Stored 256 wide x 160 high with Orientation 6 (rotate 90° clockwise to display): displayed 160 x 256.
    const jpeg = await sharp(PNG).extract({ left: 0, top: 0, width: 256, height: 160 }).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toBuffer();
    const d = handDetection(160, 256, [20, 30, 80, 200], 0.9, 'Trouser', (x, y) => x >= 20 && x < 80 && y >= 30 && y < 200);
    const out = await annotate(new Uint8Array(jpeg), { width: 160, height: 256, detections: [d] }, { format: 'jpeg' });
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 160, 256]);
    await expect(annotate(new Uint8Array(jpeg), { width: 256, height: 160, detections: [d] })).rejects.toThrow(/detections are for a 256x160 image, this one is 160x256/);
  });

  it('colours mask pixels with the instance colour, leaves far pixels alone, keeps labels inside', async () => {
    const img = await decodeImage(PNG);
    const { width: W, height: H } = img;
    const disc = (x: number, y: number) => (x - 120) ** 2 + (y - 150) ** 2 < 30 ** 2;
    const a = handDetection(W, H, [90, 120, 150, 180], 0.93, 'Sneaker', disc);
    // Touches the top-right corner: its label must flip inside the box and be clamped at the right edge.
    const b = handDetection(W, H, [200, 0, 256, 40], 0.8, 'Ankle boot', (x, y) => x >= 200 && y < 40);
    const low = handDetection(W, H, [0, 200, 40, 256], 0.2, 'Bag', (x, y) => x < 40 && y >= 200);
    const out = await rgb(await annotate(img, { width: W, height: H, detections: [a, b, low] }, { maskAlpha: 0.5 }));
    expect([out.width, out.height]).toEqual([W, H]);
    const px = (x: number, y: number, d: Uint8Array | Buffer = out.data) => [d[(y * W + x) * 3], d[(y * W + x) * 3 + 1], d[(y * W + x) * 3 + 2]];
    // Drawn lowest score first: b gets PALETTE[0], a PALETTE[1]. Centre of the disc: half original, half colour.
    const c = PALETTE[1];
    const orig = px(120, 150, img.data);
    const got = px(120, 150);
    for (let k = 0; k < 3; k++) expect(Math.abs(got[k] - (orig[k] * 0.5 + c[k] * 0.5))).toBeLessThanOrEqual(2);
    expect(got).not.toEqual(orig);
    // Far from every shown detection (and the 0.2-score one is not drawn): untouched.
    for (const [x, y] of [[20, 100], [10, 230], [250, 250], [60, 60]]) expect(px(x, y)).toEqual(px(x, y, img.data));
    const { labels } = annotationLayers(W, H, [a, b, low], {});
    expect(labels.map((l) => l.text)).toEqual(['Ankle boot 0.80', 'Sneaker 0.93']);
    for (const l of labels) {
      expect(l.x).toBeGreaterThanOrEqual(0);
      expect(l.y).toBeGreaterThanOrEqual(0);
      expect(l.x + l.width).toBeLessThanOrEqual(W);
      expect(l.y + l.height).toBeLessThanOrEqual(H);
      expect(l.height).toBeGreaterThanOrEqual(12); // ~11 px type at 256 px
    }
    const [top, mid] = labels;
    expect(top.y).toBe(0); // inside the box at the top edge
    expect(top.x + top.width).toBe(W); // clamped at the right edge
    expect(mid.y + mid.height).toBe(120); // above its box
    // The label background is painted: the pixel at its left edge has the label colour.
    expect(px(mid.x + 1, mid.y + 1)).toEqual([...c]);
  });

  it('places labels above, inside at the top edge, clamped at the right', () => {
    expect(placeLabel([50, 40, 90, 90], 60, 14, 256, 256)).toEqual({ x: 50, y: 26 });
    expect(placeLabel([50, 5, 90, 90], 60, 14, 256, 256)).toEqual({ x: 50, y: 5 });
    expect(placeLabel([230, 40, 250, 90], 60, 14, 256, 256)).toEqual({ x: 196, y: 26 });
    expect(placeLabel([0, 250, 10, 256], 60, 14, 256, 256)).toEqual({ x: 0, y: 236 });
  });

  it('moves a label off labels already placed: inside the top, then below, then the least covered spot', () => {
    const box: [number, number, number, number] = [50, 40, 90, 90];
    const above = { x: 50, y: 26, width: 60, height: 14 };
    expect(placeLabel(box, 60, 14, 256, 256, [above])).toEqual({ x: 50, y: 40 });
    // Right-aligned above the box is free when only the left part is taken (box wider than the label).
    expect(placeLabel([50, 40, 150, 90], 30, 14, 256, 256, [{ x: 50, y: 26, width: 30, height: 14 }])).toEqual({ x: 120, y: 26 });
    const inside = { x: 50, y: 40, width: 60, height: 14 };
    expect(placeLabel(box, 60, 14, 256, 256, [above, inside])).toEqual({ x: 50, y: 90 });
    // Everything covered: the spot with the least overlap (below, half covered) rather than a full overlap.
    const everywhere = [above, inside, { x: 30, y: 76, width: 60, height: 14 }, { x: 0, y: 97, width: 256, height: 7 }];
    expect(placeLabel(box, 60, 14, 256, 256, everywhere)).toEqual({ x: 50, y: 90 });
  });

  it('labels of boxes sharing a top edge do not overlap; the most confident keeps the spot above its box', () => {
    const W = 256, H = 256;
    const ds = [0.5, 0.97, 0.77].map((s, i) => handDetection(W, H, [100 + 4 * i, 60, 170, 200], s, 'Dress', (x, y) => x >= 100 && x < 170 && y >= 60 && y < 200));
    const { labels } = annotationLayers(W, H, ds, {});
    expect(labels.map((l) => l.text)).toEqual(['Dress 0.50', 'Dress 0.77', 'Dress 0.97']);
    const top = labels[2];
    expect([top.x, top.y + top.height]).toEqual([104, 60]);
    for (let i = 0; i < labels.length; i++) {
      for (let j = i + 1; j < labels.length; j++) {
        const a = labels[i], b = labels[j];
        const sep = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
        expect(sep, `${a.text} vs ${b.text}`).toBe(true);
      }
    }
  });
});
