/**
 * The evaluator refuses only what pycocotools gives no well-defined answer for (issue 13, items 4 and 5):
 * masks whose size is not their image's are evaluated as pycocotools does (mask IoU -1 across sizes) with one
 * warning line, for GT and results alike; iscrowd read as pycocotools reads it (any positive integer is a
 * crowd; negative or fractional refused with a true message); messages name the file; duplicate GT image ids
 * of different sizes are blamed on the GT; a huge PNG is over the pixel limit; a results file too large for
 * JSON.parse names its bad entry. Inputs are generated here.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate, loadGt, loadRes } from '../eval/index.ts';
import { resultsFromBytes } from '../eval/load_res.ts';
import { decodeImage } from '../image/decode.ts';
import { encode, toCocoRle } from '../postprocess/mask.ts';
import { UserError } from '../core/errors.ts';
import { hugePngHeader } from './helpers/hostile.ts';

/** A 10x10 square mask [y0, y1) x [x0, x1) as COCO RLE. */
function square(y0: number, y1: number, x0: number, x1: number, h = 10, w = 10) {
  const m = new Uint8Array(h * w);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  return toCocoRle(encode(m, h, w));
}

/** detectron2's COCO-metric test layout: 10x10 RLE GT and results, images declared `size`x`size`. */
function tenByTen(size: number) {
  const gt = {
    images: [0, 1].map((id) => ({ id, width: size, height: size })),
    categories: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }],
    annotations: [
      { id: 1, image_id: 0, category_id: 1, segmentation: square(0, 5, 0, 5), area: 25, bbox: [0, 0, 5, 5], iscrowd: 0 },
      { id: 2, image_id: 0, category_id: 2, segmentation: square(4, 10, 2, 9), area: 42, bbox: [2, 4, 7, 6], iscrowd: 0 },
      { id: 3, image_id: 1, category_id: 1, segmentation: square(1, 8, 1, 8), area: 49, bbox: [1, 1, 7, 7], iscrowd: 0 },
    ],
  };
  const res = [
    { image_id: 0, category_id: 1, segmentation: square(0, 5, 0, 4), score: 0.9 },
    { image_id: 0, category_id: 2, segmentation: square(5, 10, 2, 9), score: 0.8 },
    { image_id: 1, category_id: 1, segmentation: square(2, 8, 1, 8), score: 0.7 },
    { image_id: 1, category_id: 2, segmentation: square(0, 3, 0, 3), score: 0.6 },
  ];
  return { gt, res };
}

