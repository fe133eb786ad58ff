/**
 * `fasternet bench backbones` and `fasternet bench ops`: ONNX Runtime CPU latency of the backbones built by this
 * package, FLOP counts from the graph builder, achieved GFLOP/s, and (where Debian's torch and the official repo
 * are reachable) the official PyTorch code under the same thread count for comparison.
 *
 * FLOPs here are 2 x multiply-accumulates of Conv and Gemm nodes (the paper's "FLOPs" count MACs; both appear in
 * the output). Weights are synthetic: latency does not depend on their values.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import type { StateDict } from '../core/tensor.ts';
import { addInput, addOutput, concat, conv, createGraph, serializeModel, split, type Graph } from '../runtime/graph.ts';
import { createSession, runSession } from '../runtime/session.ts';
import { decodeModel, planQuantization, quantizeGraph, withOutputs } from '../runtime/quantize.ts';
import { calibrateRanges } from '../runtime/calibrate.ts';
import { syntheticInput, syntheticStateDict, syntheticTensor } from '../backbones/synthetic.ts';
import { fasternetParamSpecs, type FasterNetLayout, type PConvImpl } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { archName, classifierGraph, featuresGraph, ARCHS } from '../backbones/model.ts';

export interface BenchRow {
  arch: string;
  input: [number, number];
  threads: number;
  /** Learnable parameters of the PyTorch model (BatchNorm running statistics excluded). */
  params: number;
  flops: number;
  macs: number;
  ms_median: number;
  /** Best run: the least disturbed by other processes on a shared machine. */
  ms_min: number;
  /** GFLOP/s, or for int8 rows giga integer ops/s (same 2 x MACs count). */
  gflops: number;
  runtime: string;
  /** 'int8': the graph in QDQ form (every Conv/Gemm/MatMul, stem included), fused by ORT into integer kernels. */
  precision: 'fp32' | 'int8';
  /** 'classifier' at 224 (ImageNet model incl. head), 'features' otherwise (detection backbone). */
  graph: 'classifier' | 'features';
  /** The official PyTorch code, interleaved run by run with ours (absent where torch or the repo is missing). */
  torch_ms_median?: number;
  torch_ms_min?: number;
  torch_runtime?: string;
}

export interface TimingOptions { iters?: number; warmup?: number }

/** Median and best wall time of session runs, in ms. */
async function timeSession(bytes: Uint8Array, input: { shape: number[]; data: Float32Array }, threads: number, o: TimingOptions): Promise<{ median: number; min: number }> {
  const s = await createSession(bytes, { threads });
  try {
    const name = s.inputNames[0];
    for (let i = 0; i < (o.warmup ?? 3); i++) await runSession(s, { [name]: input });
    const times: number[] = [];
    for (let i = 0; i < (o.iters ?? 10); i++) {
      const t = performance.now();
      await runSession(s, { [name]: input });
      times.push(performance.now() - t);
    }
    return stats(times);
  } finally {
    await s.release();
  }
}

/**
 * The graph in int8 QDQ form for timing: every Conv/Gemm/MatMul quantized (stem and predictors too), ranges
 * by minmax on `input` (latency does not depend on the ranges; accuracy is `fasternet quantize`'s business).
 */
export async function int8Graph(bytes: Uint8Array, input: { shape: number[]; data: Float32Array }): Promise<Uint8Array> {
  const plan = planQuantization(decodeModel(bytes), { keepSensitive: false });
  const s = await createSession(withOutputs(bytes, plan.tensors), { threads: 1, optimization: 'basic' });
  try {
    const name = s.inputNames[0];
    const ranges = await calibrateRanges(plan.tensors, 'minmax', async (observe) => observe({ ...(await runSession(s, { [name]: input })), [name]: input }));
    return quantizeGraph(bytes, plan, ranges).bytes;
  } finally {
    await s.release();
  }
}

function stats(times: number[]): { median: number; min: number } {
  const t = times.slice().sort((a, b) => a - b);
  return { median: t[Math.floor(t.length / 2)], min: t[0] };
}

function learnableParams(sd: StateDict): number {
  let n = 0;
  for (const [k, t] of sd) if (!/running_(mean|var)$|num_batches_tracked$/.test(k)) n += t.data.length;
  return n;
}

/**
 * The official code (or torchvision ResNet50) on Debian torch, as a child process answering one run per request
 * (bench/torch_backbones.py --serve), so that its runs interleave with ours.
 */
export interface TorchRunner {
  run(arch: string, size: [number, number], threads: number, features: boolean): Promise<{ ms: number; runtime: string } | null>;
  close(): void;
}

