// PR curves and COCO's error analysis (analyze()) against pycocotools: the curves are means of the
// evaluator's own precision array, the C75..FN breakdown matches the Python reference of analyze()
// on pycocotools (scripts/fixtures/make_analyze_fixtures.py, test/fixtures/coco/analyze/README.md).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeErrors, analyzeErrorsThreads, errorCurves, ERROR_TYPES } from '../eval/analyze.ts';
import { cocoEval } from '../eval/cocoeval.ts';
import { prCurve } from '../eval/curves.ts';
import { loadGt, loadRes, type IouType } from '../eval/index.ts';
import { defaultParams } from '../eval/params.ts';

const SHARED = join(import.meta.dirname, 'fixtures', 'coco');
const REF = join(import.meta.dirname, 'fixtures', 'coco', 'analyze');

interface RefRun {
  results: string;
  stats: number[];
  pr: Record<'iou50' | 'iou75' | 'iou50_95', Array<number[] | null>>;
  analyze: { overall: number[][][]; ap: Record<string, number[][]>; categories: Record<string, number[][][]> };
}
type Ref = { gt: string } & Partial<Record<IouType, RefRun>>;

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe.each(['val2014_100', 'case_small_a', 'case_small_b'])('fixture %s', (name) => {
  const ref = JSON.parse(readFileSync(join(REF, `${name}.json`), 'utf8')) as Ref;
  describe.each(['bbox', 'segm'] as const)('%s', (iouType) => {
    const run = ref[iouType]!;
    const gt = loadGt(join(SHARED, ref.gt), { iouTypes: [iouType] });
    const dt = loadRes(gt, join(SHARED, run.results), { iouTypes: [iouType] });

    it('PR curves are means of the evaluator precision array and match pycocotools', () => {
      const p = defaultParams();
      const out = cocoEval(gt, dt, iouType, p);
      for (let i = 0; i < 12; i++) expect(Math.abs(out.stats[i] - run.stats[i])).toBeLessThanOrEqual(1e-12);
      const [T, R, K, A, M] = out.precision.shape;
      for (const [key, iou] of [['iou50', 0.5], ['iou75', 0.75], ['iou50_95', 'mean']] as const) {
        p.areaRngLbl.forEach((area, a) => {
          const c = prCurve(out.precision, out.params, iou, area);
          const want = run.pr[key][a];
          if (want === null) {
            expect(c.precision).toBeNull();
            return;
          }
          expect(maxAbsDiff(c.precision!, want)).toBeLessThanOrEqual(1e-12);
          // Exactly the evaluator's numbers: the IoU .5 curve of each category is its precision column.
          if (key === 'iou50') {
            for (let k = 0; k < K; k++) {
              const col = Array.from({ length: R }, (_, r) => out.precision.data[((r * K + k) * A + a) * M + M - 1]);
              const one = prCurve(out.precision, out.params, 0.5, area, [k]);
              expect(one.precision ?? col.map(() => -1)).toEqual(col);
            }
          }
        });
      }
      expect(T).toBe(10);
    });

    it('analyze() breakdown C75..FN within 1e-9 of the reference', () => {
      const an = analyzeErrors(gt, dt, iouType);
      const [E, R, K, A] = an.ps.shape;
      expect(E).toBe(ERROR_TYPES.length);
      const overall = errorCurves(an);
      let worst = 0;
      for (let e = 0; e < E; e++) for (let a = 0; a < A; a++) worst = Math.max(worst, maxAbsDiff(overall[e][a], run.analyze.overall[e][a]));
      expect(worst).toBeLessThanOrEqual(1e-9);
      // Per category: the area under each curve, and the full curves of a few categories.
      an.categoryIds.forEach((id, k) => {
        const curves = errorCurves(an, [k]);
        const aps = curves.map((perArea) => perArea.map((c) => c.reduce((s, v) => s + v, 0) / R));
        for (let e = 0; e < E; e++) expect(maxAbsDiff(aps[e], run.analyze.ap[String(id)][e]), `category ${id} ${ERROR_TYPES[e]}`).toBeLessThanOrEqual(1e-9);
        const full = run.analyze.categories[String(id)];
        if (full) for (let e = 0; e < E; e++) for (let a = 0; a < A; a++) expect(maxAbsDiff(curves[e][a], full[e][a])).toBeLessThanOrEqual(1e-9);
      });
      expect(Object.keys(run.analyze.categories).length).toBeGreaterThan(0);
      expect(K).toBe(an.categoryIds.length);
      // The breakdown is not trivial on these fixtures: Sim, Oth and BG each add something somewhere.
      const gain = (e: number) => Math.max(...overall[e][0].map((v, r) => v - overall[e - 1][0][r]));
      expect(gain(2)).toBeGreaterThan(0);
      expect(gain(4) + gain(5)).toBeGreaterThan(0);
    }, 60_000);
  });
});

describe('analyze() without supercategories', () => {
  it('treats each category as its own supercategory: Sim equals Loc, Oth still forgives confusions', () => {
    const ref = JSON.parse(readFileSync(join(SHARED, 'case_small_a', 'gt.json'), 'utf8'));
    for (const c of ref.categories) delete c.supercategory;
    const gt = loadGt(ref, { iouTypes: ['bbox'] });
    expect(gt.categorySupercategories.every((s) => s === undefined)).toBe(true);
    const an = analyzeErrors(gt, loadRes(gt, join(SHARED, 'case_small_a', 'dt_bbox.json')), 'bbox');
    const [, R, K, A] = an.ps.shape;
    const row = (e: number) => an.ps.data.subarray(e * R * K * A, (e + 1) * R * K * A);
    expect(Array.from(row(3))).toEqual(Array.from(row(2)));
    // With the one shared supercategory of the file, Sim is Oth instead.
    const withSup = analyzeErrors(loadGt(join(SHARED, 'case_small_a', 'gt.json')), loadRes(gt, join(SHARED, 'case_small_a', 'dt_bbox.json')), 'bbox');
    const row2 = (e: number) => withSup.ps.data.subarray(e * R * K * A, (e + 1) * R * K * A);
    expect(Array.from(row2(3))).toEqual(Array.from(row2(4)));
    expect(Array.from(row(4))).toEqual(Array.from(row2(4)));
    expect(Array.from(row(3))).not.toEqual(Array.from(row(4)));
  });
});

describe('analyze() over worker threads', () => {
  it('gives the same numbers as one thread (val2014_100 segm, categories split in 3)', async () => {
    const gt = loadGt(join(SHARED, 'instances_val2014_100.json'), { iouTypes: ['segm'] });
    const dt = loadRes(gt, join(SHARED, 'instances_val2014_fakesegm100_results.json'), { iouTypes: ['segm'] });
    const one = analyzeErrors(gt, dt, 'segm');
    const three = await analyzeErrorsThreads(gt, dt, 'segm', defaultParams(), 3);
    expect(three.ps.shape).toEqual(one.ps.shape);
    expect(Array.from(three.ps.data)).toEqual(Array.from(one.ps.data));
  }, 60_000);
});
