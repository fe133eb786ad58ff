import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../core/errors.ts';
import {
  annToRle,
  area,
  bboxIou,
  countsFromJsonBytes,
  countsFromString,
  countsToString,
  decode,
  encode,
  encodeColumnMajor,
  frBbox,
  fromCocoRle,
  frPoly,
  frPyObjects,
  iou,
  merge,
  rleFrJsonBytes,
  rleFrString,
  rleToString,
  toBbox,
  toBboxes,
  toCocoRle,
  useWasmIou,
  type CocoRle,
  type RLE,
  type Segmentation,
} from '../postprocess/mask.ts';

type Num = number | string;
interface MaskCase { h: number; w: number; rle: string; area: number; bbox: number[]; bits?: string }
interface Fixtures {
  masks: MaskCase[];
  merges: { masks: number[]; union: string; intersection: string }[];
  ious: { dt: number[]; gt: number[]; iscrowd: number[]; iou: Num[] }[];
  raw_ious: {
    size: [number, number];
    dt: number[][];
    gt: number[][];
    iscrowd: number[];
    iou: Num[];
    merge_union: string;
    merge_intersection: string;
  }[];
  bbox_ious: { dt: Num[]; gt: Num[]; iscrowd: number[]; iou: Num[] }[];
  polygons: { h: number; w: number; segm: number[][]; parts: string[]; merged: string; area: number; bbox: number[] }[];
  random_polygons: { h: number; w: number; poly: number[]; rle: string }[];
  boxes: { h: number; w: number; bbox: number[]; rle: string; area: number; bbox_out: number[] }[];
  uncompressed: { size: [number, number]; counts: number[]; rle: string; area: number; bbox: number[] }[];
  raw_strings: { size: [number, number]; counts: string; area: number; bbox: number[] }[];
  coco: {
    images: {
      image_id: number;
      h: number;
      w: number;
      gt: { id: number; segmentation: Segmentation; iscrowd: number; rle: string; area: number; bbox: number[] }[];
      dt: { segmentation: CocoRle; area: number; bbox: number[] }[];
      iou: Num[];
    }[];
  };
}

const fx = JSON.parse(readFileSync(new URL('./fixtures/mask/cases.json', import.meta.url), 'utf8')) as Fixtures;

function num(v: Num): number {
  return typeof v === 'number' ? v : Number(v);
}

function unpackBits(b64: string, n: number): Uint8Array {
  const packed = Buffer.from(b64, 'base64');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (packed[i >> 3] >> (7 - (i & 7))) & 1;
  return out;
}

function maskRle(i: number): RLE {
  const m = fx.masks[i];
  return rleFrString(m.rle, m.h, m.w);
}

function transpose(rowMajor: Uint8Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[x * h + y] = rowMajor[y * w + x];
  return out;
}

