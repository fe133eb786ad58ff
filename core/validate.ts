/**
 * Checks untrusted structured data (model metadata, detector configs) against a zod schema and turns the
 * first problem into one UserError line naming the field: "m.onnx: detector config: rpn.nmsThresh: Too big:
 * expected number to be <=1".
 */
import type { z } from 'zod';
import { UserError } from './errors.ts';

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const [first, ...rest] = r.error.issues;
  const path = fieldPath(first.path);
  const more = rest.length ? ` (and ${rest.length} more problem${rest.length === 1 ? '' : 's'})` : '';
  throw new UserError(`${what}: ${path ? `${path}: ` : ''}${first.message}${more}`.replace(/\s*\n\s*/g, ' '));
}
