/**
 * `fasternet bench <what>`: the parent of every benchmark. Each benchmark registers its own subcommand from
 * its own module through `benchCommand(program)`, which creates the parent once whatever the order:
 *
 *   export function register(program: Command): void {
 *     benchCommand(program).command('ops').description('...').action(...);
 *   }
 *
 * This module registers `bench eval` (COCO evaluator vs pycocotools).
 */
import type { Command } from 'commander';
import { BENCH_EVAL_DEFAULTS, runBenchEval } from './eval.ts';
import { parseIouTypes } from '../eval/index.ts';
import { UserError } from '../core/errors.ts';
import { parseThreads } from '../core/options.ts';

/** The `bench` parent command, created on first use. */
export function benchCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'bench');
  if (existing) return existing;
  return program.command('bench').description('benchmarks (each subcommand times one part of the toolkit)');
}

function num(v: string, name: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UserError(`${name} must be a number, got "${v}"`);
  return n;
}

interface BenchEvalCliOptions {
  images: string;
  categories: string;
  gtPerImage: string;
  detsPerImage: string;
  crowdRatio: string;
  seed: string;
  iouType: string;
  dir?: string;
  regenerate?: boolean;
  clean?: boolean;
  pycocotools: boolean;
  python?: string;
  threads: string;
}

export function register(program: Command): void {
  const d = BENCH_EVAL_DEFAULTS;
  benchCommand(program)
    .command('eval')
    .description(
      'time the COCO evaluator on a generated COCO-val-sized case, against pycocotools where importable',
    )
    .option('--images <n>', 'images', String(d.images))
    .option('--categories <n>', 'categories (80 uses the COCO ids)', String(d.categories))
    .option('--gt-per-image <n>', 'mean GT objects per image', String(d.gtPerImage))
    .option('--dets-per-image <n>', 'detections per image', String(d.detsPerImage))
    .option('--crowd-ratio <r>', 'fraction of GT objects that are crowd regions', String(d.crowdRatio))
    .option('--seed <n>', 'generator seed', String(d.seed))
    .option('--iou-type <types>', 'bbox, segm or bbox,segm', 'bbox,segm')
    .option('--dir <dir>', 'where to write the case (default: the OS temp dir; reused when it matches)')
    .option('--regenerate', 'write the case again even if a matching one exists')
    .option('--clean', 'delete the case afterwards')
    .option('--no-pycocotools', 'time ours only')
    .option('--python <exe>', 'Python interpreter to try first for pycocotools (also $PYTHON)')
    .option('--threads <n>', 'threads for our evaluation, or auto', '1')
    .action((o: BenchEvalCliOptions) => {
      const rows = runBenchEval({
        images: num(o.images, '--images'),
        categories: num(o.categories, '--categories'),
        gtPerImage: num(o.gtPerImage, '--gt-per-image'),
        detsPerImage: num(o.detsPerImage, '--dets-per-image'),
        crowdRatio: num(o.crowdRatio, '--crowd-ratio'),
        seed: num(o.seed, '--seed'),
        iouTypes: parseIouTypes(o.iouType),
        dir: o.dir,
        regenerate: o.regenerate,
        clean: o.clean,
        pycocotools: o.pycocotools,
        python: o.python,
        threads: parseThreads(o.threads),
      });
      if (rows.some((r) => !r.ok)) {
        process.stderr.write('fasternet: bench eval: our stats differ from pycocotools\n');
        process.exitCode = 1;
      }
    });
}
