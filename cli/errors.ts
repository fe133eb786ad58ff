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