export function startTorch(o: { officialRepo?: string; python?: string; root: string }): TorchRunner {
  const args = [`${o.root}/bench/torch_backbones.py`, '--serve'];
  if (o.officialRepo) args.push('--fasternet-repo', o.officialRepo);
  const child = spawn(o.python ?? '/usr/bin/python3', args, { stdio: ['pipe', 'pipe', 'ignore'] });
  const waiting: Array<(line: string | null) => void> = [];
  let dead = false;
  child.on('error', () => { dead = true; waiting.splice(0).forEach((w) => w(null)); });
  child.on('exit', () => { dead = true; waiting.splice(0).forEach((w) => w(null)); });
  createInterface({ input: child.stdout! }).on('line', (line) => waiting.shift()?.(line));
  return {
    async run(arch, size, threads, features) {
      if (dead || (arch !== 'resnet50' && !o.officialRepo)) return null;
      const line = await new Promise<string | null>((resolve) => {
        waiting.push(resolve);
        child.stdin!.write(`${JSON.stringify({ arch, input: size, threads, features })}\n`);
      });
      if (line === null) return null;
      try {
        return JSON.parse(line) as { ms: number; runtime: string };
      } catch {
        return null;
      }
    },
    close() { child.stdin?.end(); },
  };
}

/**
 * Times every (arch) at one size and thread count, interleaving the architectures (and PyTorch, when given) run
 * by run, so that load from other processes on a shared machine hits all of them alike.
 */
