/**
 * `fasternet eval`: COCO evaluation with pycocotools' exact numbers.
 *
 *   fasternet eval --gt GT.json --results DT.json --iou-type bbox|segm|bbox,segm [--json OUT.json]
 *                  [--baseline DT2.json] [--per-category] [--report DIR]
 *   fasternet eval --gt GT.json --images DIR --model M.onnx [--baseline-model B.onnx | --baseline B.json]
 *                  [--out results.json] [--limit N] [--resume]      (bbox,segm by default; api/run_model.ts)
 *
 * Where the detections come from is resolved in `resultsSource`: today a results file; running a model
 * over an image folder (--images DIR --model M.onnx) plugs in there and feeds the same evaluation.
 */
import type { Command } from 'commander';
import { comparisonLines, statDifferences } from '../eval/compare.ts';
import {
  evaluateLoadedAsync,
  loadGt,
  loadRes,
  parseIouTypes,
  readJsonFile,
  type CocoDataset,
  type EvalResult,
  type IouType,
  type ResultsInput,
} from '../eval/index.ts';
import { report } from '../eval/report.ts';
import { formatFixed3, STAT_NAMES, type StatName } from '../eval/summary.ts';
import { imageProgress } from './progress.ts';
import { defaultOutPath, runModelOverImages, selectImages, streamPathFor, type Latency } from '../api/run_model.ts';
import { checkStreamFree } from '../core/stream.ts';
import { InterruptedError, UserError } from '../core/errors.ts';
import { MAX_THREADS, parseShard, parseThreads, positiveInt } from '../core/options.ts';
import { mergeResultFiles } from '../eval/merge.ts';
import { STDOUT, checkOutputFile, writeOutput } from '../core/output.ts';

export interface EvalCliOptions {
  gt: string;
  /** One results file, or a sharded run's files (merged: eval/merge.ts). */
  results?: string | string[];
  /** Default: bbox, or bbox,segm with --model. */
  iouType?: string;
  baseline?: string;
  images?: string;
  model?: string;
  baselineModel?: string;
  out?: string;
  limit?: string;
  /** With --model: "I/N" (I may be auto), only that shard of the images. */
  shard?: string;
  resume?: boolean;
  scoreThr?: string;
  detectThreads?: string;
  /** Progress on this stream instead of stderr (tests). */
  progressStream?: NodeJS.WriteStream;
  /** Checked between images; true stops the model run like SIGINT (tests). */
  shouldStop?: () => boolean;
  json?: string;
  perCategory?: boolean;
  /** Write an HTML report (index.html, plots as SVG and PNG, gallery) into this folder. */
  report?: string;
  /** Gallery images in the report (default 24). */
  reportGallery?: string;
  /** The command line shown in the report (set by the CLI). */
  commandLine?: string;
  /** No progress bar. */
  quiet?: boolean;
  /** Worker threads splitting the categories: a count or 'auto' (default 1). */
  threads?: string;
}

/**
 * One evaluated iou type in OUT.json: the 12 stats by name (as the library's `statsByName`) and as the
 * unnamed pycocotools list, per-category rows with names; `per_category_ap` and `summary` as in the
 * pycocotools fixtures.
 */
export interface EvalRunJson {
  stats: Record<StatName, number>;
  statsArray: number[];
  perCategory: Array<{ id: number; name: string; AP: number; AP50: number; AP75: number }>;
  per_category_ap: Record<string, number>;
  summary: string[];
  num_detections: number;
  /** Only in the baseline section: results minus baseline per stat (null where either is -1), by name and as a list. */
  difference?: Record<StatName, number | null>;
  differenceArray?: Array<number | null>;
}

