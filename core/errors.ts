/**
 * Errors meant for the user: the CLI prints their message as one line and exits non-zero, never a stack.
 * Library code throws these for bad input (missing files, malformed JSON, wrong shapes) so that callers can
 * tell a user mistake from a bug.
 */
export class UserError extends Error {
  override name = 'UserError';
}

/** A bad parameter value, worded one way everywhere (as sharp's invalidParameterError): name, expected, got. */
export function invalidParameterError(name: string, expected: string, actual: unknown): UserError {
  return new UserError(`${name} must be ${expected}, got ${describeValue(actual)}`);
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  return typeof v === 'object' ? `an object (${Object.prototype.toString.call(v).slice(8, -1)})` : typeof v;
}

/** The user stopped a run (Ctrl-C); the CLI exits 130. The message says how to continue. */
export class InterruptedError extends UserError {
  override name = 'InterruptedError';
}
