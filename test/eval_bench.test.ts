// `fasternet bench eval` end to end on a tiny case without pycocotools: the generated files evaluate, the
// worker process reports the same stats as an in-process evaluation, and a second run reuses the case.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBenchEval } from '../bench/eval.ts';
import { evaluate } from '../eval/index.ts';

describe('bench eval', () => {
  it('times a generated case and reports the stats the library computes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fasternet-bench-test-'));
    const opts = { images: 12, categories: 5, gtPerImage: 4, detsPerImage: 20, crowdRatio: 0.1, seed: 3, iouTypes: ['bbox', 'segm'] as const };
    const log: string[] = [];
    const rows = runBenchEval({ ...opts, iouTypes: [...opts.iouTypes], dir, pycocotools: false }, (l) => log.push(l));
    expect(rows.map((r) => r.iouType)).toEqual(['bbox', 'segm']);
    for (const r of rows) {
      const lib = evaluate(join(dir, 'gt.json'), join(dir, `dt_${r.iouType}.json`), { iouType: r.iouType });
      expect(r.ours.stats).toEqual(lib.stats);
      expect(r.ours.stats[0]).toBeGreaterThan(0);
      expect(r.ours.maxRssKb).toBeGreaterThan(0);
    }
    const meta = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8'));
    expect(meta.numDets).toBe(12 * 20);
    const again: string[] = [];
    runBenchEval({ ...opts, iouTypes: ['bbox'], dir, pycocotools: false }, (l) => again.push(l));
    expect(again[0]).toMatch(/reusing/);
  });
});
