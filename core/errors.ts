/**
 * Errors meant for the user: the CLI prints their message as one line and exits non-zero, never a stack.
 * Library code throws these for bad input (missing files, malformed JSON, wrong shapes) so that callers can
 * tell a user mistake from a bug.
 */
export class UserError extends Error {
  override name = 'UserError';
}

export function userError(message: string): never {
  throw new UserError(message);
}

/** A CLI option that must be a positive integer (commander hands options over as strings). */
export function positiveInt(name: string, v: string): number;
export function positiveInt(name: string, v: string | undefined): number | undefined;
export function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer, got "${v}"`);
  return n;
}