describe('encode / decode / area / toBbox against pycocotools', () => {
  it('has fixtures', () => {
    expect(fx.masks.length).toBeGreaterThan(200);
    expect(fx.masks.filter((m) => m.bits).length).toBeGreaterThan(100);
  });

  it('encodes row-major and column-major bitmaps to the same counts strings', () => {
    for (const m of fx.masks) {
      if (!m.bits) continue;
      const bits = unpackBits(m.bits, m.h * m.w);
      expect(rleToString(encode(bits, m.h, m.w))).toBe(m.rle);
      expect(rleToString(encodeColumnMajor(transpose(bits, m.h, m.w), m.h, m.w))).toBe(m.rle);
    }
  });

  it('decodes counts strings to the original bitmaps', () => {
    for (const m of fx.masks) {
      if (!m.bits) continue;
      const bits = unpackBits(m.bits, m.h * m.w);
      expect(Buffer.from(decode(rleFrString(m.rle, m.h, m.w))).equals(Buffer.from(bits))).toBe(true);
    }
  });

  it('round-trips every mask through decode, encode and the JSON form', () => {
    for (const m of fx.masks) {
      const rle = rleFrString(m.rle, m.h, m.w);
      expect(rleToString(encode(decode(rle), m.h, m.w))).toBe(m.rle);
      const coco = toCocoRle(rle);
      expect(coco).toEqual({ size: [m.h, m.w], counts: m.rle });
      expect(fromCocoRle(coco).counts).toEqual(rle.counts);
      expect(rleToString(fromCocoRle({ size: [m.h, m.w], counts: Array.from(rle.counts) }))).toBe(m.rle);
    }
  });

  it('gives pycocotools areas and boxes', () => {
    const rles = fx.masks.map((_, i) => maskRle(i));
    for (let i = 0; i < fx.masks.length; i++) {
      expect(area(rles[i])).toBe(fx.masks[i].area);
      expect(toBbox(rles[i])).toEqual(fx.masks[i].bbox);
    }
    expect(Array.from(toBboxes(rles))).toEqual(fx.masks.flatMap((m) => m.bbox));
  });

  it('encodes views at any byte offset', () => {
    for (const m of fx.masks) {
      if (!m.bits || m.h * m.w === 0) continue;
      const bits = unpackBits(m.bits, m.h * m.w);
      const shifted = new Uint8Array(bits.length + 3);
      shifted.set(bits, 1);
      expect(rleToString(encode(shifted.subarray(1, 1 + bits.length), m.h, m.w))).toBe(m.rle);
    }
  });

  it('treats any nonzero byte as foreground', () => {
    const m = new Uint8Array([0, 2, 255, 1, 0, 0]);
    expect(Array.from(encode(m, 2, 3).counts)).toEqual([1, 2, 1, 1, 1]);
    expect(Array.from(decode(encode(m, 2, 3)))).toEqual([0, 1, 1, 1, 0, 0]);
  });
});

describe('merge against pycocotools', () => {
  it('unions and intersects', () => {
    expect(fx.merges.length).toBeGreaterThan(100);
    for (const c of fx.merges) {
      const rles = c.masks.map(maskRle);
      expect(rleToString(merge(rles))).toBe(c.union);
      expect(rleToString(merge(rles, true))).toBe(c.intersection);
    }
  });

  it('merging nothing gives an empty 0x0 RLE', () => {
    expect(merge([])).toEqual({ h: 0, w: 0, counts: new Uint32Array(0) });
  });
});