describe('evaluator: what pycocotools evaluates is evaluated', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fuzz-eval-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('10x10 masks on 640x640 images: the same stats as on 10x10 images, one warning line per file', () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    const small = tenByTen(10);
    const want = evaluate(loadGt(small.gt, { iouTypes: ['segm'], warn }), small.res, { iouType: 'segm' });
    expect(warnings).toEqual([]);
    expect(want.stats[0]).toBeGreaterThan(0.1);
    const big = tenByTen(640);
    const gtPath = join(dir, 'gt.json');
    const resPath = join(dir, 'res.json');
    writeFileSync(gtPath, JSON.stringify(big.gt));
    writeFileSync(resPath, JSON.stringify(big.res));
    const gt = loadGt(gtPath, { iouTypes: ['segm'], warn });
    const dt = loadRes(gt, resPath, { iouTypes: ['segm'], warn });
    expect(dt.n).toBe(4);
    expect(warnings).toEqual([
      `${gtPath}: annotations[0]: mask size 10x10 differs from image 0's 640x640 (and 2 more GT masks); evaluated as pycocotools does (mask IoU with a mask of another size is -1: no match)`,
      `${resPath}: results[0]: mask size 10x10 differs from image 0's 640x640 (height x width) (and 3 more result masks); evaluated as pycocotools does (mask IoU with a mask of another size is -1: no match)`,
    ]);
    expect(evaluate(gt, resPath, { iouType: 'segm' }).stats).toEqual(want.stats);
  });

  it('results masks of another size than the GT masks match nothing, as in pycocotools (IoU -1)', () => {
    const { gt, res } = tenByTen(10);
    const off = res.map((r) => ({ ...r, segmentation: { ...square(0, 5, 0, 5, 20, 20) } }));
    const r = evaluate(loadGt(gt, { iouTypes: ['segm'], warn: () => undefined }), off, { iouType: 'segm' });
    expect(r.stats[0]).toBe(0);
  });

  const crowdGt = (iscrowd: number | boolean) => ({
    images: [{ id: 1, width: 20, height: 20 }],
    categories: [{ id: 1, name: 'a' }],
    annotations: [
      { id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], area: 100, iscrowd: 0 },
      { id: 2, image_id: 1, category_id: 1, bbox: [10, 10, 10, 10], area: 100, iscrowd },
    ],
  });
  const crowdRes = [
    { image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: 0.9 },
    { image_id: 1, category_id: 1, bbox: [10, 10, 5, 5], score: 0.8 },
  ];

  it('iscrowd 2 is a crowd (pycocotools reads truthiness); -1 and 0.5 are refused with a true message', () => {
    expect(evaluate(crowdGt(2), crowdRes, { iouType: 'bbox' }).stats).toEqual(evaluate(crowdGt(1), crowdRes, { iouType: 'bbox' }).stats);
    expect(evaluate(crowdGt(true), crowdRes, { iouType: 'bbox' }).stats).toEqual(evaluate(crowdGt(1), crowdRes, { iouType: 'bbox' }).stats);
    for (const bad of [-1, 0.5]) {
      expect(() => loadGt(crowdGt(bad), { name: 'gt.json' })).toThrow(new UserError(
        `gt.json: annotations[1]: "iscrowd" must be 0 (not a crowd) or a positive integer (a crowd, as pycocotools reads any non-zero value), got ${bad}`,
      ));
    }
  });

  it('duplicate GT image ids of different sizes are blamed on the GT; identical duplicates pass', () => {
    const gt = (h2: number) => ({
      images: [{ id: 7, width: 10, height: 10 }, { id: 7, width: 10, height: h2 }],
      categories: [{ id: 1, name: 'a' }],
      annotations: [],
    });
    expect(() => loadGt(gt(10), { name: 'gt.json' })).not.toThrow();
    expect(() => loadGt(gt(12), { name: 'gt.json' })).toThrow(new UserError('gt.json: images[1]: duplicate image id 7 with another size (12x10, an earlier entry says 10x10)'));
  });

  it('string image ids used consistently evaluate as their numeric twins (same sorted order); a mix is refused', () => {
    const { gt, res } = tenByTen(10);
    const ids = ['img_a', 'img_b']; // sorted as 0, 1 are
    const sGt = { ...gt, images: gt.images.map((im) => ({ ...im, id: ids[im.id] })), annotations: gt.annotations.map((a) => ({ ...a, image_id: ids[a.image_id] })) };
    const sRes = res.map((r) => ({ ...r, image_id: ids[r.image_id] }));
    const want = evaluate(gt, res, { iouType: 'segm' }).stats;
    expect(evaluate(sGt as never, sRes, { iouType: 'segm' }).stats).toEqual(want);
    const path = join(dir, 'sres.json');
    writeFileSync(path, JSON.stringify(sRes));
    expect(evaluate(sGt as never, path, { iouType: 'segm' }).stats).toEqual(want);
    expect(() => evaluate(sGt as never, res, { iouType: 'segm' })).toThrow(/^results: results\[0\]: image_id 0 is not in the GT/);
    const mixed = { ...sGt, images: [sGt.images[0], { ...sGt.images[1], id: 5 }] };
    expect(() => loadGt(mixed as never, { name: 'gt.json' })).toThrow(new UserError(`gt.json: images[1]: "id" must be a string like images[0]'s (pycocotools cannot sort a mix), got 5`));
  });

  it('errors raised during evaluation name the file', () => {
    const { gt, res } = tenByTen(10);
    gt.annotations[0].segmentation = { size: [10, 10], counts: '\u0000bad' } as never;
    const path = join(dir, 'badgt.json');
    writeFileSync(path, JSON.stringify(gt));
    expect(() => evaluate(path, res, { iouType: 'segm' })).toThrow(new RegExp(`^${path.replace(/[.]/g, '\\.')}: annotation id 1: bad "segmentation"`));
  });

  it('a 20000x20000 PNG is over the pixel limit, not "not decodable"', async () => {
    await expect(decodeImage(hugePngHeader(20000, 20000))).rejects.toThrow(new UserError(
      'image is 20000x20000 = 400000000 pixels, over the limit of 89478485 (possible decompression bomb)',
    ));
  });

  it('a results file too large for JSON.parse names its bad entry, not "too large"', () => {
    const head = Buffer.from('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, {"image_id": "one", "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}');
    // Zero-filled and untouched past the head: no memory is committed for the rest.
    const bytes = Buffer.alloc(bufferConstants.MAX_STRING_LENGTH + 1);
    head.copy(bytes);
    expect(() => resultsFromBytes(bytes, 'big.json')).toThrow(/^big\.json: results\[1\] \(byte 71\) is not a results entry this reader takes .*: \{"image_id": "one"/);
  });
});

describe('generated damage to GT and results: a number or one UserError line, never anything else', () => {
  const VALUES: unknown[] = [null, 'x', -1, 0.5, 1e308, [], {}, [1, 2], true, '', 2 ** 53, -0];
  /** Every path (array index / key) to a value inside `v`, depth-first. */
  function paths(v: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
    if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        const p = [...at, Array.isArray(v) ? Number(k) : k];
        out.push(p);
        paths(x, p, out);
      }
    }
    return out;
  }
  function mutate<T>(v: T, path: Array<string | number>, how: number): T {
    const copy = structuredClone(v) as Record<string | number, unknown>;
    let o = copy as Record<string | number, unknown>;
    for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
    const last = path[path.length - 1];
    if (how === VALUES.length) delete o[last];
    else o[last] = structuredClone(VALUES[how]);
    return copy as T;
  }

  it('every field of a segm GT and results, each replaced by hostile values or deleted', () => {
    const { gt, res } = tenByTen(10);
    let seed = 99;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let refused = 0;
    let computed = 0;
    const gtPaths = paths(gt);
    const resPaths = paths(res);
    for (let trial = 0; trial < 400; trial++) {
      const onGt = trial % 2 === 0;
      const ps = onGt ? gtPaths : resPaths;
      const path = ps[rnd(ps.length)];
      const how = rnd(VALUES.length + 1);
      const g = onGt ? mutate(gt, path, how) : gt;
      const r = onGt ? res : mutate(res, path, how);
      try {
        const out = evaluate(loadGt(g as never, { name: 'gt.json', iouTypes: ['segm'], warn: () => undefined }), r as never, { iouType: 'segm' });
        expect(out.stats).toHaveLength(12);
        computed++;
      } catch (e) {
        if (!(e instanceof UserError)) throw new Error(`trial ${trial} (${onGt ? 'gt' : 'results'} ${path.join('.')} <- ${how}): ${String(e)}`);
        expect(e.message).not.toContain('\n');
        expect(e.message).toMatch(/^(gt\.json|results|[a-z]+(\.[a-zA-Z]+)* must be )/);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
    expect(computed).toBeGreaterThan(20);
  });
});
