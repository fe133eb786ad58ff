/**
 * `fasternet detect IMAGE|DIR... [--model M.onnx] [--out DIR] [--json OUT.json|-] [--jsonl S.jsonl [--resume]]
 * [--gt ANN.json] [--shard I/N] [--recursive] [--score-thr T] [--classes A,B] [--max-det N] [--quiet]`: Mask R-CNN
 * instance segmentation with a model from `fasternet convert --flavor torchvision|mmdet`, by default the bundled
 * FasterNet-T0 canvases model (api/detect.ts DEFAULT_MODEL_PATH). The JSON is a COCO results list:
 * {"file", "category_id", "bbox": [x, y, w, h], "score", "segmentation": {"size", "counts"}} per instance
 * (category_id: COCO id for COCO models, else the 1-based class index; with --gt, "image_id" instead of
 * "file", so that the list feeds `eval --results`). One --score-thr (default 0.5) decides what is counted on
 * stdout, drawn and written; `fasternet eval --model` keeps the model's 0.05 for COCO AP. `--out DIR` writes
 * each input drawn with its detections (api/annotate.ts) as DIR/<base name>.png (.jpg/.jpeg kept for JPEGs).
 * Folders, shards, the GT mapping and the --jsonl stream are in cli/detect_inputs.ts.
 *
 * Orientation: every image is decoded once with its EXIF orientation applied (as viewers show it) and the
 * model runs on those pixels, so boxes, masks and the JSON are in displayed-image coordinates and the
 * annotated image has the displayed size. (The library's detect() on a path follows the flavor's reference
 * decoding instead: torchvision ignores EXIF, as PIL does; the two differ only for EXIF-rotated files.)
 *
 * A bad input (unreadable, not an image, truncated, over the pixel limit, not in --gt) prints one line naming
 * it on stderr; the other inputs are still processed and the command exits 1 at the end.
 */
