/**
 * Resumable JSON-lines streams (`detect --jsonl`, `eval --model`'s `<out>l`): a header line with the run's
 * settings, then one line per finished image, each written in one write. A kill leaves at worst one torn last
 * line, which a resume cuts off; a resume with other settings is refused, never mixed.
 */
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { UserError } from './errors.ts';

/** How one kind of stream is recognised and named in messages. */
export interface StreamKind<L> {
  /** The header key marking the kind, e.g. 'fasternet_eval_stream' (value 1). */
  key: string;
  /** 'eval', 'detect': in "is not a fasternet <kind> stream". */
  kind: string;
  /** How messages name the stream, e.g. `--jsonl out.jsonl` or the path itself. */
  label: string;
  /** What to do instead of reusing a foreign file, e.g. 'use another --out'. */
  elsewhere: string;
  isLine: (v: unknown) => v is L;
}

/** Refuses, before any work, a run that openStream would refuse later: an earlier stream at `path` without `resume`. */
export function checkStreamFree(path: string, resume: boolean | undefined, label = path): void {
  if (!resume && existsSync(path) && statSync(path).size > 0) {
    throw new UserError(`${label} holds an earlier run: rerun with --resume to continue it, or delete it to start over`);
  }
}

/**
 * Opens `path` for appending lines: a new (or empty) stream gets `header`; an existing one needs `resume` and
 * the same values for every key of `header`, and is cut after its last complete line. Returns the file
 * descriptor and the lines already there.
 */
export function openStream<L>(path: string, header: Record<string, unknown>, resume: boolean | undefined, k: StreamKind<L>): { fd: number; lines: L[] } {
  if (!(existsSync(path) && statSync(path).size > 0)) {
    const fd = openSync(path, 'w');
    writeSync(fd, `${JSON.stringify(header)}\n`);
    return { fd, lines: [] };
  }
  checkStreamFree(path, resume, k.label);
  const prev = readStream(path, k);
  for (const key of Object.keys(header)) {
    // JSON text equality: the settings are plain JSON values (numbers, strings, lists, null).
    if (JSON.stringify(prev.header[key]) !== JSON.stringify(header[key])) {
      const why = `${key} was ${JSON.stringify(prev.header[key])}, now ${JSON.stringify(header[key])}`;
      throw new UserError(`cannot --resume ${path}: it was made with other settings (${why}); delete it to start over`);
    }
  }
  const fd = openSync(path, 'r+');
  ftruncateSync(fd, prev.goodBytes);
  closeSync(fd);
  return { fd: openSync(path, 'a'), lines: prev.lines };
}

/**
 * An existing stream's header and complete lines, and the byte length of the good part (everything up to the
 * last newline that ends a parsable line), so that a torn tail can be cut off.
 */
function readStream<L>(path: string, k: StreamKind<L>): { header: Record<string, unknown>; lines: L[]; goodBytes: number } {
  const buf = readFileSync(path);
  const lines: L[] = [];
  let header: unknown;
  let start = 0;
  while (start < buf.length) {
    const nl = buf.indexOf(10, start);
    if (nl < 0) break; // torn last line
    let v: unknown;
    try {
      v = JSON.parse(buf.toString('utf8', start, nl));
    } catch {
      break; // a torn line followed by a newline can only be the last thing written; drop it and what follows
    }
    if (header === undefined) header = v;
    else if (k.isLine(v)) lines.push(v);
    else throw new UserError(`${path}: line ${lines.length + 2} is not an image record (${JSON.stringify(v)?.slice(0, 40)}); delete the stream to start over`);
    start = nl + 1;
  }
  if (typeof header !== 'object' || header === null || (header as Record<string, unknown>)[k.key] !== 1) {
    throw new UserError(`${k.label} is not a fasternet ${k.kind} stream; delete it or ${k.elsewhere}`);
  }
  return { header: header as Record<string, unknown>, lines, goodBytes: start };
}
