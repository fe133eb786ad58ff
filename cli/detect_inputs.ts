/**
 * What `fasternet detect` runs on and where its results go beyond one process: folders expanded to their
 * images, `--gt ANN.json` mapping files to the GT's image ids, and the `--jsonl` stream (one line per finished
 * image) that `--resume` continues. (`--shard I/N` is parsed in core/options.ts, shared with eval --model.)
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { UserError } from '../core/errors.ts';
import { openStream } from '../core/stream.ts';
import { readJsonFile, type CocoDataset } from '../eval/index.ts';

/** Extensions taken from a folder (what sharp decodes); other files there are left alone. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif', '.bmp'];

function isImageName(name: string): boolean {
  const dot = name.lastIndexOf('.');
  return dot > 0 && IMAGE_EXTENSIONS.includes(name.slice(dot).toLowerCase());
}

function listImages(dir: string, recursive: boolean): string[] {
  const out: string[] = [];
  // Byte order of the names (not locale order), so every machine and shard sees the same list.
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive) out.push(...listImages(path, true));
    } else if (isImageName(e.name)) out.push(path);
  }
  return out;
}

/**
 * The inputs with each folder replaced by its images (sorted by name; subfolders with `recursive`). Other
 * arguments stay as given: a missing file fails later as one bad input. A folder without images is a usage error.
 */
export function expandInputs(args: string[], recursive = false): string[] {
  return args.flatMap((a) => {
    let dir = false;
    try {
      dir = statSync(a).isDirectory();
    } catch {
      return [a];
    }
    if (!dir) return [a];
    const found = listImages(a, recursive);
    if (found.length === 0) {
      throw new UserError(`${a} holds no images (${IMAGE_EXTENSIONS.join(' ')})${recursive ? '' : '; --recursive also looks in its subfolders'}`);
    }
    return found;
  });
}

/**
 * File -> image id from a COCO GT: an input matches the image whose file_name is its path's tail (whole path
 * components). Two images matching one input is refused rather than guessed.
 */
export function gtImageIds(gtPath: string): (file: string) => number {
  const gt = readJsonFile(gtPath, 'GT annotations') as CocoDataset;
  if (!Array.isArray(gt?.images)) throw new UserError(`--gt ${gtPath} has no "images" list`);
  const byName = new Map<string, number[]>();
  for (const im of gt.images) {
    if (typeof im.file_name !== 'string') throw new UserError(`--gt ${gtPath}: image ${im.id} has no file_name`);
    const name = im.file_name.split(/[\\/]/).filter((p) => p !== '' && p !== '.').join('/');
    byName.set(name, [...(byName.get(name) ?? []), im.id]);
  }
  return (file: string) => {
    const parts = relative('.', resolve(file)).split(sep).filter((p) => p !== '' && p !== '..');
    const ids = new Set<number>();
    let matched = '';
    for (let k = parts.length - 1; k >= 0; k--) {
      const tail = parts.slice(k).join('/');
      for (const id of byName.get(tail) ?? []) { ids.add(id); matched = tail; }
    }
    if (ids.size === 0) throw new UserError(`${file} is not an image of --gt ${gtPath} (no file_name matches its name)`);
    if (ids.size > 1) throw new UserError(`${file} matches ${ids.size} images of --gt ${gtPath} (file_name ${matched}...); give the file by a longer path`);
    return [...ids][0];
  };
}

/** The settings a stream was made with; --resume refuses a stream whose settings differ. */
export interface DetectStreamHeader {
  fasternet_detect_stream: 1;
  model: string;
  model_sha256: string;
  score_thr: number;
  classes: Array<string | number> | null;
  max_det: number | null;
  gt: string | null;
  shard: string | null;
}

/** One finished image: its entries exactly as --json writes them. */
export interface DetectStreamLine { file: string; results: unknown[] }

function isDetectLine(v: unknown): v is DetectStreamLine {
  const l = v as DetectStreamLine;
  return typeof l === 'object' && l !== null && typeof l.file === 'string' && Array.isArray(l.results);
}

/** Opens the --jsonl stream (core/stream.ts); the lines already there by file. */
export function openDetectStream(path: string, header: DetectStreamHeader, resume: boolean): { fd: number; done: Map<string, DetectStreamLine> } {
  const { fd, lines } = openStream(path, { ...header }, resume, {
    key: 'fasternet_detect_stream', kind: 'detect', label: `--jsonl ${path}`, elsewhere: 'name another file', isLine: isDetectLine,
  });
  return { fd, done: new Map(lines.map((l) => [l.file, l])) };
}