import type { Command } from 'commander';
import { mkdir, stat } from 'node:fs/promises';
import { closeSync, writeSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { detectInProcess, resolveModel } from '../api/detect.ts';
import { loadDetector, releaseDetector } from '../heads/mask_rcnn.ts';
import { decodeImage } from '../image/decode.ts';
import { annotate } from '../api/annotate.ts';
import { InterruptedError, UserError, invalidParameterError } from '../core/errors.ts';
import { STDOUT, checkOutputFile, messages, writeOutput } from '../core/output.ts';
import { MAX_THREADS, parseShard, positiveInt, shardOf } from '../core/options.ts';
import { expandInputs, gtImageIds, openDetectStream, type DetectStreamLine } from './detect_inputs.ts';
import { checkWritableFolder, sha256File, writeFileAtomic } from '../core/fs.ts';

/** A COCO results entry: `file` names the input; with --gt it is `image_id` instead, as `eval --results` reads. */
export interface CocoResult {
  file?: string;
  image_id?: number;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
  segmentation: { size: [number, number]; counts: string | number[] };
}

export interface DetectFilesOptions {
  /** Minimum score kept, printed and drawn (default: the model's 0.05). */
  scoreThreshold?: number;
  maxDetections?: number;
  classes?: Array<string | number>;
  threads?: number;
  /** Write annotated images here. */
  outDir?: string;
  /** The GT image id of a file (--gt); throws a UserError for a file not in the GT. */
  imageIdOf?: (file: string) => number;
  /** Entries of files already done (a resumed stream): not run again, returned in their place. */
  done?: Map<string, CocoResult[]>;
  /** Called with each image's entries as soon as it is finished (the --jsonl stream). */
  onResults?: (file: string, results: CocoResult[]) => void;
  /** Checked before each image: true stops the run (Ctrl-C), `complete` is then false. */
  shouldStop?: () => boolean;
  onImage?: (file: string, n: number, annotated?: string) => void;
  /** Called for an input that could not be processed (one line, naming the file). */
  onError?: (file: string, message: string) => void;
}

/** Output file for `file` in `outDir`: same base name; JPEG inputs keep their extension, others become .png. */
export function annotatedName(file: string, outDir: string, taken: Set<string>): { path: string; format: 'png' | 'jpeg' } {
  const ext = extname(file);
  const jpeg = /^\.jpe?g$/i.test(ext);
  const stem = basename(file, ext) || 'image';
  const outExt = jpeg ? ext : '.png';
  let name = `${stem}${outExt}`;
  for (let i = 1; taken.has(name); i++) name = `${stem}_${i}${outExt}`; // same base name from two folders
  taken.add(name);
  return { path: join(outDir, name), format: jpeg ? 'jpeg' : 'png' };
}

async function checkFile(file: string): Promise<void> {
  let s;
  try {
    s = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read image ${file}: ${code === 'ENOENT' ? 'no such file' : code ?? String(err)}`);
  }
  if (s.isDirectory()) throw new UserError(`${file} is a directory, not an image`);
}

/** Runs the model over `files`; bad inputs go to onError (or throw when there is none) and are skipped. */
export async function detectFiles(modelPath: string | undefined, files: string[], o: DetectFilesOptions = {}): Promise<{ results: CocoResult[]; failed: number; complete: boolean }> {
  const out: CocoResult[] = [];
  const taken = new Set<string>();
  let failed = 0;
  let complete = true;
  if (o.outDir) {
    try {
      await mkdir(o.outDir, { recursive: true });
    } catch (err) {
      throw new UserError(`cannot create --out folder ${o.outDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    checkWritableFolder(o.outDir);
  }
  const todo = files.filter((f) => !o.done?.has(f));
  const det = todo.length ? await loadDetector(resolveModel(modelPath), { threads: o.threads }) : undefined;
  try {
    for (const file of files) {
      const earlier = o.done?.get(file);
      if (earlier) {
        out.push(...earlier);
        continue;
      }
      if (o.shouldStop?.()) {
        complete = false;
        break;
      }
      try {
        const imageId = o.imageIdOf?.(file);
        await checkFile(file);
        const img = await decodeImage(file, { autoOrient: true });
        const r = await detectInProcess(img, { model: det!, scoreThreshold: o.scoreThreshold, maxDetections: o.maxDetections, classes: o.classes });
        const entries = r.detections.map((d): CocoResult => ({
          ...(imageId === undefined ? { file } : { image_id: imageId }), category_id: d.categoryId, bbox: d.bbox, score: d.score, segmentation: d.mask,
        }));
        let written: string | undefined;
        if (o.outDir) {
          const { path, format } = annotatedName(file, o.outDir, taken);
          const bytes = await annotate(img, r, { scoreThreshold: o.scoreThreshold ?? 0, format });
          await writeFileAtomic(path, bytes);
          written = path;
        }
        out.push(...entries);
        o.onResults?.(file, entries);
        o.onImage?.(file, r.detections.length, written);
      } catch (err) {
        if (!o.onError) throw err;
        // Any failure of one input (a bad file, or an error inside ONNX Runtime) is that input's alone.
        const msg = err instanceof UserError ? err.message : `failed: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
        failed++;
        o.onError(file, msg.includes(file) ? msg : `${file}: ${msg}`);
      }
    }
  } finally {
    if (det) await releaseDetector(det);
  }
  return { results: out, failed, complete };
}

function number01(name: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1)) throw invalidParameterError(name, 'a number in [0, 1]', v);
  return n;
}

/** `--classes a,b` (names as the model lists them, or numeric labels); '' is refused. */
export function parseClassList(v: string): Array<string | number> {
  const items = v.split(',').map((c) => c.trim());
  if (items.some((c) => c === '')) throw invalidParameterError('--classes', 'comma-separated class names or labels', v);
  return items.map((c) => (/^\d+$/.test(c) ? Number(c) : c));
}

interface DetectCliOptions {
  model?: string; out?: string; json?: string; jsonl?: string; resume?: boolean; gt?: string; shard?: string; recursive?: boolean;
  scoreThr: string; classes?: string; maxDet?: string; threads: string; quiet?: boolean;
}

export function register(program: Command): void {
  program.command('detect')
    .description('Mask R-CNN instance segmentation (default model: the bundled FasterNet-T0 Fashion-MNIST canvases model)')
    .argument('<images...>', 'image files or folders of images (JPEG, PNG, WebP, ...; a folder\'s images sorted by name)')
    .option('--model <file>', 'ONNX model from `fasternet convert` (default: models/fasternet_t0_canvases.int8.onnx)')
    .option('--out <dir>', 'write each image with its masks, boxes and labels here (same base name)')
    .option('--json <file>', 'write COCO-results entries {"file","category_id","bbox","score","segmentation"} here (- for stdout)')
    .option('--jsonl <file>', 'stream one line {"file","results":[...]} per finished image here (Ctrl-C stops cleanly; see --resume)')
    .option('--resume', 'continue the run whose --jsonl stream is there, skipping its finished images')
    .option('--gt <ann.json>', 'COCO annotations: entries carry the image_id whose file_name the input\'s path ends with (for eval --results)')
    .option('--shard <I/N>', 'run only every N-th input from the I-th (0-based; I = auto reads JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID)')
    .option('--recursive', 'also take the images in subfolders of folder arguments')
    .option('--score-thr <t>', 'minimum score printed, drawn and written', '0.5')
    .option('--classes <names>', 'keep only these classes: names or labels, comma-separated')
    .option('--max-det <n>', 'at most N detections per image (default: the model\'s 100)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads', '2')
    .option('--quiet', 'no per-image lines (errors are still printed)')
    .action(async (images: string[], opts: DetectCliOptions) => {
      // Every option is checked before anything is written.
      const threads = positiveInt('--threads', opts.threads, MAX_THREADS);
      const scoreThreshold = number01('--score-thr', opts.scoreThr);
      const maxDetections = positiveInt('--max-det', opts.maxDet);
      const classes = opts.classes === undefined ? undefined : parseClassList(opts.classes);
      const shard = parseShard(opts.shard);
      if (opts.resume && !opts.jsonl) throw new UserError('--resume needs --jsonl FILE (the stream of the run to continue)');
      if (opts.jsonl === STDOUT) throw new UserError('--jsonl needs a file (the stream is what --resume reads back); --json - writes to stdout');
      checkOutputFile('--json', opts.json, opts.out);
      checkOutputFile('--jsonl', opts.jsonl, opts.out);
      const imageIdOf = opts.gt === undefined ? undefined : gtImageIds(opts.gt);
      const files = shardOf(expandInputs(images, opts.recursive), shard);
      const model = resolveModel(opts.model);
      let stream: { fd: number; done: Map<string, DetectStreamLine> } | undefined;
      if (opts.jsonl) {
        stream = openDetectStream(opts.jsonl, {
          fasternet_detect_stream: 1, model: resolve(model), model_sha256: sha256File(model, 'model'), score_thr: scoreThreshold,
          classes: classes ?? null, max_det: maxDetections ?? null, gt: opts.gt === undefined ? null : resolve(opts.gt),
          shard: shard ? `${shard.index}/${shard.count}` : null,
        }, opts.resume ?? false);
      }
      let interrupted = false;
      const onSigint = () => {
        if (interrupted) process.exit(130);
        interrupted = true;
        process.stderr.write('\nstopping after the current image (Ctrl-C again to quit now)\n');
      };
      if (stream) process.on('SIGINT', onSigint);
      const say = messages({ quiet: opts.quiet, dataOnStdout: opts.json === STDOUT });
      let outcome;
      try {
        outcome = await detectFiles(model, files, {
          scoreThreshold, maxDetections, classes, threads, imageIdOf,
          outDir: opts.out,
          done: stream && new Map([...stream.done].map(([f, l]) => [f, l.results as CocoResult[]])),
          // One write per image: a kill leaves at worst a torn last line, which --resume drops.
          onResults: stream && ((file, results) => writeSync(stream.fd, `${JSON.stringify({ file, results })}\n`)),
          shouldStop: () => interrupted,
          onImage: (file, n, annotated) => say(`${file}: ${n} instances${annotated ? ` -> ${annotated}` : ''}`),
          onError: (_file, message) => process.stderr.write(`fasternet detect: ${message}\n`),
        });
      } finally {
        if (stream) {
          closeSync(stream.fd);
          process.off('SIGINT', onSigint);
        }
      }
      const { results, failed, complete } = outcome;
      if (!complete) throw new InterruptedError(`interrupted; rerun the same command with --resume to continue (${opts.jsonl} keeps the finished images)`);
      if (opts.json) writeOutput('--json', opts.json, `${JSON.stringify(results)}\n`);
      if (failed > 0) {
        process.stderr.write(`fasternet detect: ${failed} of ${files.length} inputs failed\n`);
        process.exitCode = 1;
      }
    });
}