/** OUT.json: `{"bbox": {...}, "segm": {...}, "results": path, "baseline"?: {"results": path, "bbox": {...}}}`. */
export interface EvalJson {
  results: string;
  bbox?: EvalRunJson;
  segm?: EvalRunJson;
  baseline?: { results: string; bbox?: EvalRunJson; segm?: EvalRunJson; latency_ms?: number };
  /** Mean wall ms per image of a --model run (warm-up image left out). */
  latency_ms?: number;
  /** The report's index.html, with --report. */
  report?: string;
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
  const progress = opts.quiet ? { update: () => undefined, stop: () => undefined } : imageProgress(model, opts.progressStream);
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
      limit: positiveInt('--limit', opts.limit), shard: parseShard(opts.shard), threads: positiveInt('--detect-threads', opts.detectThreads, MAX_THREADS),
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
      throw new InterruptedError(`interrupted after ${r.done}/${r.total} images; rerun the same command with --resume to continue (${r.streamPath} keeps the finished ones)`);
    }
    return { input: out, name: out, gt: selectImages(dataset, positiveInt('--limit', opts.limit), parseShard(opts.shard)).dataset, latency: r.latency };
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
  }
}

/** Shards' results merged (overlaps refused); GT images in none of them are reported on stderr. */
function mergedSource(opts: EvalCliOptions, files: string[]): Source {
  const dataset = readJsonFile(opts.gt, 'GT annotations') as CocoDataset;
  if (!Array.isArray(dataset?.images)) throw new UserError(`--gt ${opts.gt} has no "images" list`);
  const { results, missing } = mergeResultFiles(files, dataset.images.map((im) => im.id));
  if (missing.length) {
    process.stderr.write(`fasternet eval: ${missing.length} of ${dataset.images.length} GT images have no entry in any --results file (ids ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}): a shard not run, or images without detections\n`);
  }
  if (opts.out) writeOutput('--out', opts.out, `${JSON.stringify(results)}\n`);
  return { input: results, name: `${files.length} merged results files`, gt: dataset };
}

/** The detections to evaluate, and a name for them in reports. */
async function resultsSource(opts: EvalCliOptions): Promise<Source> {
  if (opts.model && opts.results) throw new UserError('give either --results or --model, not both');
  if (opts.model) {
    const dataset = readJsonFile(opts.gt, 'GT annotations') as CocoDataset;
    return modelSource(opts, opts.model, modelOutPath(opts, opts.model), dataset);
  }
  if (Array.isArray(opts.results) && opts.results.length === 1) return { input: opts.results[0], name: opts.results[0] };
  if (Array.isArray(opts.results)) return mergedSource(opts, opts.results);
  if (opts.results) return { input: opts.results, name: opts.results };
  throw new UserError('eval needs --results DT.json (a COCO results file) or --images DIR --model M.onnx');
}

/** Where --model's results go: --out, else the model's default. */
function modelOutPath(opts: EvalCliOptions, model: string): string {
  return opts.out ?? defaultOutPath(model);
}

/** Where --baseline-model's results go: next to --out's (`X.baseline.json`), else its own default. */
function baselineOutPath(opts: EvalCliOptions, baselineModel: string): string {
  return opts.out ? opts.out.replace(/(\.json)?$/i, '.baseline.json') : defaultOutPath(baselineModel);
}

/** --baseline-model's run: same images, its own results file and stream. */
async function baselineSource(opts: EvalCliOptions, gt: CocoDataset | undefined): Promise<Source | undefined> {
  if (opts.baselineModel && opts.baseline) throw new UserError('give either --baseline or --baseline-model, not both');
  if (opts.baseline) return { input: opts.baseline, name: opts.baseline };
  if (!opts.baselineModel) return undefined;
  if (!opts.model) throw new UserError('--baseline-model needs --model');
  return modelSource(opts, opts.baselineModel, baselineOutPath(opts, opts.baselineModel), gt ?? (readJsonFile(opts.gt, 'GT annotations') as CocoDataset));
}

function latencyLine(name: string, l: Latency): string {
  return `  ${name}: ${Number.isFinite(l.meanMs) ? l.meanMs.toFixed(1) : 'n/a'} ms/image (mean over ${l.images} images, warm-up image left out)`;
}

