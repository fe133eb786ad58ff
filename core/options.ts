/** Option values that arrive as strings (commander hands options over as strings), for the CLI and benchmarks. */
import { invalidParameterError } from './errors.ts';

/** A CLI option that must be a positive integer. */
export function positiveInt(name: string, v: string): number;
export function positiveInt(name: string, v: string | undefined): number | undefined;
export function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw invalidParameterError(name, 'a positive integer', v);
  return n;
}

/** `--threads N|auto`; 1 when absent. */
export function parseThreads(v: string | undefined): number | 'auto' {
  if (v === undefined) return 1;
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw invalidParameterError('--threads', 'a positive integer or auto', v);
  return n;
}
