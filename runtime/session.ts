/**
 * onnxruntime-node sessions: one place that picks threads and optimization level, and converts between ORT
 * tensors and the project's plain Tensor type.
 */
import * as ort from 'onnxruntime-node';
import { access, constants } from 'node:fs/promises';
import { UserError, invalidParameterError } from '../core/errors.ts';
import { MAX_THREADS } from '../core/options.ts';
import type { FloatTensor, QuantizedTensor } from '../core/tensor.ts';
import type { QuantParams } from './metadata.ts';

export interface SessionOptions {
  /** Threads inside one op (ORT intraOpNumThreads); default 2, the cores this project is sized for. */
  threads?: number;
  /** ORT graph optimization level; default 'all' (constant folding plus Conv+Add+Relu, Gelu, ... fusions). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write the optimized graph here (for inspecting what ORT fused). */
  optimizedModelPath?: string;
  /** Turn on ORT's per-op profiler; the file name prefix. */
  profilePrefix?: string;
  /**
   * ORT's CPU memory arena (default on). The arena keeps the high-water mark of every run's activations for
   * reuse; detection models turn it off, since their activations at 800x1333 run to hundreds of MB.
   */
  memArena?: boolean;
}

export type Session = ort.InferenceSession;

export async function createSession(model: string | Uint8Array, o: SessionOptions = {}): Promise<Session> {
  const threads = o.threads ?? 2;
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) throw invalidParameterError('threads', `an integer in [1, ${MAX_THREADS}]`, threads);
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: o.optimization ?? 'all',
    executionProviders: ['cpu'],
    enableCpuMemArena: o.memArena ?? true,
  };
  // ORT's pool threads otherwise spin for a while after each run, taking the cores from the TypeScript stages
  // (RoIAlign and its helper thread, NMS) that follow every session run in a detector: measured on FasterNet-S
  // int8, NMS 31-40 -> 32-33 ms, box head 42-52 -> 41-43 ms, end to end about 3% faster, same ORT times.
  options.extra = { session: { intra_op: { allow_spinning: '0' } } };
  if (o.optimizedModelPath) options.optimizedModelFilePath = o.optimizedModelPath;
  if (o.profilePrefix) { options.enableProfiling = true; options.profileFilePrefix = o.profilePrefix; }
  if (typeof model === 'string') {
    // By path, ORT reads the file itself: no second copy of the weights in the JS heap while it loads.
    try {
      await access(model, constants.R_OK);
    } catch {
      throw new UserError(`cannot read model ${model}`);
    }
  }
  try {
    // Two calls, not one: ORT's create() overloads take a path and bytes separately.
    return typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
  } catch (err) {
    throw new UserError(`cannot load ONNX model${typeof model === 'string' ? ` ${model}` : ''}: ${(err as Error).message.split('\n')[0]}`);
  }
}

export function toOrt(t: FloatTensor): ort.Tensor {
  return new ort.Tensor('float32', t.data, t.shape);
}

function ortFeeds(feeds: Record<string, FloatTensor>): Record<string, ort.Tensor> {
  const r: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) r[k] = toOrt(v);
  return r;
}

/** Runs the session on float inputs; returns every output (or those named) as float tensors. */
export async function runSession(
  session: Session, feeds: Record<string, FloatTensor>, outputNames?: string[],
): Promise<Record<string, FloatTensor>> {
  const res = outputNames ? await session.run(ortFeeds(feeds), outputNames) : await session.run(ortFeeds(feeds));
  const out: Record<string, FloatTensor> = {};
  for (const [k, v] of Object.entries(res)) {
    if (v.type !== 'float32') throw new Error(`output ${k} is ${v.type}, expected float32`);
    out[k] = { shape: [...v.dims], data: v.data as Float32Array };
  }
  return out;
}

/**
 * runSession for a model whose metadata names uint8 outputs (`quant`, from uint8Outputs): those come back as
 * QuantizedTensors, every other output must be float32.
 */
export async function runSessionMixed(
  session: Session, feeds: Record<string, FloatTensor>, quant: Readonly<Record<string, QuantParams>>,
): Promise<{ floats: Record<string, FloatTensor>; quantized: Record<string, QuantizedTensor> }> {
  const res = await session.run(ortFeeds(feeds));
  const floats: Record<string, FloatTensor> = {};
  const quantized: Record<string, QuantizedTensor> = {};
  for (const [k, v] of Object.entries(res)) {
    const q = quant[k];
    if (v.type === 'uint8' && q) quantized[k] = { shape: [...v.dims], data: v.data as Uint8Array, scale: q.scale, zeroPoint: q.zeroPoint };
    else if (v.type === 'float32') floats[k] = { shape: [...v.dims], data: v.data as Float32Array };
    else throw new UserError(`model output ${k} is ${v.type}${v.type === 'uint8' ? ' but the model metadata gives it no scale and zero point' : ', expected float32'}`);
  }
  return { floats, quantized };
}
