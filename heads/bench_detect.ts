/**
 * `fasternet bench detect --model M.onnx --image IMG [--runs N] [--threads T] [--json OUT.json]`: end-to-end
 * Mask R-CNN latency with the time of every stage (preprocess, backbone+FPN+RPN head, proposals, RoIAlign,
 * box head, NMS (box decoding, softmax, per-class NMS), mask head, mask paste + RLE) and the peak RSS.
 * Registered as `bench detect` under cli/bench.ts's shared `bench` parent (register(program)).
 */
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { decodeImage } from '../io/image.ts';
import { encodeCropped } from './detect.ts';
import { loadDetector, releaseDetector, runDetector } from './mask_rcnn.ts';
import { UserError } from '../cli/errors.ts';
import { benchCommand } from '../cli/bench.ts';

export interface DetectBench {
  model: string;
  arch: string;
  flavor: string;
  image: string;
  imageSize: [number, number];
  inputSize: [number, number];
  threads: number;
  runs: number;
  scoreThreshold?: number;
  detections: number;
  ms_median: number;
  ms_min: number;
  stages: Record<string, number>;
  peak_rss_mb: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function benchDetect(
  modelPath: string, imagePath: string, o: { runs?: number; threads?: number; scoreThreshold?: number } = {},
): Promise<DetectBench> {
  const runs = o.runs ?? 5;
  const threads = o.threads ?? 2;
  const det = await loadDetector(modelPath, { threads });
  try {
    const img = await decodeImage(imagePath);
    const totals: number[] = [];
    const stageRuns: Record<string, number>[] = [];
    let detections = 0;
    let inputSize: [number, number] = [0, 0];
    for (let r = 0; r <= runs; r++) {
      const t: Record<string, number> = {};
      const mid: { input?: { shape: number[] } } = {};
      const t0 = performance.now();
      const res = await runDetector(det, img, { timings: t, intermediates: mid as never, boxHead: { scoreThresh: o.scoreThreshold } });
      // RLE encoding is part of what a caller gets (detect() does it); time it with the paste.
      const t1 = performance.now();
      for (const m of res.masks) encodeCropped(m, img.height, img.width);
      t.mask_paste += performance.now() - t1;
      const total = performance.now() - t0;
      if (r === 0) continue; // warm-up (first-run allocations, ORT arena growth)
      totals.push(total);
      stageRuns.push(t);
      detections = res.scores.length;
      inputSize = [mid.input!.shape[2], mid.input!.shape[3]];
    }
    const stages: Record<string, number> = {};
    for (const k of Object.keys(stageRuns[0])) stages[k] = median(stageRuns.map((s) => s[k]));
    return {
      model: modelPath, arch: det.meta.arch, flavor: det.meta.flavor, image: imagePath, imageSize: [img.height, img.width],
      inputSize, threads, runs, scoreThreshold: o.scoreThreshold, detections, ms_median: median(totals), ms_min: Math.min(...totals), stages,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await releaseDetector(det);
  }
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer, got ${v}`);
  return n;
}

export function register(program: Command): void {
  benchCommand(program).command('detect')
    .description('Mask R-CNN latency per stage on one image (model from `fasternet convert --flavor torchvision|mmdet`)')
    .requiredOption('--model <file>', 'ONNX detector')
    .requiredOption('--image <file>', 'image file')
    .option('--runs <n>', 'timed runs after one warm-up', '5')
    .option('--threads <n>', 'ONNX Runtime intra-op threads', '2')
    .option('--score-thr <t>', 'box score threshold (default: the model\'s; 0 makes every image give 100 detections)')
    .option('--json <file>', 'write {"ms_median", "stages": {name: ms}, "peak_rss_mb", ...} here')
    .action(async (opts: { model: string; image: string; runs: string; threads: string; scoreThr?: string; json?: string }) => {
      const thr = opts.scoreThr === undefined ? undefined : Number(opts.scoreThr);
      if (thr !== undefined && !(thr >= 0 && thr <= 1)) throw new UserError(`--score-thr must be in [0, 1], got ${opts.scoreThr}`);
      const r = await benchDetect(opts.model, opts.image, {
        runs: positiveInt('--runs', opts.runs), threads: positiveInt('--threads', opts.threads), scoreThreshold: thr,
      });
      process.stdout.write(`${r.arch} (${r.flavor}) on ${r.image} ${r.imageSize[1]}x${r.imageSize[0]} -> input ${r.inputSize[1]}x${r.inputSize[0]}, `
        + `${r.threads} threads, ${r.detections} detections\n`);
      process.stdout.write(`  total median ${r.ms_median.toFixed(1)} ms (min ${r.ms_min.toFixed(1)}), peak RSS ${r.peak_rss_mb.toFixed(0)} MB\n`);
      for (const [k, v] of Object.entries(r.stages)) process.stdout.write(`  ${k.padEnd(18)} ${v.toFixed(1).padStart(9)} ms\n`);
      if (opts.json) {
        try {
          await writeFile(opts.json, `${JSON.stringify(r, null, 1)}\n`);
        } catch (err) {
          throw new UserError(`cannot write ${opts.json}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
      }
    });
}
