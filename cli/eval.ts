/**
 * `fasternet eval`: COCO evaluation with pycocotools' exact numbers.
 *
 *   fasternet eval --gt GT.json --results DT.json --iou-type bbox|segm|bbox,segm [--json OUT.json]
 *                  [--baseline DT2.json] [--per-category]
 *   fasternet eval --gt GT.json --images DIR --model M.onnx [--baseline-model B.onnx | --baseline B.json]
 *                  [--out results.json] [--limit N] [--resume]      (bbox,segm by default; api/run_model.ts)
 *
 * Where the detections come from is resolved in `resultsSource`: today a results file; running a model
 * over an image folder (--images DIR --model M.onnx) plugs in there and feeds the same evaluation.
 */
import type { Command } from 'commander';
import { comparisonLines, statDifferences } from '../eval/compare.ts';
import { evaluateAllAsync, loadGt, parseIouTypes, readJsonFile, type CocoDataset, type EvalResult, type IouType, type ResultsInput } from '../eval/index.ts';
import { imageProgress } from './progress.ts';
import { defaultOutPath, runModelOverImages, selectImages, type Latency } from '../api/run_model.ts';
import { UserError } from '../core/errors.ts';
import { MAX_THREADS, parseThreads, positiveInt } from '../core/options.ts';
import { checkWritable, writeFileAtomicSync } from '../core/fs.ts';

export interface EvalCliOptions {
  gt: string;
  results?: string;
  /** Default: bbox, or bbox,segm with --model. */
  iouType?: string;
  baseline?: string;
  images?: string;
  model?: string;
  baselineModel?: string;
  out?: string;
  limit?: string;
  resume?: boolean;
  scoreThr?: string;
  detectThreads?: string;
  /** Progress on this stream instead of stderr (tests). */
  progressStream?: NodeJS.WriteStream;
  /** Checked between images; true stops the model run like SIGINT (tests). */
  shouldStop?: () => boolean;
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
  baseline?: { results: string; bbox?: EvalRunJson; segm?: EvalRunJson; latency_ms?: number };
  /** Mean wall ms per image of a --model run (warm-up image left out). */
  latency_ms?: number;
}

interface Source {
  input: ResultsInput;
  name: string;
  /** The GT restricted to the images run (--limit). */
  gt?: CocoDataset;
  latency?: Latency;
}

/** Runs `model` over --images with a progress bar; SIGINT stops after the current image, resumable. */
async function modelSource(opts: EvalCliOptions, model: string, out: string, dataset: CocoDataset): Promise<Source> {
  if (!opts.images) throw new UserError('--model needs --images DIR (the folder of the GT\'s file_name entries)');
  const scoreThreshold = opts.scoreThr === undefined ? undefined : Number(opts.scoreThr);
  if (scoreThreshold !== undefined && !(scoreThreshold >= 0 && scoreThreshold <= 1)) throw new UserError(`--score-thr must be a number in [0, 1], got ${opts.scoreThr}`);
  const progress = imageProgress(model, opts.progressStream);
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nstopping after the current image (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    const r = await runModelOverImages({
      gt: opts.gt, images: opts.images, model, out, resume: opts.resume, scoreThreshold,
      limit: positiveInt('--limit', opts.limit), threads: positiveInt('--detect-threads', opts.detectThreads, MAX_THREADS),
      onProgress: (d, t, s) => progress.update(d, t, s),
      shouldStop: () => interrupted || (opts.shouldStop?.() ?? false),
      onError: (_file, message) => process.stderr.write(`fasternet eval: ${message}\n`),
    }, dataset);
    progress.stop();
    if (r.failed > 0) {
      // Exit 1 ("some inputs failed"); the failed images count as images without detections.
      process.stderr.write(`fasternet eval: ${r.failed} of ${r.total} images failed; they are evaluated as images without detections\n`);
      process.exitCode = 1;
    }
    if (!r.complete) {
      throw new UserError(`interrupted after ${r.done}/${r.total} images; rerun the same command with --resume to continue (${r.streamPath} keeps the finished ones)`);
    }
    return { input: out, name: out, gt: selectImages(dataset, positiveInt('--limit', opts.limit)).dataset, latency: r.latency };
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
  }
}

/** The detections to evaluate, and a name for them in reports. */
async function resultsSource(opts: EvalCliOptions): Promise<Source> {
  if (opts.model && opts.results) throw new UserError('give either --results or --model, not both');
  if (opts.model) {
    const dataset = readJsonFile(opts.gt, 'GT annotations') as CocoDataset;
    return modelSource(opts, opts.model, opts.out ?? defaultOutPath(opts.model), dataset);
  }
  if (opts.results) return { input: opts.results, name: opts.results };
  throw new UserError('eval needs --results DT.json (a COCO results file) or --images DIR --model M.onnx');
}