function runJson(r: EvalResult): EvalRunJson {
  return {
    stats: r.statsByName,
    statsArray: r.stats,
    perCategory: r.perCategory.map(({ id, name, AP, AP50, AP75 }) => ({ id, name, AP, AP50, AP75 })),
    per_category_ap: r.perCategoryAp,
    summary: r.summary,
    num_detections: r.numDetections,
  };
}

const fmt = (v: number): string => (v === -1 ? '    -' : formatFixed3(v).padStart(5));

/** id, name, AP, AP50, AP75 of the results, and with a baseline its three and the AP difference. */
export function perCategoryLines(r: EvalResult, b?: EvalResult, names: [string, string] = ['results', 'baseline']): string[] {
  const width = Math.max(8, ...r.categoryNames.map((n) => n.length));
  const group = (name: string) => `${name.slice(0, 17).padEnd(17)}`;
  const head =
    `  ${'id'.padStart(4)}  ${'category'.padEnd(width)}  ${group(names[0])}` + (b ? `  ${group(names[1])}  ${'AP diff'}` : '');
  const sub = `  ${''.padStart(4)}  ${''.padEnd(width)}  ${'   AP  AP50  AP75'}` + (b ? `  ${'   AP  AP50  AP75'}` : '');
  const lines = r.perCategory.map((c, k) => {
    let line = `  ${String(c.id).padStart(4)}  ${c.name.padEnd(width)}  ${fmt(c.AP)} ${fmt(c.AP50)} ${fmt(c.AP75)}`;
    if (b) {
      const o = b.perCategory[k];
      const d = c.AP === -1 || o.AP === -1 ? '      -' : `${c.AP - o.AP < 0 ? '-' : '+'}${formatFixed3(Math.abs(c.AP - o.AP))}`.padStart(7);
      line += `  ${fmt(o.AP)} ${fmt(o.AP50)} ${fmt(o.AP75)}  ${d}`;
    }
    return line;
  });
  return [head, sub, ...lines];
}