export async function benchBackbones(
  archs: string[], size: [number, number], threads: number,
  o: TimingOptions & { pconv?: PConvImpl; layout?: FasterNetLayout; torch?: TorchRunner; int8?: boolean } = {},
): Promise<BenchRow[]> {
  const classifier = size[0] === 224 && size[1] === 224;
  const dims: [number, number, number, number] = [1, 3, size[0], size[1]];
  const input = syntheticInput(dims, 0);
  const models = [];
  for (const arch of archs) {
    const name = archName(arch);
    const specs = name === 'resnet50' ? resnet50ParamSpecs(classifier ? 1000 : 0) : fasternetParamSpecs(name, { forkFeat: !classifier });
    const sd = syntheticStateDict(specs, 0);
    const { graph } = classifier ? classifierGraph(sd, { arch: name, dims, pconv: o.pconv, layout: o.layout })
      : featuresGraph(sd, { arch: name, dims, pconv: o.pconv, layout: o.layout });
    const bytes = serializeModel(graph);
    const session = await createSession(bytes, { threads });
    const entry = (s: typeof session, precision: 'fp32' | 'int8') => ({
      name, params: learnableParams(sd), macs: graph.macs, session: s, ort: [] as number[], torch: [] as number[], runtime: '', precision,
    });
    models.push(entry(session, 'fp32'));
    if (o.int8) models.push(entry(await createSession(await int8Graph(bytes, input), { threads }), 'int8'));
  }
  try {
    for (let i = 0; i < (o.warmup ?? 3) + (o.iters ?? 10); i++) {
      for (const m of models) {
        const t = performance.now();
        await runSession(m.session, { [m.session.inputNames[0]]: input });
        const ms = performance.now() - t;
        const tr = o.torch && m.precision === 'fp32' ? await o.torch.run(m.name, size, threads, !classifier) : null;
        if (i < (o.warmup ?? 3)) continue;
        m.ort.push(ms);
        if (tr) { m.torch.push(tr.ms); m.runtime = tr.runtime; }
      }
    }
  } finally {
    for (const m of models) await m.session.release();
  }
  return models.map((m) => {
    const t = stats(m.ort);
    const row: BenchRow = {
      arch: m.name, input: size, threads, params: m.params, flops: 2 * m.macs, macs: m.macs, ms_median: t.median, ms_min: t.min,
      gflops: (2 * m.macs) / (t.median * 1e6), runtime: 'onnxruntime-node', precision: m.precision, graph: classifier ? 'classifier' : 'features',
    };
    if (m.torch.length) {
      const tt = stats(m.torch);
      row.torch_ms_median = tt.median;
      row.torch_ms_min = tt.min;
      row.torch_runtime = m.runtime;
    }
    return row;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Paper Table 1: 10 stacked layers of Conv 3x3, GConv (16 groups), DWConv, PConv (r = 1/4) at four sizes.

export const TABLE1_SHAPES: Array<[number, number, number]> = [[96, 56, 56], [192, 28, 28], [384, 14, 14], [768, 7, 7]];
export const TABLE1_OPS = ['conv', 'gconv', 'dwconv', 'pconv'] as const;
export type Table1Op = typeof TABLE1_OPS[number];

export interface OpBenchRow {
  op: Table1Op;
  shape: [number, number, number];
  layers: number;
  threads: number;
  flops: number;
  ms_median: number;
  ms_min: number;
  /** GFLOP/s, or GOP/s for int8 rows. */
  gflops: number;
  precision: 'fp32' | 'int8';
}

/** Ten stacked 3x3 layers of one kind (no bias, stride 1, same padding) on a [1, c, h, w] input. */
export function opStackGraph(op: Table1Op, [c, h, w]: [number, number, number], layers = 10): Graph {
  const g = createGraph(op);
  let x = addInput(g, 'input', [1, c, h, w]);
  const groups = op === 'gconv' ? 16 : op === 'dwconv' ? c : 1;
  const cp = Math.floor(c / 4);
  for (let l = 0; l < layers; l++) {
    const name = `layers.${l}`;
    if (op === 'pconv') {
      const wt = syntheticTensor(`${name}.weight`, [cp, cp, 3, 3], 0) as { shape: number[]; data: Float32Array };
      const [x1, x2] = split(g, x, [cp, c - cp], 1, `${name}.split`);
      x = concat(g, [conv(g, x1, wt, undefined, { pad: 1, name }), x2], 1, `${name}.cat`);
    } else {
      const wt = syntheticTensor(`${name}.weight`, [c, c / groups, 3, 3], 0) as { shape: number[]; data: Float32Array };
      x = conv(g, x, wt, undefined, { pad: 1, group: groups, name });
    }
  }
  addOutput(g, x, 'output');
  return g;
}

export async function benchOp(
  op: Table1Op, shape: [number, number, number], threads: number, o: TimingOptions & { int8?: boolean } = {},
): Promise<OpBenchRow> {
  const g = opStackGraph(op, shape);
  const input = syntheticInput([1, ...shape], 0);
  const bytes = o.int8 ? await int8Graph(serializeModel(g), input) : serializeModel(g);
  const t = await timeSession(bytes, input, threads, { iters: o.iters ?? 30, warmup: o.warmup ?? 5 });
  return {
    op, shape, layers: 10, threads, flops: 2 * g.macs, ms_median: t.median, ms_min: t.min, gflops: (2 * g.macs) / (t.median * 1e6),
    precision: o.int8 ? 'int8' : 'fp32',
  };
}

/** Peak FP32 FLOP/s of `cores` cores with AVX2 FMA: 2 FMA units x 8 lanes x 2 FLOP = 32 FLOP/cycle per core. */
export function avx2PeakGflops(cores: number, ghz?: number): { gflops: number; ghz: number } {
  const clock = ghz ?? cpuGhz();
  return { gflops: cores * 32 * clock, ghz: clock };
}

/**
 * Peak with AVX-512 FMA where the CPU has it (2 FMA units x 16 lanes x 2 FLOP = 64 FLOP/cycle per core on
 * server cores; ORT's MLAS picks its AVX-512 kernels there, so achieved GFLOP/s can pass the AVX2 peak).
 */
export function avx512PeakGflops(cores: number, ghz?: number): { gflops: number; ghz: number } | null {
  try {
    if (!/\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))) return null;
  } catch {
    return null;
  }
  const clock = ghz ?? cpuGhz();
  return { gflops: cores * 64 * clock, ghz: clock };
}

/**
 * Peak int8 ops/s with VNNI (vpdpbusd: 4 uint8 x int8 products summed into an int32 lane per instruction, so
 * 4x the FP32 FMA peak of the same vector width), where the CPU has AVX-512 VNNI or AVX-VNNI.
 */
export function vnniPeakGops(cores: number, ghz?: number): { gops: number; ghz: number; isa: string } | null {
  let info = '';
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return null;
  }
  const clock = ghz ?? cpuGhz();
  if (/\bavx512_vnni\b/.test(info)) return { gops: 4 * cores * 64 * clock, ghz: clock, isa: 'AVX-512 VNNI' };
  if (/\bavx_vnni\b/.test(info)) return { gops: 4 * cores * 32 * clock, ghz: clock, isa: 'AVX-VNNI' };
  return null;
}

/** Nominal clock: os.cpus() speed, else /proc/cpuinfo's "cpu MHz" (VMs often report 0 to os.cpus()). */
export function cpuGhz(): number {
  const s = cpus()[0]?.speed ?? 0;
  if (s > 0) return s / 1000;
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Number(m[1]) / 1000 : 0;
  } catch {
    return 0;
  }
}

export { ARCHS };
