/**
 * Where the CLI writes: a file option given `-` means stdout (the command's messages then go to stderr, so the
 * data can be piped), and a file's folder is checked before any work starts, so that a typo fails at once with
 * nothing written rather than after an hour of inference.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UserError } from './errors.ts';
import { checkWritable, writeFileAtomicSync } from './fs.ts';

/** `-`: write to stdout. */
export const STDOUT = '-';

/**
 * Refuses (UserError) an output file whose folder does not exist or that names a folder. `createdDir`: a folder
 * the command creates itself before writing (detect --out), accepted as the file's folder.
 */
export function checkOutputFile(option: string, path: string | undefined, createdDir?: string): void {
  if (path === undefined || path === STDOUT) return;
  const dir = dirname(resolve(path));
  if (createdDir !== undefined && dir === resolve(createdDir)) return;
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new UserError(`${option} ${path}: folder ${dir} does not exist`);
  }
  if (!isDir) throw new UserError(`${option} ${path}: ${dir} is not a folder`);
  try {
    if (statSync(path).isDirectory()) throw new UserError(`${option} ${path} is a folder; give a file name`);
  } catch (err) {
    if (err instanceof UserError) throw err;
  }
  // The folder exists: now try it for real (a read-only mount or a full quota fails here, before any work).
  checkWritable(path, option);
}

/** Writes `text` to the file `path`, or to stdout for `-`; a failure is a UserError naming the path. */
export function writeOutput(option: string, path: string, text: string): void {
  if (path === STDOUT) {
    process.stdout.write(text);
    return;
  }
  // Atomic (temp file, fsync, rename): a kill or a full disk leaves the old file or none, never a torn one.
  writeFileAtomicSync(path, text);
}

/** Where a command's progress lines go: stderr when stdout carries data (`-`), nowhere with --quiet. */
export function messages(o: { quiet?: boolean; dataOnStdout: boolean }): (line: string) => void {
  if (o.quiet) return () => undefined;
  const stream = o.dataOnStdout ? process.stderr : process.stdout;
  return (line) => stream.write(`${line}\n`);
}
