// COCO evaluator vs pycocotools 2.0.11: every run of every fixture case, 12 stats and per-category AP within
// 1e-12 and the printed summary lines identical (see test/fixtures/coco/README.md for the rules pinned down).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluate, evaluateAll, loadGt, loadRes, cocoEval, type IouType } from '../eval/index.ts';

const ROOT = join(import.meta.dirname, 'fixtures', 'coco');

interface Run {
  iou_type: IouType;
  gt: string;
  results: string;
  stats: number[];
  per_category_ap: Record<string, number>;
  summary: string[];
}

interface Expected {
  case: string;
  bbox: Run;
  segm: Run;
  extra_runs?: Run[];
}

function casesIn(dir: string): Array<{ dir: string; exp: Expected }> {
  return [{ dir, exp: JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected }];
}

const CASES = [
  ...casesIn(ROOT),
  ...casesIn(join(ROOT, 'case_small_a')),
  ...casesIn(join(ROOT, 'case_small_b')),
  ...readdirSync(join(ROOT, 'generated'))
    .filter((d) => statSync(join(ROOT, 'generated', d)).isDirectory())
    .flatMap((d) => casesIn(join(ROOT, 'generated', d))),
];

function expectRun(run: Run, got: ReturnType<typeof evaluate>): void {
  expect(got.stats).toHaveLength(12);
  for (let i = 0; i < 12; i++) expect(Math.abs(got.stats[i] - run.stats[i]), `stat ${i}`).toBeLessThanOrEqual(1e-12);
  expect(Object.keys(got.perCategoryAp).sort()).toEqual(Object.keys(run.per_category_ap).sort());
  for (const [id, ap] of Object.entries(run.per_category_ap)) {
    expect(Math.abs(got.perCategoryAp[id] - ap), `category ${id}`).toBeLessThanOrEqual(1e-12);
  }
  expect(got.summary).toEqual(run.summary);
}

describe('COCOeval parity with pycocotools', () => {
  for (const { dir, exp } of CASES) {
    const runs = [exp.bbox, exp.segm, ...(exp.extra_runs ?? [])];
    for (const run of runs) {
      it(`${exp.case}: ${run.results} as ${run.iou_type}`, () => {
        expectRun(run, evaluate(join(dir, run.gt), join(dir, run.results), { iouType: run.iou_type }));
      });
    }
  }

  it('takes parsed objects as well as paths, and a GT loaded once for both iou types', () => {
    const exp = CASES[1].exp; // case_small_a
    const dir = CASES[1].dir;
    const gtJson = JSON.parse(readFileSync(join(dir, 'gt.json'), 'utf8'));
    const dtJson = JSON.parse(readFileSync(join(dir, 'dt_segm.json'), 'utf8'));
    const both = evaluateAll(loadGt(gtJson, { iouTypes: ['bbox', 'segm'] }), dtJson, ['bbox', 'segm']);
    expectRun(exp.segm, both.segm!);
    // case_small_a's mask results carry boxes: evaluated as bbox they must equal a bbox-only evaluation
    // of the same boxes.
    const boxes = dtJson.map((d: Record<string, unknown>) => ({ ...d, segmentation: undefined }));
    expect(both.bbox!.stats).toEqual(evaluate(gtJson, boxes, { iouType: 'bbox' }).stats);
  });

  it('returns precision [T,R,K,A,M] and recall [T,K,A,M] with -1 for categories without GT', () => {
    const dir = CASES[0].dir;
    const gt = loadGt(join(dir, 'instances_val2014_100.json'));
    const dt = loadRes(gt, join(dir, 'instances_val2014_fakebbox100_results.json'));
    const out = cocoEval(gt, dt, 'bbox');
    expect(out.precision.shape).toEqual([10, 101, 80, 4, 3]);
    expect(out.recall.shape).toEqual([10, 80, 4, 3]);
    const k = Array.from(gt.categoryIds).indexOf(11); // no GT in these 100 images
    expect(out.perCategoryAp[k]).toBe(-1);
    expect(out.recall.data[((0 * 80 + k) * 4 + 0) * 3 + 2]).toBe(-1);
    const person = Array.from(gt.categoryIds).indexOf(1);
    expect(out.recall.data[((0 * 80 + person) * 4 + 0) * 3 + 2]).toBeGreaterThan(0);
  });

  it('scores an empty results list as zero AP instead of failing (pycocotools raises IndexError)', () => {
    const r = evaluate(join(ROOT, 'case_small_b', 'gt.json'), [], { iouType: 'bbox' });
    expect(r.stats[0]).toBe(0);
    expect(r.numDetections).toBe(0);
  });
});
