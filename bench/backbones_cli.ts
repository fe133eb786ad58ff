/**
 * Subcommands `bench backbones` and `bench ops`, attached to the `bench` parent command by
 * registerBackboneBench(bench). Logic lives in bench/backbones.ts.
 */
import type { Command } from 'commander';
import { availableParallelism } from 'node:os';
import { UserError } from '../core/errors.ts';
import { STDOUT, checkOutputFile, writeOutput } from '../core/output.ts';
import { packageRoot } from '../core/package.ts';
import {
  ARCHS, TABLE1_OPS, TABLE1_SHAPES, avx2PeakGflops, avx512PeakGflops, benchBackbones, benchOp, startTorch, vnniPeakGops, type BenchRow, type OpBenchRow,
} from './backbones.ts';
import { archName } from '../backbones/model.ts';
import { benchCommand } from './command.ts';
import type { FasterNetLayout, PConvImpl } from '../backbones/fasternet.ts';

const root = packageRoot();

function parseSize(s: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(s);
  if (!m) throw new UserError(`--size must be N or HxW, got ${s}`);
  const h = Number(m[1]), w = Number(m[2] ?? m[1]);
  if (h < 32 || w < 32) throw new UserError(`--size must be at least 32, got ${s}`);
  return [h, w];
}

function parseThreads(s: string): number[] {
  const t = s.split(',').map(Number);
  if (t.some((v) => !Number.isInteger(v) || v < 1)) throw new UserError(`--threads must be positive integers (e.g. 1,2), got ${s}`);
  return t;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const pad = (s: string | number, n: number) => String(s).padStart(n);
/** The table's lines: on stdout, or on stderr when --json - puts the JSON there. */
const lineTo = (json: string | undefined) => (line: string): void => void (json === STDOUT ? process.stderr : process.stdout).write(`${line}\n`);

async function writeJson(path: string | undefined, rows: unknown): Promise<void> {
  if (path) writeOutput('--json', path, `${JSON.stringify(rows, null, 1)}\n`);
}

function peakLine(threads: number[], int8 = false): string {
  const p = avx2PeakGflops(1);
  const q = avx512PeakGflops(1);
  const v = int8 ? vnniPeakGops(1) : null;
  const vnni = !int8 ? '' : v
    ? `\npeak INT8 (${v.isa}, 4x the FP32 FMA peak): ${v.gops.toFixed(1)} GOP/s per core${threads.map((t) => `, ${(t * v.gops).toFixed(1)} with ${t}`).join('')}`
    : '\nno VNNI on this CPU: int8 rows run without the 4x int8 dot-product instructions';
  return `peak FP32 (AVX2 FMA, 2 x 16 FLOP/cycle/core x ${p.ghz.toFixed(2)} GHz): ${p.gflops.toFixed(1)} GFLOP/s per core`
    + threads.map((t) => `, ${(t * p.gflops).toFixed(1)} with ${t}`).join('') + `; ${availableParallelism()} cores visible`
    + (q ? `\npeak FP32 (AVX-512 FMA, this CPU has it: 2 x 32 FLOP/cycle/core): ${q.gflops.toFixed(1)} GFLOP/s per core`
      + threads.map((t) => `, ${(t * q.gflops).toFixed(1)} with ${t}`).join('') : '') + vnni;
}

export function registerBackboneBench(bench: Command): void {
  bench.command('backbones')
    .description('latency, FLOPs and GFLOP/s of FasterNet T0..L and ResNet50 in ONNX Runtime (vs the official PyTorch code where available)')
    .option('--arch <name>', `architecture (repeatable): ${ARCHS.join(', ')}`, collect)
    .option('--size <N|HxW>', 'input size (repeatable); 224 builds the classifier, others the detection backbone', collect)
    .option('--threads <list>', 'ORT intra-op thread counts, comma separated', '1,2')
    .option('--iters <n>', 'timed runs per measurement (median reported); default 10 at 224, 3 above')
    .option('--official-repo <dir>', 'clone of the official FasterNet repo, to time its PyTorch code (env FASTERNET_OFFICIAL_REPO)')
    .option('--no-torch', 'skip the PyTorch comparison')
    .option('--pconv <impl>', 'FasterNet PConv form: split_cat (default), slice_cat, group_identity', 'split_cat')
    .option('--layout <l>', 'FasterNet graph form: auto (default: per variant), nchw (official structure), nhwc (1x1 convs as MatMul), two_stream (no Split/Concat)', 'auto')
    .option('--int8', 'also time each backbone quantized to int8 (QDQ, ORT integer kernels); GOP/s against the VNNI peak')
    .option('--json <file>', 'write the rows as JSON (- for stdout)')
    .action(async (o: { arch?: string[]; size?: string[]; threads: string; iters?: string; officialRepo?: string; torch: boolean; json?: string; pconv: string; layout: string; int8?: boolean }) => {
      checkOutputFile('--json', o.json);
      const say = lineTo(o.json);
      if (!['split_cat', 'slice_cat', 'group_identity'].includes(o.pconv)) throw new UserError(`--pconv must be split_cat, slice_cat or group_identity, got ${o.pconv}`);
      if (!['auto', 'nchw', 'nhwc', 'two_stream'].includes(o.layout)) throw new UserError(`--layout must be auto, nchw, nhwc or two_stream, got ${o.layout}`);
      const archs = (o.arch ?? ARCHS).map(archName);
      const sizes = (o.size ?? ['224', '800x1333']).map(parseSize);
      const threads = parseThreads(o.threads);
      const repo = o.officialRepo ?? process.env.FASTERNET_OFFICIAL_REPO;
      const torch = o.torch ? startTorch({ officialRepo: repo, root }) : undefined;
      const rows: BenchRow[] = [];
      say(peakLine(threads, o.int8));
      say('runs interleave run by run across architectures and PyTorch; "min" is the least disturbed run');
      const archW = o.int8 ? 16 : 13;
      say(`${'arch'.padEnd(archW)} ${'input'.padStart(9)} thr ${pad('params', 8)} ${pad('GMACs', 8)} ${pad('ms med', 9)} ${pad('ms min', 9)} ${pad('GFLOP/s', 8)} ${pad('torch med', 9)} ${pad('torch min', 9)} ${pad('speedup', 7)}`);
      try {
        for (const size of sizes) {
          const big = size[0] * size[1] > 224 * 224 * 4;
          const iters = o.iters ? Number(o.iters) : big ? 3 : 10;
          for (const t of threads) {
            const res = await benchBackbones(archs, size, t, {
              iters, warmup: big ? 1 : 3, torch, pconv: o.pconv as PConvImpl,
              layout: o.layout === 'auto' ? undefined : (o.layout as FasterNetLayout), int8: o.int8,
            });
            for (const r of res) {
              rows.push(r);
              const tm = r.torch_ms_median, tn = r.torch_ms_min;
              say(`${(r.precision === 'int8' ? `${r.arch} int8` : r.arch).padEnd(archW)} ${pad(`${size[0]}x${size[1]}`, 9)} ${pad(r.threads, 3)} ${pad((r.params / 1e6).toFixed(2) + 'M', 8)} `
                + `${pad((r.macs / 1e9).toFixed(2), 8)} ${pad(r.ms_median.toFixed(2), 9)} ${pad(r.ms_min.toFixed(2), 9)} ${pad(r.gflops.toFixed(1), 8)} `
                + `${pad(tm ? tm.toFixed(2) : '-', 9)} ${pad(tn ? tn.toFixed(2) : '-', 9)} ${pad(tm ? (tm / r.ms_median).toFixed(2) + 'x' : '-', 7)}`);
            }
          }
        }
      } finally {
        torch?.close();
      }
      // The acceptance ratios: FasterNet-S against ResNet50 (same runtime) and against the official PyTorch code.
      for (const r of rows.filter((x) => x.arch === 'fasternet_s')) {
        const res = rows.find((x) => x.arch === 'resnet50' && x.precision === r.precision && x.threads === r.threads && x.input[0] === r.input[0] && x.input[1] === r.input[1]);
        const parts = [`fasternet_s${r.precision === 'int8' ? ' int8' : ''} ${r.input.join('x')} ${r.threads} thread(s):`];
        if (r.precision === 'int8') {
          const fp = rows.find((x) => x.arch === r.arch && x.precision === 'fp32' && x.threads === r.threads && x.input[0] === r.input[0] && x.input[1] === r.input[1]);
          if (fp) parts.push(`vs its fp32 ${(fp.ms_median / r.ms_median).toFixed(2)}x (median);`);
        }
        // Ratios > 1 mean FasterNet-S is faster; median and best-of-N (best is the least disturbed by other load).
        if (res) parts.push(`vs resnet50 ${(res.ms_median / r.ms_median).toFixed(2)}x (median), ${(res.ms_min / r.ms_min).toFixed(2)}x (best);`);
        if (r.torch_ms_median && r.torch_ms_min) parts.push(`vs official PyTorch (${r.torch_runtime}) ${(r.torch_ms_median / r.ms_median).toFixed(2)}x (median), ${(r.torch_ms_min / r.ms_min).toFixed(2)}x (best)`);
        if (parts.length > 1) say(parts.join(' '));
      }
      await writeJson(o.json, rows);
    });

  bench.command('ops')
    .description("the paper's Table 1: 10 stacked Conv 3x3 / GConv (16 groups) / DWConv / PConv (r=1/4) layers, latency and FLOP/s")
    .option('--threads <list>', 'ORT intra-op thread counts, comma separated', '1')
    .option('--iters <n>', 'timed runs per measurement (median reported)', '30')
    .option('--int8', 'also time each stack quantized to int8 (QLinearConv); GOP/s against the VNNI peak')
    .option('--json <file>', 'write the rows as JSON (- for stdout)')
    .action(async (o: { threads: string; iters: string; json?: string; int8?: boolean }) => {
      checkOutputFile('--json', o.json);
      const say = lineTo(o.json);
      const threads = parseThreads(o.threads);
      say(peakLine(threads, o.int8));
      say(`${'op'.padEnd(12)} ${pad('shape', 12)} thr ${pad('MFLOPs', 9)} ${pad('ms med', 8)} ${pad('ms min', 8)} ${pad('GFLOP/s', 8)}${o.int8 ? ' (GOP/s for int8)' : ''}`);
      const rows: OpBenchRow[] = [];
      for (const t of threads) {
        for (const shape of TABLE1_SHAPES) {
          for (const op of TABLE1_OPS) {
            for (const int8 of o.int8 ? [false, true] : [false]) {
              const r = await benchOp(op, shape, t, { iters: Number(o.iters), int8 });
              rows.push(r);
              say(`${(int8 ? `${op} int8` : op).padEnd(12)} ${pad(shape.join('x'), 12)} ${pad(t, 3)} ${pad((r.flops / 1e6).toFixed(1), 9)} ${pad(r.ms_median.toFixed(3), 8)} ${pad(r.ms_min.toFixed(3), 8)} ${pad(r.gflops.toFixed(1), 8)}`);
            }
          }
        }
      }
      await writeJson(o.json, rows);
    });
}

/** cli/main.ts registration: `bench backbones` and `bench ops` under the shared `bench` parent. */
export function register(program: Command): void {
  registerBackboneBench(benchCommand(program));
}