/** Runs the command: prints the report through `print` and returns what --json writes. */
export async function runEval(opts: EvalCliOptions, print: (line: string) => void = console.log): Promise<EvalJson> {
  const types = parseIouTypes(opts.iouType ?? (opts.model ? 'bbox,segm' : 'bbox'));
  const threads = parseThreads(opts.threads);
  checkOutputFile('--json', opts.json);
  // Both models' streams are checked before the first one runs: the baseline's would otherwise be refused
  // only after the whole model run.
  if (opts.model && !opts.results) {
    checkStreamFree(streamPathFor(modelOutPath(opts, opts.model)), opts.resume);
    if (opts.baselineModel && !opts.baseline) {
      checkStreamFree(streamPathFor(baselineOutPath(opts, opts.baselineModel)), opts.resume);
    }
  }
  const source = await resultsSource(opts);
  const baseSource = await baselineSource(opts, source.gt);
  // The report's gallery needs the GT's file names and outlines: parse the file once, here.
  const dataset = source.gt ?? (opts.report ? (readJsonFile(opts.gt, 'GT annotations') as CocoDataset) : undefined);
  const gt = loadGt(dataset ?? opts.gt, { iouTypes: types, name: opts.gt });
  const dt = loadRes(gt, source.input, { iouTypes: types });
  const main = await evaluateLoadedAsync(gt, dt, types, { threads });
  const baseDt = baseSource ? loadRes(gt, baseSource.input, { iouTypes: types }) : undefined;
  const base = baseDt ? await evaluateLoadedAsync(gt, baseDt, types, { threads }) : undefined;
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
      const diff = statDifferences(r.stats, b.stats).map((d) => (Number.isNaN(d) ? null : d));
      baseJson[t] = {
        ...runJson(b),
        difference: Object.fromEntries(STAT_NAMES.map((n, i) => [n, diff[i]])) as Record<StatName, number | null>,
        differenceArray: diff,
      };
    } else {
      for (const line of r.summary) print(line);
    }
    if (opts.perCategory) {
      print(`Per-category AP (${t}; AP@[.5:.95], AP@.5, AP@.75; area all, maxDets 100):`);
      for (const line of perCategoryLines(r, base?.[t], names)) print(line);
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
  if (opts.report) {
    const t0 = performance.now();
    const out = await report(opts.report, {
      gt,
      dataset,
      gtName: opts.gt,
      imagesDir: opts.images,
      model: { name: opts.model ?? source.name, results: main, detections: dt, latencyMs: source.latency?.meanMs },
      ...(base ? { baseline: { name: opts.baselineModel ?? baseSource!.name, results: base, detections: baseDt, latencyMs: baseSource!.latency?.meanMs } } : {}),
      galleryMax: opts.reportGallery === undefined ? undefined : positiveInt('--report-gallery', opts.reportGallery),
      title: `${opts.model ? 'Model' : 'Results'} ${opts.model ?? source.name}${base ? ` vs baseline ${opts.baselineModel ?? baseSource!.name}` : ''}`,
      command: opts.commandLine,
    });
    const pictures = out.data.gallery.entries.filter((e) => e.picture).length;
    print('');
    print(`Report: ${out.index} (${((performance.now() - t0) / 1000).toFixed(1)} s; ${out.data.types.reduce((n, t) => n + t.charts.length, 0)} plots, ${pictures} gallery images)`);
    json.report = out.index;
  }
  if (opts.json) writeOutput('--json', opts.json, `${JSON.stringify(json, null, 1)}\n`);
  return json;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('COCO evaluation of detection results, same numbers as pycocotools COCOeval')
    .requiredOption('--gt <file>', 'COCO instances annotations (JSON)')
    .option('--results <files...>', 'detections in the COCO results format (JSON array); several: the shards of one run, merged (overlaps refused)')
    .option('--iou-type <types>', 'bbox, segm, or both as bbox,segm (default bbox; bbox,segm with --model)')
    .option('--baseline <file>', 'a second results file (e.g. the ResNet50 baseline) shown side by side')
    .option('--report <dir>', 'write an HTML report into DIR: stats, PR curves, error analysis, per-category table, gallery (with --images)')
    .option('--report-gallery <n>', 'with --report: at most N gallery images (default 24)')
    .option('--json <file>', 'write stats, per-category AP and summary lines as JSON (- for stdout; the report then goes to stderr)')
    .option('--per-category', 'also print AP, AP50, AP75 per category (model and baseline columns)')
    .option('--threads <n>', 'worker threads splitting the categories, or auto (one per core for large inputs)', '1')
    .option('--images <dir>', 'image folder of the GT\'s file_name entries (with --model)')
    .option('--model <file>', 'run this detector (fasternet convert --flavor torchvision|mmdet) over --images and evaluate it')
    .option('--baseline-model <file>', 'also run this detector on the same images and show it side by side')
    .option('--out <file>', 'with --model: the COCO results file to write (default <model>_results.json), streamed to <out>l; with several --results: the merged file')
    .option('--limit <n>', 'with --model: only the first N images by id')
    .option('--shard <I/N>', 'with --model: only every N-th image by id from the I-th (0-based; I = auto reads JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID); merge with --results A B C')
    .option('--resume', 'with --model: continue an interrupted run from its <out>l stream')
    .option('--score-thr <t>', 'with --model: minimum detection score (default: the model\'s 0.05)')
    .option('--detect-threads <n>', 'with --model: ONNX Runtime intra-op threads (default 2)')
    .option('--quiet', 'no progress bar')
    .action(async (opts: EvalCliOptions) => {
      if (opts.shard !== undefined && !opts.model) throw new UserError('--shard needs --model (it splits the images a model runs on)');
      parseShard(opts.shard);
      checkOutputFile('--json', opts.json);
      checkOutputFile('--out', opts.out);
      if (opts.out === STDOUT) throw new UserError('--out - is not possible: a --model run streams to <out>l as it goes; name a file');
      await runEval({ ...opts, commandLine: `fasternet ${process.argv.slice(2).join(' ')}` }, opts.json === STDOUT ? (line) => process.stderr.write(`${line}\n`) : console.log);
    });
}