/** --baseline-model's run: same images, its own results file and stream. */
async function baselineSource(opts: EvalCliOptions, gt: CocoDataset | undefined): Promise<Source | undefined> {
  if (opts.baselineModel && opts.baseline) throw new UserError('give either --baseline or --baseline-model, not both');
  if (opts.baseline) return { input: opts.baseline, name: opts.baseline };
  if (!opts.baselineModel) return undefined;
  if (!opts.model) throw new UserError('--baseline-model needs --model');
  let out = defaultOutPath(opts.baselineModel);
  if (opts.out) out = opts.out.replace(/(\.json)?$/i, '.baseline.json');
  return modelSource(opts, opts.baselineModel, out, gt ?? (readJsonFile(opts.gt, 'GT annotations') as CocoDataset));
}

function latencyLine(name: string, l: Latency): string {
  return `  ${name}: ${Number.isFinite(l.meanMs) ? l.meanMs.toFixed(1) : 'n/a'} ms/image (mean over ${l.images} images, warm-up image left out)`;
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

/** Runs the command: prints the report through `print` and returns what --json writes. */
export async function runEval(opts: EvalCliOptions, print: (line: string) => void = console.log): Promise<EvalJson> {
  const types = parseIouTypes(opts.iouType ?? (opts.model ? 'bbox,segm' : 'bbox'));
  const threads = parseThreads(opts.threads);
  if (opts.json) checkWritable(opts.json, '--json');
  const source = await resultsSource(opts);
  const baseSource = await baselineSource(opts, source.gt);
  const gt = loadGt(source.gt ?? opts.gt, { iouTypes: types });
  const main = await evaluateAllAsync(gt, source.input, types, { threads });
  const base = baseSource ? await evaluateAllAsync(gt, baseSource.input, types, { threads }) : undefined;
  const json: EvalJson = { results: source.name };
  const baseJson: NonNullable<EvalJson['baseline']> = { results: baseSource?.name ?? '' };
  const names: [string, string] = opts.model ? ['model', 'baseline'] : ['results', 'baseline'];

  types.forEach((t: IouType, i) => {
    const r = main[t]!;
    if (i > 0) print('');
    const what = `${r.numDetections} detections, ${gt.imageIds.length} images, ${r.numGt} GT objects`;
    print(`Evaluate annotation type *${t}* (${what})`);
    json[t] = runJson(r);
    if (base) {
      const b = base[t]!;
      print(`  results:  ${source.name}`);
      print(`  baseline: ${baseSource!.name} (${b.numDetections} detections)`);
      for (const line of comparisonLines(r, b, names)) print(line);
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

  if (source.latency) {
    print('');
    print('Latency per image:');
    print(latencyLine('model   ', source.latency));
    json.latency_ms = source.latency.meanMs;
    if (baseSource?.latency) {
      print(latencyLine('baseline', baseSource.latency));
      baseJson.latency_ms = baseSource.latency.meanMs;
    }
  }
  if (base) json.baseline = baseJson;
  if (opts.json) writeFileAtomicSync(opts.json, `${JSON.stringify(json, null, 1)}\n`);
  return json;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('COCO evaluation of detection results, same numbers as pycocotools COCOeval')
    .requiredOption('--gt <file>', 'COCO instances annotations (JSON)')
    .option('--results <file>', 'detections in the COCO results format (JSON array)')
    .option('--iou-type <types>', 'bbox, segm, or both as bbox,segm (default bbox; bbox,segm with --model)')
    .option('--baseline <file>', 'a second results file (e.g. the ResNet50 baseline) shown side by side')
    .option('--json <file>', 'write stats, per-category AP and summary lines as JSON')
    .option('--per-category', 'also print AP@[.5:.95] per category')
    .option('--threads <n>', 'worker threads splitting the categories, or auto (one per core for large inputs)', '1')
    .option('--images <dir>', 'image folder of the GT\'s file_name entries (with --model)')
    .option('--model <file>', 'run this detector (fasternet convert --flavor torchvision|mmdet) over --images and evaluate it')
    .option('--baseline-model <file>', 'also run this detector on the same images and show it side by side')
    .option('--out <file>', 'with --model: the COCO results file to write (default <model>_results.json); streamed to <out>l')
    .option('--limit <n>', 'with --model: only the first N images by id')
    .option('--resume', 'with --model: continue an interrupted run from its <out>l stream')
    .option('--score-thr <t>', 'with --model: minimum detection score (default: the model\'s 0.05)')
    .option('--detect-threads <n>', 'with --model: ONNX Runtime intra-op threads (default 2)')
    .action(async (opts: EvalCliOptions) => {
      await runEval(opts);
    });
}