describe.each([
  ['WebAssembly', true],
  ['JS', false],
])('iou against pycocotools, %s kernels', (_name, wasm) => {
  beforeAll(() => {
    expect(useWasmIou(wasm)).toBe(wasm);
  });
  afterAll(() => {
    useWasmIou(true);
  });

  it('mask IoU matrices, crowd and not, empty masks and mixed sizes', () => {
    let minusOne = 0;
    let crowdPairs = 0;
    const out = new Float64Array(4096).fill(7); // reused, stale values and all, as the evaluator does
    for (const c of fx.ious) {
      const o = iou(c.dt.map(maskRle), c.gt.map(maskRle), c.iscrowd);
      expect(o.length).toBe(c.dt.length * c.gt.length);
      expect(Array.from(o)).toEqual(c.iou.map(num));
      const o2 = iou(c.dt.map(maskRle), c.gt.map(maskRle), c.iscrowd, out);
      expect(o2.buffer === out.buffer || o.length > out.length).toBe(true);
      expect(Array.from(o2)).toEqual(c.iou.map(num));
      minusOne += c.iou.filter((v) => v === -1).length;
      crowdPairs += c.iscrowd.filter((v) => v).length * c.dt.length;
    }
    expect(minusOne).toBeGreaterThan(0);
    expect(crowdPairs).toBeGreaterThan(0);
  });

  it('RLEs with zero-length runs inside follow rleIou and rleMerge literally', () => {
    let zeroRuns = 0;
    for (const c of fx.raw_ious) {
      const rle = (counts: number[]) => fromCocoRle({ size: c.size, counts });
      const dts = c.dt.map(rle);
      const gts = c.gt.map(rle);
      expect(Array.from(iou(dts, gts, c.iscrowd))).toEqual(c.iou.map(num));
      expect(rleToString(merge([...dts, ...gts]))).toBe(c.merge_union);
      expect(rleToString(merge(dts.slice(0, 3), true))).toBe(c.merge_intersection);
      zeroRuns += [...c.dt, ...c.gt].filter((k) => k.slice(1).includes(0)).length;
    }
    expect(zeroRuns).toBeGreaterThan(5);
    // rleIou stops at the first place both masks hit a zero-length run: [2,0,0,3] meets itself with IoU 0
    const r = fromCocoRle({ size: [1, 5], counts: [2, 0, 0, 3] });
    expect(Array.from(iou([r], [r], [0]))).toEqual([0]);
  });

  it('crowd GT divides the intersection by the detection area', () => {
    const c = fx.ious.find((k) => k.iscrowd.every((v) => v === 1) && k.dt.length > 5)!;
    const dts = c.dt.map(maskRle);
    const gts = c.gt.map(maskRle);
    const o = iou(dts, gts, c.iscrowd);
    let checked = 0;
    for (let d = 0; d < dts.length; d++) {
      for (let g = 0; g < gts.length; g++) {
        const inter = area(merge([dts[d], gts[g]], true));
        if (inter === 0) continue;
        expect(o[d * gts.length + g]).toBe(inter / area(dts[d]));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('box IoU matrices with maskApi.c arithmetic', () => {
    for (const c of fx.bbox_ious) {
      const o = bboxIou(Float64Array.from(c.dt.map(num)), Float64Array.from(c.gt.map(num)), c.iscrowd);
      expect(Array.from(o)).toEqual(c.iou.map(num));
      const out = new Float64Array(o.length + 3).fill(7);
      expect(Array.from(bboxIou(Float64Array.from(c.dt.map(num)), Float64Array.from(c.gt.map(num)), c.iscrowd, out))).toEqual(c.iou.map(num));
    }
  });

  it('rejects an iscrowd of the wrong length', () => {
    const r = maskRle(0);
    expect(() => iou([r], [r], [])).toThrow(/iscrowd/);
    expect(() => bboxIou(new Float64Array(4), new Float64Array(4), [0, 0])).toThrow(/iscrowd/);
  });
});

describe('polygons and boxes against pycocotools', () => {
  it('frPyObjects gives one RLE per part; annToRle merges them', () => {
    for (const p of fx.polygons) {
      expect(frPyObjects(p.segm, p.h, p.w).map(rleToString)).toEqual(p.parts);
      const merged = annToRle(p.segm, p.h, p.w);
      expect(rleToString(merged)).toBe(p.merged);
      expect(area(merged)).toBe(p.area);
      expect(toBbox(merged)).toEqual(p.bbox);
    }
  });

  it('frPoly on random polygons in, near and far outside the image', () => {
    expect(fx.random_polygons.length).toBeGreaterThan(200);
    for (const p of fx.random_polygons) expect(rleToString(frPoly(p.poly, p.h, p.w))).toBe(p.rle);
  });

  it('annToRle and frPoly place counts in a shared arena (growing it) without changing them', () => {
    const arena = { buf: new Uint32Array(8), used: 0 };
    const held: Array<[RLE, string]> = [];
    for (const p of fx.polygons) held.push([annToRle(p.segm, p.h, p.w, arena), p.merged]);
    for (const p of fx.random_polygons) held.push([frPoly(p.poly, p.h, p.w, arena), p.rle]);
    expect(arena.buf.length).toBeGreaterThan(8);
    // every mask still reads back after later ones were placed and the arena grew
    for (const [r, want] of held) expect(rleToString(r)).toBe(want);
  });

  it('frPoly on a single part matches', () => {
    for (const p of fx.polygons) expect(rleToString(frPoly(p.segm[0], p.h, p.w))).toBe(p.parts[0]);
  });

  it('frBbox', () => {
    for (const b of fx.boxes) {
      const r = frBbox(b.bbox, b.h, b.w);
      expect(rleToString(r)).toBe(b.rle);
      expect(area(r)).toBe(b.area);
      expect(toBbox(r)).toEqual(b.bbox_out);
    }
  });
});

describe('RLE JSON forms against pycocotools', () => {
  it('counts strings read from JSON bytes (backslash escapes included) as from the string', () => {
    let escaped = 0;
    for (const m of [...fx.masks.map((q) => ({ rle: q.rle, h: q.h, w: q.w })), ...fx.raw_strings.map((r) => ({ rle: r.counts, h: r.size[0], w: r.size[1] }))]) {
      const json = Buffer.from(`x${JSON.stringify(m.rle)}`, 'latin1');
      if (json.includes(0x5c)) escaped++;
      const start = 2;
      const end = json.length - 1;
      const want = countsFromString(m.rle);
      let sum = 0;
      for (const c of want) sum += c;
      const got = rleFrJsonBytes(json, start, end, m.h, m.w);
      if (sum !== m.h * m.w) {
        expect(got).toBeNull();
        continue;
      }
      expect(Array.from(got!.counts)).toEqual(Array.from(want));
      const into = new Uint32Array(5 + end - start).fill(7);
      expect(countsFromJsonBytes(json, start, end, m.h, m.w, into, 5)).toBe(want.length);
      expect(Array.from(into.subarray(0, 5))).toEqual([7, 7, 7, 7, 7]);
      expect(Array.from(into.subarray(5, 5 + want.length))).toEqual(Array.from(want));
    }
    expect(escaped).toBeGreaterThan(10);
    const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
    expect(rleFrJsonBytes(bytes('52'), 0, 2, 1, 7)!.counts).toEqual(new Uint32Array([5, 2]));
    expect(rleFrJsonBytes(bytes('5\\\\'), 0, 3, 1, 49)).toBeNull(); // an escaped backslash starting a number the string ends inside
    expect(rleFrJsonBytes(bytes('52'), 0, 2, 1, 8)).toBeNull(); // counts do not cover h*w
    expect(rleFrJsonBytes(bytes('5p'), 0, 2, 1, 7)).toBeNull(); // 'p' is past 'o'
    expect(rleFrJsonBytes(bytes('5\\n'), 0, 3, 1, 7)).toBeNull(); // an escape other than a backslash
    expect(rleFrJsonBytes(bytes('5\\u0032'), 0, 7, 1, 7)).toBeNull();
  });

  it('uncompressed counts use their own size', () => {
    for (const u of fx.uncompressed) {
      const [r] = frPyObjects({ size: u.size, counts: u.counts }, 1, 1);
      expect([r.h, r.w]).toEqual(u.size);
      expect(rleToString(r)).toBe(u.rle);
      expect(area(r)).toBe(u.area);
      expect(toBbox(r)).toEqual(u.bbox);
      expect(Array.from(rleFrString(u.rle, u.size[0], u.size[1]).counts)).toEqual(u.counts);
      expect(countsToString(u.counts)).toBe(u.rle);
    }
  });

  it('raw counts strings read back as maskApi.c reads them (int overflow included)', () => {
    for (const r of fx.raw_strings) {
      const rle = { h: r.size[0], w: r.size[1], counts: countsFromString(r.counts) };
      expect(area(rle)).toBe(r.area);
      expect(toBbox(rle)).toEqual(r.bbox);
    }
  });
});

describe.each([
  ['WebAssembly', true],
  ['JS', false],
])('real COCO val2014 annotations and the COCO API fake segm results, %s kernels', (_name, wasm) => {
  beforeAll(() => {
    expect(useWasmIou(wasm)).toBe(wasm);
  });
  afterAll(() => {
    useWasmIou(true);
  });

  it('annToRle, area, toBbox and iou per image', () => {
    let gts = 0;
    let crowd = 0;
    for (const im of fx.coco.images) {
      const gtRles = im.gt.map((g) => annToRle(g.segmentation, im.h, im.w));
      im.gt.forEach((g, i) => {
        expect(rleToString(gtRles[i])).toBe(g.rle);
        expect(area(gtRles[i])).toBe(g.area);
        expect(toBbox(gtRles[i])).toEqual(g.bbox);
      });
      const dtRles = im.dt.map((d) => fromCocoRle(d.segmentation));
      im.dt.forEach((d, i) => {
        expect(area(dtRles[i])).toBe(d.area);
        expect(toBbox(dtRles[i])).toEqual(d.bbox);
      });
      const o = iou(dtRles, gtRles, im.gt.map((g) => g.iscrowd));
      expect(Array.from(o)).toEqual(im.iou.map(num));
      gts += im.gt.length;
      crowd += im.gt.filter((g) => g.iscrowd).length;
    }
    expect(gts).toBeGreaterThan(50);
    expect(crowd).toBeGreaterThan(0);
  });
});

describe('bad input', () => {
  it('rejects bad RLE objects with a UserError', () => {
    const bad: unknown[] = [
      { size: [2, 3], counts: [1, 2, 'x'] },
      { size: [2, 3], counts: [1, -2, 7] },
      { size: [2, 3], counts: [1.5, 4.5] },
      { size: [2, 3], counts: [1, 2] },
      { size: [2, 3], counts: [1, 2, 4] },
      { size: [2, 3], counts: '1' },
      { size: [2, 3], counts: '9' },
      { size: [2, 3], counts: '06 ' },
      { size: [2, 3], counts: 'P' },
      { size: [2, -3], counts: [0] },
      { size: [2], counts: [6] },
      { size: [2.5, 2], counts: [5] },
      { size: [2, 3], counts: { a: 1 } },
      { counts: [6] },
      null,
    ];
    for (const b of bad) expect(() => fromCocoRle(b as CocoRle), JSON.stringify(b)).toThrow(UserError);
  });

  it('rejects segmentations pycocotools cannot read', () => {
    expect(() => frPyObjects([], 10, 10)).toThrow(UserError);
    expect(() => frPyObjects([[0, 0, 5, 5]], 10, 10)).toThrow(UserError);
    expect(() => frPyObjects([[1, 2]], 10, 10)).toThrow(UserError);
    expect(() => frPyObjects([0, 0, 5, 0, 5, 5] as unknown as number[][], 10, 10)).toThrow(UserError);
    expect(() => frPyObjects([[0, 0, NaN, 0, 5, 5]], 10, 10)).toThrow(UserError);
    expect(() => frPyObjects({ size: [2, 2] } as unknown as CocoRle, 10, 10)).toThrow(UserError);
    expect(() => frPoly([0, 0, 5, 0, 5, 5], -1, 10)).toThrow(UserError);
    expect(() => frPoly([0, 0, 5, 0, 5, 5], 10, 0)).toThrow(UserError);
  });

  it('rejects RLEs whose runs do not cover the image, and mixed sizes in merge', () => {
    const short: RLE = { h: 2, w: 3, counts: new Uint32Array([1, 2]) };
    const ok: RLE = { h: 2, w: 3, counts: new Uint32Array([1, 2, 3]) };
    expect(() => decode(short)).toThrow(UserError);
    expect(() => merge([ok, short])).toThrow(UserError);
    expect(() => iou([short], [ok], [0])).toThrow(UserError);
    expect(() => merge([ok, { h: 3, w: 2, counts: new Uint32Array([6]) }])).toThrow(/merge/);
    expect(() => encode(new Uint8Array(5), 2, 3)).toThrow(UserError);
  });
});
