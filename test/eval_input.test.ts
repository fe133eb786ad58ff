// Bad input for the COCO evaluator: one-line UserErrors from the library, exit code 2 and no stack trace
// from `fasternet eval`; the byte-level results reader against JSON.parse; the CLI's JSON and baseline.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../core/errors.ts';
import { runEval } from '../cli/eval.ts';
import { evaluate, evaluateAll, evaluateAllAsync, loadGt, loadRes } from '../eval/index.ts';
import { rawFromParsed } from '../eval/load_res.ts';
import { readResultsFast } from '../eval/results_reader.ts';

const ROOT = join(import.meta.dirname, 'fixtures', 'coco');
const GT = join(ROOT, 'case_small_b', 'gt.json');
const DT_BBOX = join(ROOT, 'case_small_b', 'dt_bbox.json');
const DT_SEGM = join(ROOT, 'case_small_b', 'dt_segm.json');
const tmp = mkdtempSync(join(tmpdir(), 'fasternet-eval-test-'));
const gtJson = JSON.parse(readFileSync(GT, 'utf8'));
const dtJson = JSON.parse(readFileSync(DT_BBOX, 'utf8')) as Array<Record<string, unknown>>;

function write(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

function userErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected a UserError');
}

const withResult = (i: number, patch: Record<string, unknown>): Array<Record<string, unknown>> =>
  dtJson.map((d, j) => (j === i ? { ...d, ...patch } : d));

describe('bad results', () => {
  const gt = loadGt(GT, { iouTypes: ['bbox', 'segm'] });
  const cases: Array<[string, unknown, RegExp]> = [
    ['an image id absent from the GT', withResult(3, { image_id: 987654321 }), /results\[3\]: image_id 987654321 is not in the GT/],
    ['an unknown category', withResult(5, { category_id: 999 }), /results\[5\]: category_id 999 is not a GT category/],
    ['a negative box width', withResult(2, { bbox: [1, 2, -3, 4] }), /results\[2\]: "bbox" has a negative width or height/],
    ['a NaN box value', withResult(2, { bbox: [1, 2, NaN, 4] }), /results\[2\]: "bbox" values must be finite numbers/],
    ['a box of 3 numbers', withResult(1, { bbox: [1, 2, 3] }), /results\[1\]: "bbox" must be \[x, y, w, h\], got 3 values/],
    ['a missing score', withResult(4, { score: undefined }), /results\[4\]: missing required field "score"/],
    ['a string score', withResult(4, { score: '0.5' }), /results\[4\]: "score" must be a finite number, got "0.5"/],
    ['a box missing in the box branch', withResult(6, { bbox: undefined }), /results\[6\]: missing "bbox"/],
    ['a non-array', { annotations: [] }, /results must be a JSON array/],
    ['a non-object entry', [dtJson[0], 7], /results\[1\] must be an object/],
  ];
  for (const [what, results, re] of cases) {
    it(`rejects ${what}`, () => {
      expect(userErrorOf(() => loadRes(gt, results, { iouTypes: ['bbox'] }))).toMatch(re);
    });
  }

  it('rejects polygons and missing masks in mask-only results', () => {
    const segm = JSON.parse(readFileSync(DT_SEGM, 'utf8')) as Array<Record<string, unknown>>;
    const poly = segm.map((d, j) => (j === 2 ? { ...d, segmentation: [[1, 1, 5, 1, 5, 5]] } : d));
    expect(userErrorOf(() => loadRes(gt, poly, { iouTypes: ['segm'] }))).toMatch(/results\[2\]: mask results must be RLE/);
    const none = segm.map((d, j) => (j === 3 ? { ...d, segmentation: undefined } : d));
    expect(userErrorOf(() => loadRes(gt, none, { iouTypes: ['segm'] }))).toMatch(/results\[3\]: missing "segmentation"/);
    const size = segm.map((d, j) => (j === 1 ? { ...d, segmentation: { ...(d.segmentation as object), size: [7, 9] } } : d));
    // A mask of another size than its image is evaluated as pycocotools does, with one warning line.
    const warnings: string[] = [];
    loadRes(gt, size, { iouTypes: ['segm'], warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^results: results\[1\]: mask size 7x9 differs from image \d+'s \d+x\d+ \(height x width\); evaluated as pycocotools does/);
  });

  it('rejects a corrupt RLE string when the mask is evaluated', () => {
    const segm = JSON.parse(readFileSync(DT_SEGM, 'utf8')) as Array<Record<string, unknown>>;
    const bad = segm.map((d) => ({ ...d, segmentation: { ...(d.segmentation as object), counts: 'zz~~' } }));
    expect(userErrorOf(() => evaluate(GT, bad, { iouType: 'segm' }))).toMatch(/results\[\d+\]: bad "segmentation"/);
    // The same from a file, where the counts string is decoded straight from the file's bytes.
    const file = write('bad_rle.json', JSON.stringify(bad));
    expect(userErrorOf(() => evaluate(GT, file, { iouType: 'segm' }))).toMatch(/results\[\d+\]: bad "segmentation"/);
  });

  it('rejects numbers that overflow to Infinity in a results file', () => {
    const g = loadGt(GT);
    const big = write('big.json', '[{"image_id": 64, "category_id": 1, "bbox": [1, 2, 1e400, 4], "score": 0.5}]');
    expect(userErrorOf(() => loadRes(g, big))).toMatch(/results\[0\]: "bbox" values must be finite numbers, got Infinity/);
    const score = write('score.json', '[{"image_id": 64, "category_id": 1, "bbox": [1, 2, 3, 4], "score": -1e999}]');
    expect(userErrorOf(() => loadRes(g, score))).toMatch(/"score" must be a finite number, got -Infinity/);
  });

  it('names malformed JSON, NaN in JSON and missing files in one line', () => {
    const g = loadGt(GT);
    expect(userErrorOf(() => loadRes(g, write('trunc.json', '[{"image_id": 1,')))).toMatch(/trunc\.json is not valid JSON/);
    const nan = write('nan.json', '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, NaN, 4], "score": 0.5}]');
    expect(userErrorOf(() => loadRes(g, nan))).toMatch(/contains NaN or Infinity/);
    expect(userErrorOf(() => loadRes(g, join(tmp, 'absent.json')))).toMatch(/results file not found/);
  });
});

describe('bad GT', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['no images', { ...gtJson, images: undefined }, /missing required field "images"/],
    ['an image without id', { ...gtJson, images: [{ width: 3 }] }, /images\[0\]: missing required field "id"/],
    [
      'an annotation without area',
      { ...gtJson, annotations: gtJson.annotations.map((a: object, i: number) => (i === 4 ? { ...a, area: undefined } : a)) },
      /annotations\[4\]: missing required field "area"/,
    ],
    [
      'an annotation without iscrowd',
      { ...gtJson, annotations: gtJson.annotations.map((a: object, i: number) => (i === 0 ? { ...a, iscrowd: undefined } : a)) },
      /annotations\[0\]: missing required field "iscrowd"/,
    ],
    [
      'duplicate annotation ids',
      { ...gtJson, annotations: [gtJson.annotations[0], gtJson.annotations[0]] },
      /annotations\[1\]: duplicate annotation id/,
    ],
  ];
  for (const [what, gt, re] of cases) {
    it(`rejects ${what}`, () => {
      expect(userErrorOf(() => loadGt(gt, { iouTypes: ['bbox'] }))).toMatch(re);
    });
  }

  it('needs image sizes to rasterise polygons for segm, not for bbox', () => {
    const noSize = { ...gtJson, images: gtJson.images.map(({ id }: { id: number }) => ({ id })) };
    expect(() => loadGt(noSize, { iouTypes: ['bbox'] })).not.toThrow();
    expect(userErrorOf(() => loadGt(noSize, { iouTypes: ['segm'] }))).toMatch(/needs integer "height" and "width"/);
  });
});

