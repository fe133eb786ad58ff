/**
 * `fasternet bench detect --model M.onnx --image IMG [--runs N] [--threads T] [--json OUT.json]`: end-to-end
 * Mask R-CNN latency with the time of every stage (preprocess, backbone+FPN+RPN head, proposals, RoIAlign,
 * box head, NMS (box decoding, softmax, per-class NMS), mask head, mask paste + RLE) and the peak RSS.
 * Registered as `bench detect` under bench/command.ts's shared `bench` parent (register(program)).
 *
 * With `--compare B.onnx` and/or torchvision present, the comparisons run in the same invocation: each model in
 * a child process of its own (so each peak RSS is that model's), then torchvision's maskrcnn_resnet50_fpn on
 * the same image, threads and score threshold (bench/torch_detect_tv.py), and the ratios are printed.
 */
import type { Command } from 'commander';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage } from '../image/decode.ts';
import { encodeCropped } from '../api/detect.ts';
import { loadDetector, releaseDetector, runDetector } from '../heads/mask_rcnn.ts';
import { readMetadataProps } from '../runtime/metadata.ts';
import { UserError } from '../core/errors.ts';
import { positiveInt } from '../core/options.ts';
import { STDOUT, checkOutputFile, writeOutput } from '../core/output.ts';
import { siblingModule } from '../core/worker.ts';
import { packageFile } from '../core/package.ts';
import { benchCommand } from './command.ts';

export interface DetectBench {
  model: string;
  arch: string;
  flavor: string;
  /** 'int8' for models from `fasternet quantize`. */
  precision: 'fp32' | 'int8';
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

const label = (r: DetectBench): string => (r.precision === 'int8' ? `${r.arch}_int8` : r.arch);

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
      model: modelPath, arch: det.meta.arch, flavor: det.meta.flavor,
      precision: (await readMetadataProps(modelPath))['fasternet.quantized'] ? 'int8' : 'fp32', image: imagePath, imageSize: [img.height, img.width],
      inputSize, threads, runs, scoreThreshold: o.scoreThreshold, detections, ms_median: median(totals), ms_min: Math.min(...totals), stages,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await releaseDetector(det);
  }
}


function run(cmd: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 1 << 24 }, (err, stdout) => resolve(err ? null : stdout));
  });
}

