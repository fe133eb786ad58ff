/** Option values that arrive as strings (commander hands options over as strings), for the CLI and benchmarks. */
import { UserError, invalidParameterError } from './errors.ts';

/** A CLI option that must be a positive integer (at most `max`). */
export function positiveInt(name: string, v: string, max?: number): number;
export function positiveInt(name: string, v: string | undefined, max?: number): number | undefined;
export function positiveInt(name: string, v: string | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw invalidParameterError(name, max === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `an integer in [1, ${max}]`, v);
  return n;
}

/**
 * Most threads (or workers) any option may ask for: each costs memory (an ONNX Runtime session or a worker
 * thread), and `--threads 100000` once reached 7.8 GB and hung.
 */
export const MAX_THREADS = 256;

/** `--threads N|auto`; 1 when absent. */
export function parseThreads(v: string | undefined): number | 'auto' {
  if (v === undefined) return 1;
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) throw invalidParameterError('--threads', `an integer in [1, ${MAX_THREADS}] or auto`, v);
  return n;
}

export interface Shard { index: number; count: number }

/**
 * `--shard I/N` (0 <= I < N), I counting from 0 as Kubernetes' JOB_COMPLETION_INDEX and Slurm's
 * SLURM_ARRAY_TASK_ID (with --array=0-N-1) do; `auto/N` reads I from whichever of the two is set.
 */
export function parseShard(v: string | undefined, env: NodeJS.ProcessEnv = process.env): Shard | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+|auto)\/(\d+)$/.exec(v.trim());
  if (!m) throw invalidParameterError('--shard', 'I/N with 0 <= I < N (I may be auto)', v);
  const count = Number(m[2]);
  let i = m[1];
  if (i === 'auto') {
    const from = ['JOB_COMPLETION_INDEX', 'SLURM_ARRAY_TASK_ID'].find((k) => env[k] !== undefined && env[k] !== '');
    if (!from) throw new UserError(`--shard ${v}: neither JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID is set; give the index, e.g. --shard 0/${count}`);
    i = env[from]!;
    if (!/^\d+$/.test(i)) throw invalidParameterError(from, 'a non-negative integer', i);
  }
  const index = Number(i);
  if (!(count >= 1 && index < count)) throw invalidParameterError('--shard', 'I/N with 0 <= I < N (I may be auto)', v);
  return { index, count };
}

/** This shard's share of `items`: every N-th from the I-th, so shards stay balanced along a sorted list. */
export function shardOf<T>(items: T[], shard: Shard | undefined): T[] {
  return shard ? items.filter((_, k) => k % shard.count === shard.index) : items;
}