describe('byte-level results reader', () => {
  it('reads numbers exactly as JSON.parse does', () => {
    const nums = [
      '0', '-0', '1', '123456789', '0.5', '0.1', '0.30000000000000004', '1e-7', '2.5E+3', '-12.75', '3.14159265358979',
      '0.123456789012345678', '1234567890123456789', '1e22', '1e23', '4.9e-324', '1.7976931348623157e308', '0.0001',
      '99999.99999', '7e-23', '100e-2',
    ];
    const text = `[${nums.map((v) => `{"image_id": ${v}, "category_id": 1,"score":${v} , "bbox":[${v},${v},${v},${v}]}`).join(',\n')}]`;
    const fast = readResultsFast(Buffer.from(text))!;
    const ref = rawFromParsed(JSON.parse(text), 't');
    expect(fast).not.toBeNull();
    for (let i = 0; i < nums.length; i++) {
      expect(Object.is(fast.imageId[i], ref.imageId[i]), nums[i]).toBe(true);
      expect(Object.is(fast.score[i], ref.score[i]), nums[i]).toBe(true);
      expect(Object.is(fast.bbox[4 * i + 2], ref.bbox[4 * i + 2]), nums[i]).toBe(true);
    }
  });

  it('keeps RLE strings (escapes included), other keys and polygons as JSON.parse does', () => {
    const text = JSON.stringify([
      { image_id: 1, category_id: 2, score: 0.5, segmentation: { counts: 'a\\b"c', size: [4, 5] }, extra: { x: [1, null, true] } },
      { category_id: 3, score: 0.25, image_id: 2, bbox: [1, 2, 3, 4], segmentation: [[1, 2, 3, 4, 5, 6]] },
      { image_id: 3, category_id: 2, score: 1, bbox: [], segmentation: { size: [4, 5], counts: 'PP1' } },
      // long strings (memchr path): escaped quotes inside, backslashes right before the closing quote
      { image_id: 4, category_id: 2, score: 1, segmentation: { size: [4, 5], counts: `${'O'.repeat(40)}\\"x\\\\"${'1'.repeat(30)}\\` } },
      { image_id: 5, category_id: 2, score: 1, segmentation: { size: [4, 5], counts: `${'a'.repeat(50)}\\\\` } },
      { image_id: 6, category_id: 2, score: 1, segmentation: { size: [4, 5], counts: 'b'.repeat(60) } },
    ]);
    const fast = readResultsFast(Buffer.from(text))!;
    const ref = rawFromParsed(JSON.parse(text), 't');
    expect(fast.n).toBe(6);
    for (let i = 0; i < 6; i++) {
      expect(fast.segmAt(i)).toEqual(ref.segmAt(i));
      expect(fast.bboxKind[i]).toBe(ref.bboxKind[i]);
      expect(fast.segmKind[i]).toBe(ref.segmKind[i]);
    }
  });

  it('leaves what it does not take (syntax errors, missing fields, list counts) to JSON.parse', () => {
    for (const text of [
      '[{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]},]',
      '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}]',
      '[{"image_id": 1, "category_id": 1, "score": 0.5, "x": [1 2]}]',
      '[{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [2, 2], "counts": [4]}}]',
      '[{"image_id": "1", "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]',
      '[] x',
    ]) {
      expect(readResultsFast(Buffer.from(text)), text).toBeNull();
    }
  });
});

