/**
 * `fasternet eval`: COCO evaluation with pycocotools' exact numbers.
 *
 *   fasternet eval --gt GT.json --results DT.json --iou-type bbox|segm|bbox,segm [--json OUT.json]
 *                  [--baseline DT2.json] [--per-category]
 *
 * Where the detections come from is resolved in `resultsSource`: today a results file; running a model
 * over an image folder (--images DIR --model M.onnx) plugs in there and feeds the same evaluation.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { comparisonLines, statDifferences } from '../eval/compare.ts';
import { evaluateAllAsync, loadGt, parseIouTypes, type EvalResult, type IouType, type ResultsInput } from '../eval/index.ts';
import { UserError } from './errors.ts';

export interface EvalCliOptions {
  gt: string;
  results?: string;
  iouType: string;
  baseline?: string;
  json?: string;
  perCategory?: boolean;
  /** Worker threads splitting the categories: a count or 'auto' (default 1). */
  threads?: string;
}

/** One evaluated iou type in OUT.json; `per_category_ap` and `summary` as in the pycocotools fixtures. */
export interface EvalRunJson {
  stats: number[];
  per_category_ap: Record<string, number>;
  summary: string[];
  num_detections: number;
  /** Only in the baseline section: results minus baseline per stat (null where either is -1). */
  difference?: Array<number | null>;
}

/** OUT.json: `{"bbox": {...}, "segm": {...}, "results": path, "baseline"?: {"results": path, "bbox": {...}}}`. */
export interface EvalJson {
  results: string;
  bbox?: EvalRunJson;
  segm?: EvalRunJson;
  baseline?: { results: string; bbox?: EvalRunJson; segm?: EvalRunJson };
}

/** The detections to evaluate, and a name for them in reports. */
function resultsSource(opts: EvalCliOptions): { input: ResultsInput; name: string } {
  if (opts.results) return { input: opts.results, name: opts.results };
  throw new UserError('eval needs --results DT.json (a COCO results file)');
}

function runJson(r: EvalResult): EvalRunJson {
  return { stats: r.stats, per_category_ap: r.perCategoryAp, summary: r.summary, num_detections: r.numDetections };
}

function perCategoryLines(r: EvalResult): string[] {
  const width = Math.max(8, ...r.categoryNames.map((n) => n.length));
  return r.categoryIds.map((id, k) => {
    const ap = r.perCategoryAp[String(id)];
    return `  ${String(id).padStart(4)}  ${r.categoryNames[k].padEnd(width)}  ${ap === -1 ? '   -' : ap.toFixed(3)}`;
  });
}

export function parseThreads(v: string | undefined): number | 'auto' {
  if (v === undefined) return 1;
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--threads must be a positive integer or auto, got "${v}"`);
  return n;
}

/** Runs the command: prints the report through `print` and returns what --json writes. */
export async function runEval(opts: EvalCliOptions, print: (line: string) => void = console.log): Promise<EvalJson> {
  const types = parseIouTypes(opts.iouType);
  const threads = parseThreads(opts.threads);
  const source = resultsSource(opts);
  const gt = loadGt(opts.gt, { iouTypes: types });
  const main = await evaluateAllAsync(gt, source.input, types, { threads });
  const base = opts.baseline ? await evaluateAllAsync(gt, opts.baseline, types, { threads }) : undefined;
  const json: EvalJson = { results: source.name };
  const baseJson: NonNullable<EvalJson['baseline']> = { results: opts.baseline ?? '' };

  types.forEach((t: IouType, i) => {
    const r = main[t]!;
    if (i > 0) print('');
    const what = `${r.numDetections} detections, ${gt.imageIds.length} images, ${r.numGt} GT objects`;
    print(`Evaluate annotation type *${t}* (${what})`);
    json[t] = runJson(r);
    if (base) {
      const b = base[t]!;
      print(`  results:  ${source.name}`);
      print(`  baseline: ${opts.baseline} (${b.numDetections} detections)`);
      for (const line of comparisonLines(r, b)) print(line);
      baseJson[t] = {
        ...runJson(b),
        difference: statDifferences(r.stats, b.stats).map((d) => (Number.isNaN(d) ? null : d)),
      };
    } else {
      for (const line of r.summary) print(line);
    }
    if (opts.perCategory) {
      print(`Per-category AP@[.5:.95] (${t})${base ? ', results' : ''}:`);
      for (const line of perCategoryLines(r)) print(line);
    }
  });

  if (base) json.baseline = baseJson;
  if (opts.json) {
    try {
      writeFileSync(opts.json, `${JSON.stringify(json, null, 1)}\n`);
    } catch (err) {
      throw new UserError(`cannot write --json ${opts.json}: ${(err as Error).message}`);
    }
  }
  return json;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('COCO evaluation of detection results, same numbers as pycocotools COCOeval')
    .requiredOption('--gt <file>', 'COCO instances annotations (JSON)')
    .option('--results <file>', 'detections in the COCO results format (JSON array)')
    .option('--iou-type <types>', 'bbox, segm, or both as bbox,segm', 'bbox')
    .option('--baseline <file>', 'a second results file (e.g. the ResNet50 baseline) shown side by side')
    .option('--json <file>', 'write stats, per-category AP and summary lines as JSON')
    .option('--per-category', 'also print AP@[.5:.95] per category')
    .option('--threads <n>', 'worker threads splitting the categories, or auto (one per core for large inputs)', '1')
    .action(async (opts: EvalCliOptions) => {
      await runEval(opts);
    });
}
