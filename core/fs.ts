/**
 * Output files that are never torn: each is written to a temporary file in the same folder, flushed to disk
 * (fsync) and renamed over the final path, so a kill, a full disk or an I/O error leaves the old file or none,
 * never a partial one; the temporary file is removed on failure. I/O errors become one UserError line naming
 * the path. `checkWritable` tries the folder before any work starts (a read-only place fails at once, not
 * after an hour of inference).
 */
import { closeSync, constants, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, accessSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { UserError } from './errors.ts';

/** A one-line refusal for an I/O error on `path`; `hint` (e.g. how to resume) is appended. */
export function ioError(path: string, err: unknown, hint?: string): UserError {
  if (err instanceof UserError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const why = code === 'ENOSPC' ? 'ENOSPC (disk full)' : code === 'EROFS' ? 'EROFS (read-only file system)'
    : code === 'EACCES' || code === 'EPERM' ? `${code} (permission denied)` : code === 'ENOENT' ? 'ENOENT (no such folder)'
    : code ?? String((err as Error)?.message ?? err).split('\n')[0];
  return new UserError(`cannot write ${path}: ${why}${hint ? `; ${hint}` : ''}`);
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes all of `data` to `fd` (writeSync may write less than asked). */
function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

/**
 * Writes `data` to `path` atomically (temp file in the same folder, fsync, rename). Throws a UserError naming
 * `path` (with `hint`) on any I/O error, after removing the temporary file.
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, hint?: string): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    if (existsAsDirectory(path)) throw new UserError(`cannot write ${path}: it is a folder`);
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
    writeAll(fd, bytes);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
    syncFolder(path);
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing: the write error is the one to report
      }
    }
    rmSync(tmp, { force: true });
    throw ioError(path, err, hint);
  }
}

/** Async form of writeFileAtomicSync (the work is synchronous: outputs are written once, at the end). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, hint?: string): Promise<void> {
  writeFileAtomicSync(path, data, hint);
}

function existsAsDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Makes the rename itself durable (best effort: some file systems refuse fsync on a folder). */
function syncFolder(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dirname(path), 'r');
    fsyncSync(fd);
  } catch {
    // durability of the folder entry only; the file's bytes are already synced
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Checks, before any work, that `path` can be written: its folder exists and accepts a new file (tried for
 * real, since permission bits do not tell a read-only mount, and root ignores them). `-` (stdout) passes.
 */
export function checkWritable(path: string, what = 'output'): void {
  if (path === '-') return;
  if (existsAsDirectory(path)) throw new UserError(`cannot write ${what} ${path}: it is a folder`);
  const tmp = tempPathFor(path);
  try {
    accessSync(dirname(path), constants.W_OK);
    closeSync(openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666));
  } catch (err) {
    throw ioError(path, err);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** checkWritable for a folder that will receive files (created when missing). */
export function checkWritableFolder(dir: string): void {
  checkWritable(join(dir, '.fasternet-write-test'), 'output');
}

/** SHA-256 (hex) of a file's bytes, e.g. a model's, so that a resumed run can tell it is the same file. */
export function sha256File(path: string, what: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    throw new UserError(`cannot read ${what} ${path}`);
  }
}
