// Float details of COCOeval checked against numpy/Python answers captured in
// test/fixtures/coco/generated/numpy_reference.json (made by scripts/fixtures/make_eval_cases.py).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { argsortDesc, orderByCatImg } from '../eval/cocoeval.ts';
import { defaultParams } from '../eval/params.ts';
import { formatFixed3, meanValid, summaryLines } from '../eval/summary.ts';

const REF = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures', 'coco', 'generated', 'numpy_reference.json'), 'utf8'),
) as {
  iouThrs: number[];
  recThrs: number[];
  means: Array<{ n: number; mean: number }>;
  format3: Array<[number, string]>;
  argsort: { scores: number[]; order: number[] };
};

function formulaValues(n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = (((i * 7919) % 10007) / 10007) * (((i * 104729) % 1009) / 1009);
  return a;
}

describe('COCOeval numerics', () => {
  it('thresholds equal numpy linspace bit for bit', () => {
    const p = defaultParams();
    expect(Array.from(p.iouThrs)).toEqual(REF.iouThrs);
    expect(Array.from(p.recThrs)).toEqual(REF.recThrs);
    expect(p.iouThrs[8]).toBe(0.8999999999999999);
  });

  it('means equal np.mean (pairwise sums in 8192-value blocks) bit for bit', () => {
    for (const { n, mean } of REF.means) expect(meanValid(formulaValues(n)), `n=${n}`).toBe(mean);
    expect(meanValid([-1, -1])).toBe(-1);
  });

  it("formats like Python's '{:0.3f}' (ties to even)", () => {
    for (const [v, s] of REF.format3) expect(formatFixed3(v), String(v)).toBe(s);
  });

  it('sorts scores like np.argsort(-s, kind="mergesort"), for short and long lists', () => {
    const s = Float64Array.from(REF.argsort.scores);
    const out = new Int32Array(s.length);
    argsortDesc(s, s.length, out, { sorted: new Float64Array(s.length), fill: new Int32Array(s.length + 1) });
    expect(Array.from(out)).toEqual(REF.argsort.order);
    const short = Float64Array.from(REF.argsort.scores.slice(0, 20));
    const o2 = new Int32Array(20);
    argsortDesc(short, 20, o2, { sorted: new Float64Array(20), fill: new Int32Array(21) });
    const want = Array.from({ length: 20 }, (_, i) => i).sort((a, b) => short[b] - short[a] || a - b);
    expect(Array.from(o2)).toEqual(want);
  });

  it('orders annotations by (category, image) keeping file order', () => {
    const cat = Int32Array.from([1, 0, 1, 0, 1, 0]);
    const img = Int32Array.from([2, 1, 0, 1, 2, 0]);
    const { order, catStart } = orderByCatImg(cat, img, 2, 3);
    expect(Array.from(order)).toEqual([5, 1, 3, 2, 0, 4]);
    expect(Array.from(catStart)).toEqual([0, 3, 6]);
  });

  it('prints -1 stats as pycocotools does', () => {
    const lines = summaryLines(new Array(12).fill(-1), defaultParams());
    expect(lines[0]).toBe(' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = -1.000');
    expect(lines[6]).toBe(' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = -1.000');
  });
});
