/** Option values that arrive as strings (commander hands options over as strings), for the CLI and benchmarks. */
import { invalidParameterError } from './errors.ts';

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
