/**
 * `fasternet detect IMAGE... [--model M.onnx] [--out DIR] [--json OUT.json] [--score-thr T]`: Mask R-CNN instance
 * segmentation with a model from `fasternet convert --flavor torchvision|mmdet`, by default the bundled
 * FasterNet-T0 canvases model (api/detect.ts DEFAULT_MODEL_PATH). The JSON is a COCO results list:
 * {"file", "category_id", "bbox": [x, y, w, h], "score", "segmentation": {"size", "counts"}} per instance
 * (category_id: COCO id for COCO models, else the 1-based class index). `--out DIR` writes each input drawn
 * with its detections (api/annotate.ts) as DIR/<base name>.png (.jpg/.jpeg kept for JPEG inputs).
 *
 * Orientation: every image is decoded once with its EXIF orientation applied (as viewers show it) and the
 * model runs on those pixels, so boxes, masks and the JSON are in displayed-image coordinates and the
 * annotated image has the displayed size. (The library's detect() on a path follows the flavor's reference
 * decoding instead: torchvision ignores EXIF, as PIL does; the two differ only for EXIF-rotated files.)
 *
 * A bad input (unreadable, not an image, truncated, over the pixel limit, a directory) prints one line naming
 * it on stderr; the other inputs are still processed and the command exits 1 at the end.
 */
import type { Command } from 'commander';
import { mkdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { detectInProcess, resolveModel } from '../api/detect.ts';
import { loadDetector, releaseDetector } from '../heads/mask_rcnn.ts';
import { decodeImage } from '../image/decode.ts';
import { annotate } from '../api/annotate.ts';
import { UserError } from '../core/errors.ts';
import { MAX_THREADS, positiveInt } from '../core/options.ts';
import { checkWritable, checkWritableFolder, writeFileAtomic } from '../core/fs.ts';

export interface CocoResult {
  file: string;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
  segmentation: { size: [number, number]; counts: string | number[] };
}

export interface DetectFilesOptions {
  scoreThreshold?: number;
  threads?: number;
  /** Write annotated images here. */
  outDir?: string;
  /** Minimum score drawn in the annotated images (default 0.5). */
  showThreshold?: number;
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
export async function detectFiles(modelPath: string | undefined, files: string[], o: DetectFilesOptions = {}): Promise<{ results: CocoResult[]; failed: number }> {
  const out: CocoResult[] = [];
  const taken = new Set<string>();
  let failed = 0;
  if (o.outDir) {
    try {
      await mkdir(o.outDir, { recursive: true });
    } catch (err) {
      throw new UserError(`cannot create --out folder ${o.outDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    checkWritableFolder(o.outDir);
  }
  const det = await loadDetector(resolveModel(modelPath), { threads: o.threads });
  try {
    for (const file of files) {
      try {
        await checkFile(file);
        const img = await decodeImage(file, { autoOrient: true });
        const r = await detectInProcess(img, { model: det, scoreThreshold: o.scoreThreshold });
        for (const d of r.detections) {
          out.push({ file, category_id: d.categoryId, bbox: d.bbox, score: d.score, segmentation: d.mask });
        }
        let written: string | undefined;
        if (o.outDir) {
          const { path, format } = annotatedName(file, o.outDir, taken);
          const bytes = await annotate(img, r, { scoreThreshold: o.showThreshold, format });
          await writeFileAtomic(path, bytes);
          written = path;
        }
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
    await releaseDetector(det);
  }
  return { results: out, failed };
}

function number01(name: string, v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new UserError(`${name} must be a number in [0, 1], got ${v}`);
  return n;
}

export function register(program: Command): void {
  program.command('detect')
    .description('Mask R-CNN instance segmentation (default model: the bundled FasterNet-T0 Fashion-MNIST canvases model)')
    .argument('<images...>', 'image files (JPEG, PNG, WebP, ...)')
    .option('--model <file>', 'ONNX model from `fasternet convert` (default: models/fasternet_t0_canvases.onnx)')
    .option('--out <dir>', 'write each image with its masks, boxes and labels here (same base name)')
    .option('--json <file>', 'write COCO-results entries {"file","category_id","bbox","score","segmentation"} here')
    .option('--score-thr <t>', 'minimum score kept (default: the model\'s 0.05)')
    .option('--show-thr <t>', 'minimum score drawn with --out', '0.5')
    .option('--threads <n>', 'ONNX Runtime intra-op threads', '2')
    .action(async (images: string[], opts: { model?: string; out?: string; json?: string; scoreThr?: string; showThr: string; threads: string }) => {
      const threads = positiveInt('--threads', opts.threads, MAX_THREADS);
      if (opts.json) checkWritable(opts.json, '--json');
      const { results, failed } = await detectFiles(opts.model, images, {
        scoreThreshold: opts.scoreThr === undefined ? undefined : number01('--score-thr', opts.scoreThr),
        showThreshold: number01('--show-thr', opts.showThr),
        threads,
        outDir: opts.out,
        onImage: (file, n, annotated) => process.stdout.write(`${file}: ${n} instances${annotated ? ` -> ${annotated}` : ''}\n`),
        onError: (_file, message) => process.stderr.write(`fasternet detect: ${message}\n`),
      });
      if (opts.json) await writeFileAtomic(opts.json, JSON.stringify(results));
      if (failed > 0) {
        process.stderr.write(`fasternet detect: ${failed} of ${images.length} inputs failed\n`);
        process.exitCode = 1;
      }
    });
}