/** benchDetect in a fresh process, so that peak_rss_mb is this model's alone. */
async function benchDetectChild(model: string, image: string, o: { runs: number; threads: number; scoreThreshold?: number }): Promise<DetectBench> {
  const dir = await mkdtemp(join(tmpdir(), 'fasternet-bench-detect-'));
  try {
    const out = join(dir, 'r.json');
    // The same CLI as this process (sources under tsx, or compiled), so the child measures the same code.
    const cli = fileURLToPath(siblingModule('../cli/main', import.meta.url));
    const args = [...(cli.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : []), cli, 'bench', 'detect', '--model', model, '--image', image,
      '--runs', String(o.runs), '--threads', String(o.threads), '--json', out, '--no-torch'];
    if (o.scoreThreshold !== undefined) args.push('--score-thr', String(o.scoreThreshold));
    if ((await run(process.execPath, args)) === null) throw new UserError(`bench detect failed for ${model}`);
    return JSON.parse(await readFile(out, 'utf8')) as DetectBench;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface TorchDetectBench {
  framework: string;
  threads: number;
  runs: number;
  detections: number;
  ms_median: number;
  ms_min: number;
  peak_rss_mb: number;
}

/** torchvision's maskrcnn_resnet50_fpn (random weights) on the same image; null where torch is not installed. */
export async function benchTorchDetect(image: string, o: { runs: number; threads: number; scoreThreshold?: number; python?: string }): Promise<TorchDetectBench | null> {
  const args = [packageFile('bench/torch_detect_tv.py'), image, '--runs', String(o.runs), '--threads', String(o.threads)];
  if (o.scoreThreshold !== undefined) args.push('--score-thr', String(o.scoreThreshold));
  const out = await run(o.python ?? '/usr/bin/python3', args);
  if (out === null) return null;
  try {
    return JSON.parse(out.trim().split('\n').pop()!) as TorchDetectBench;
  } catch {
    return null;
  }
}

function printBench(r: DetectBench, say: (text: string) => void): void {
  say(`${label(r)} (${r.flavor}) on ${r.image} ${r.imageSize[1]}x${r.imageSize[0]} -> input ${r.inputSize[1]}x${r.inputSize[0]}, `
    + `${r.threads} threads, ${r.detections} detections\n`);
  say(`  total median ${r.ms_median.toFixed(1)} ms (min ${r.ms_min.toFixed(1)}), peak RSS ${r.peak_rss_mb.toFixed(0)} MB\n`);
  for (const [k, v] of Object.entries(r.stages)) say(`  ${k.padEnd(18)} ${v.toFixed(1).padStart(9)} ms\n`);
}

export function register(program: Command): void {
  benchCommand(program).command('detect')
    .description('Mask R-CNN latency per stage on one image (model from `fasternet convert --flavor torchvision|mmdet`)')
    .requiredOption('--model <file>', 'ONNX detector')
    .requiredOption('--image <file>', 'image file')
    .option('--runs <n>', 'timed runs after one warm-up', '5')
    .option('--threads <n>', 'ONNX Runtime intra-op threads', '2')
    .option('--score-thr <t>', 'box score threshold (default: the model\'s; 0 makes every image give 100 detections)')
    .option('--json <file>', 'write {"ms_median", "stages": {name: ms}, "peak_rss_mb", ...} here (- for stdout)')
    .option('--compare <file>', 'a second detector (e.g. the ResNet50 model) timed in the same run; prints the ratio')
    .option('--no-torch', 'skip torchvision maskrcnn_resnet50_fpn (timed by default where /usr/bin/python3 has torch)')
    .action(async (opts: { model: string; image: string; runs: string; threads: string; scoreThr?: string; json?: string; compare?: string; torch: boolean }) => {
      checkOutputFile('--json', opts.json);
      // With --json - the JSON alone goes to stdout, the report to stderr.
      const say = (text: string): void => void (opts.json === STDOUT ? process.stderr : process.stdout).write(text);
      const thr = opts.scoreThr === undefined ? undefined : Number(opts.scoreThr);
      if (thr !== undefined && !(thr >= 0 && thr <= 1)) throw new UserError(`--score-thr must be in [0, 1], got ${opts.scoreThr}`);
      const o = { runs: positiveInt('--runs', opts.runs), threads: positiveInt('--threads', opts.threads), scoreThreshold: thr };
      const alone = !opts.compare && !opts.torch;
      const r: DetectBench & { compare?: DetectBench; torch?: TorchDetectBench | null; ratios?: Record<string, number> } = alone
        ? await benchDetect(opts.model, opts.image, o) : await benchDetectChild(opts.model, opts.image, o);
      printBench(r, say);
      const ratios: Record<string, number> = {};
      if (opts.compare) {
        r.compare = await benchDetectChild(opts.compare, opts.image, o);
        printBench(r.compare, say);
        ratios[`${label(r.compare)}_ms / ${label(r)}_ms`] = r.compare.ms_median / r.ms_median;
      }
      if (opts.torch) {
        r.torch = await benchTorchDetect(opts.image, o);
        if (r.torch) {
          say(`${r.torch.framework}, ${r.torch.threads} threads, ${r.torch.detections} detections\n`);
          say(`  total median ${r.torch.ms_median.toFixed(1)} ms (min ${r.torch.ms_min.toFixed(1)}), peak RSS ${r.torch.peak_rss_mb.toFixed(0)} MB\n`);
          ratios[`torchvision_ms / ${label(r)}_ms`] = r.torch.ms_median / r.ms_median;
          if (r.compare) ratios[`torchvision_ms / ${label(r.compare)}_ms`] = r.torch.ms_median / r.compare.ms_median;
        } else {
          say('torchvision: not available (/usr/bin/python3 with torch and torchvision), skipped\n');
        }
      }
      if (Object.keys(ratios).length) {
        r.ratios = ratios;
        say('ratios (median, same run; > 1 means the right-hand model is faster):\n');
        for (const [k, v] of Object.entries(ratios)) say(`  ${k.padEnd(36)} ${v.toFixed(2)}x\n`);
      }
      if (opts.json) writeOutput('--json', opts.json, `${JSON.stringify(r, null, 1)}\n`);
    });
}
