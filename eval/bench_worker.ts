/**
 * Runs one evaluation in a fresh process for the benchmark, so that its time and peak RSS are those of
 * `fasternet eval` alone: reads and parses the files, evaluates, and prints one JSON line.
 * Usage: node --import tsx eval/bench_worker.ts GT.json DT.json bbox|segm
 */
import { evaluate } from './index.ts';
import type { IouType } from './params.ts';

const [gt, results, iouType] = process.argv.slice(2);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const r = evaluate(gt, results, { iouType: iouType as IouType });
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    maxRssKb: process.resourceUsage().maxRSS,
    stats: r.stats,
    perCategoryAp: r.perCategoryAp,
    numDetections: r.numDetections,
    numGt: r.numGt,
  })}\n`,
);
