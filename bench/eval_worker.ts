/**
 * Runs one evaluation in a fresh process for the benchmark, so that its time and peak RSS are those of
 * `fasternet eval` alone: reads and parses the files, evaluates, and prints one JSON line.
 * Usage: node --import tsx bench/eval_worker.ts GT.json DT.json bbox|segm [THREADS|auto]
 */
import { evaluateAllAsync } from '../eval/index.ts';
import type { IouType } from '../eval/params.ts';

const [gt, results, iouType, threadsArg] = process.argv.slice(2);
const threads = threadsArg === undefined ? 1 : threadsArg === 'auto' ? 'auto' : Number(threadsArg);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const r = (await evaluateAllAsync(gt, results, [iouType as IouType], { threads }))[iouType as IouType]!;
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
