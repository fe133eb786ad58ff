/**
 * `fasternet bench backbones` and `fasternet bench ops`: ONNX Runtime CPU latency of the backbones built by this
 * package, FLOP counts from the graph builder, achieved GFLOP/s, and (where Debian's torch and the official repo
 * are reachable) the official PyTorch code under the same thread count for comparison.
 *
 * FLOPs here are 2 x multiply-accumulates of Conv and Gemm nodes (the paper's "FLOPs" count MACs; both appear in
 * the output). Weights are synthetic: latency does not depend on their values.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import type { StateDict } from '../runtime/tensor.ts';
import { addInput, addOutput, concat, conv, createGraph, serializeModel, split, type Graph } from '../runtime/graph.ts';
import { createSession, runSession } from '../runtime/session.ts';
import { syntheticInput, syntheticStateDict, syntheticTensor } from './synthetic.ts';
import { fasternetParamSpecs, type FasterNetLayout, type PConvImpl } from './fasternet.ts';
import { resnet50ParamSpecs } from './resnet.ts';
import { archName, classifierGraph, featuresGraph, ARCHS } from './model.ts';

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
  gflops: number;
  runtime: string;
  /** 'classifier' at 224 (ImageNet model incl. head), 'features' otherwise (detection backbone). */
  graph: 'classifier' | 'features';
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
    times.sort((a, b) => a - b);
    return { median: times[Math.floor(times.length / 2)], min: times[0] };
  } finally {
    await s.release();
  }
}

function learnableParams(sd: StateDict): number {
  let n = 0;
  for (const [k, t] of sd) if (!/running_(mean|var)$|num_batches_tracked$/.test(k)) n += t.data.length;
  return n;
}

/** Builds the backbone once and times it at each thread count. */
export async function benchBackbone(
  arch: string, size: [number, number], threadList: number[], o: TimingOptions & { pconv?: PConvImpl; layout?: FasterNetLayout } = {},
): Promise<BenchRow[]> {
  const name = archName(arch);
  const classifier = size[0] === 224 && size[1] === 224;
  const specs = name === 'resnet50' ? resnet50ParamSpecs(classifier ? 1000 : 0) : fasternetParamSpecs(name, { forkFeat: !classifier });
  const sd = syntheticStateDict(specs, 0);
  const dims: [number, number, number, number] = [1, 3, size[0], size[1]];
  const { graph } = classifier ? classifierGraph(sd, { arch: name, dims, pconv: o.pconv, layout: o.layout }) : featuresGraph(sd, { arch: name, dims, pconv: o.pconv, layout: o.layout });
  const bytes = serializeModel(graph);
  const input = syntheticInput(dims, 0);
  const rows: BenchRow[] = [];
  for (const threads of threadList) {
    const t = await timeSession(bytes, input, threads, o);
    rows.push({
      arch: name, input: size, threads, params: learnableParams(sd), flops: 2 * graph.macs, macs: graph.macs, ms_median: t.median,
      ms_min: t.min, gflops: (2 * graph.macs) / (t.median * 1e6), runtime: 'onnxruntime-node', graph: classifier ? 'classifier' : 'features',
    });
  }
  return rows;
}

/** The official code (or torchvision ResNet50) on Debian torch, via scripts/bench/torch_backbones.py; null when unavailable. */
export async function benchTorch(
  arch: string, size: [number, number], threads: number, o: { officialRepo?: string; iters?: number; python?: string; root: string },
): Promise<{ ms_median: number; ms_min: number; runtime: string } | null> {
  const name = archName(arch);
  if (name !== 'resnet50' && !o.officialRepo) return null;
  const args = [`${o.root}/scripts/bench/torch_backbones.py`, '--arch', name, '--size', `${size[0]}x${size[1]}`,
    '--threads', String(threads), '--iters', String(o.iters ?? 10)];
  if (o.officialRepo) args.push('--fasternet-repo', o.officialRepo);
  if (!(size[0] === 224 && size[1] === 224)) args.push('--features');
  try {
    const { stdout } = await promisify(execFile)(o.python ?? '/usr/bin/python3', args, { maxBuffer: 1 << 20 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    return { ms_median: r.ms_median, ms_min: r.ms_min, runtime: r.runtime };
  } catch {
    return null;
  }
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
  gflops: number;
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

export async function benchOp(op: Table1Op, shape: [number, number, number], threads: number, o: TimingOptions = {}): Promise<OpBenchRow> {
  const g = opStackGraph(op, shape);
  const t = await timeSession(serializeModel(g), syntheticInput([1, ...shape], 0), threads, { iters: o.iters ?? 30, warmup: o.warmup ?? 5 });
  return { op, shape, layers: 10, threads, flops: 2 * g.macs, ms_median: t.median, ms_min: t.min, gflops: (2 * g.macs) / (t.median * 1e6) };
}

/** Peak FP32 FLOP/s of `cores` cores with AVX2 FMA: 2 FMA units x 8 lanes x 2 FLOP = 32 FLOP/cycle per core. */
export function avx2PeakGflops(cores: number, ghz?: number): { gflops: number; ghz: number } {
  const clock = ghz ?? cpuGhz();
  return { gflops: cores * 32 * clock, ghz: clock };
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