describe('fasternet eval', () => {
  it('gives the same numbers with the categories split over worker threads', async () => {
    const one = evaluateAll(GT, DT_SEGM, ['bbox', 'segm']);
    const two = await evaluateAllAsync(GT, DT_SEGM, ['bbox', 'segm'], { threads: 2 });
    for (const t of ['bbox', 'segm'] as const) {
      expect(two[t]!.stats).toEqual(one[t]!.stats);
      expect(two[t]!.perCategoryAp).toEqual(one[t]!.perCategoryAp);
      expect(Array.from(two[t]!.precision.data)).toEqual(Array.from(one[t]!.precision.data));
    }
    // Parsed (not file) results: the worker gets the segmentations of its own detections.
    const parsed = JSON.parse(readFileSync(DT_SEGM, 'utf8'));
    const three = await evaluateAllAsync(GT, parsed, ['segm'], { threads: 3 });
    expect(three.segm!.stats).toEqual(one.segm!.stats);
  });

  it('writes OUT.json with stats per iou type and the baseline difference', async () => {
    const lines: string[] = [];
    const out = join(tmp, 'out.json');
    await runEval({ gt: GT, results: DT_SEGM, iouType: 'bbox,segm', baseline: DT_BBOX, json: out }, (l) => lines.push(l));
    const json = JSON.parse(readFileSync(out, 'utf8'));
    const exp = JSON.parse(readFileSync(join(ROOT, 'case_small_b', 'expected.json'), 'utf8'));
    expect(json.segm.statsArray).toEqual(exp.segm.stats);
    expect(json.bbox.statsArray).toEqual(exp.extra_runs[0].stats); // dt_segm as bbox
    expect(json.baseline.bbox.statsArray).toEqual(exp.bbox.stats);
    expect(json.baseline.bbox.differenceArray[0]).toBe(exp.extra_runs[0].stats[0] - exp.bbox.stats[0]);
    // Named fields: the 12 stats in pycocotools order, per-category rows with names.
    expect(Object.keys(json.segm.stats)).toEqual(['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl']);
    expect(Object.values(json.segm.stats)).toEqual(exp.segm.stats);
    expect(json.baseline.bbox.difference.AP).toBe(exp.extra_runs[0].stats[0] - exp.bbox.stats[0]);
    for (const row of json.segm.perCategory) {
      expect(row.AP).toBe(exp.segm.per_category_ap[String(row.id)]);
      expect(row.name).toBe(`class_${row.id}`);
      expect(Object.keys(row)).toEqual(['id', 'name', 'AP', 'AP50', 'AP75']);
    }
    expect(lines.some((l) => l.includes('baseline') && l.includes('diff'))).toBe(true);
    expect(lines).toHaveLength(2 * (3 + 13) + 1);
  });

  it('exits 2 with one line and no stack for results naming images absent from the GT', () => {
    const bad = write('bad_image.json', JSON.stringify(withResult(0, { image_id: 123456789 })));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'eval', '--gt', GT, '--results', bad], {
      cwd: join(import.meta.dirname, '..'),
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^fasternet: .*image_id 123456789 is not in the GT/);
    expect(r.stderr).not.toMatch(/\bat /);
  });

  it('prints the 12 pycocotools lines for one results file', async () => {
    const lines: string[] = [];
    await runEval({ gt: GT, results: DT_BBOX, iouType: 'bbox' }, (l) => lines.push(l));
    const exp = JSON.parse(readFileSync(join(ROOT, 'case_small_b', 'expected.json'), 'utf8'));
    expect(lines.slice(1)).toEqual(exp.bbox.summary);
  });
});
