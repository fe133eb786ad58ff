/**
 * Runs a detector over a COCO GT's images and streams its COCO results to disk, for `fasternet eval --model`.
 *
 * The stream OUT.jsonl (next to --out) starts with a header line (model and GT hashes, image folder, limit,
 * score threshold), then holds one line per finished image: {"image_id", "ms", "warm", "results": [...]}.
 * A line is the image's done-marker too, so an interrupted run resumed with `resume: true` skips the images
 * whose line is complete, drops a torn last line, and ends with the same results file as an uninterrupted
 * run. When all images are done, --out is written as a standard COCO results JSON array (image id order).
 */
import { closeSync, existsSync, fsyncSync, writeSync } from 'node:fs';
import { checkWritable, ioError, sha256File, writeFileAtomicSync } from '../core/fs.ts';
import { openStream, type StreamKind } from '../core/stream.ts';
import { basename, join, resolve } from 'node:path';
import { UserError } from '../core/errors.ts';
import { shardOf, type Shard } from '../core/options.ts';
import { detectInProcess } from './detect.ts';
import { loadDetector, releaseDetector } from '../heads/mask_rcnn.ts';
import { readJsonFile, type CocoDataset, type CocoImage, type CocoResult } from '../eval/index.ts';

export interface RunModelOptions {
  gt: string;
  images: string;
  model: string;
  /** Final COCO results JSON; the stream is `${out}l` for a .json out, else `${out}.jsonl`. */
  out: string;
  /** Only the first N images by id. */
  limit?: number;
  /** Only this shard's images: every count-th of the (limited) id-sorted list from the index-th. */
  shard?: Shard;
  /** Continue the stream of an interrupted run with the same settings. */
  resume?: boolean;
  scoreThreshold?: number;
  /** ONNX Runtime intra-op threads. */
  threads?: number;
  /** Called after each image with (done, total, msOfThisImage); `skipped` images are those from the stream. */
  onProgress?: (done: number, total: number, skipped: number) => void;
  /** Checked between images: when it returns true the run stops, keeping what is on disk. */
  shouldStop?: () => boolean;
  /** Called once per image that fails (one line naming it); without it the first failure ends the run. */
  onError?: (file: string, message: string) => void;
}

export interface Latency {
  /** Mean wall ms per image (decode, inference, post-processing, RLE) over images run warm. */
  meanMs: number;
  /** Images that went into meanMs (the first image each process runs is warm-up and left out). */
  images: number;
}

export interface RunModelOutcome {
  /** False when shouldStop ended the run early; --out is not written then. */
  complete: boolean;
  done: number;
  total: number;
  /** Images that failed (reported through onError; they have no detections and are not in the stream). */
  failed: number;
  streamPath: string;
  results: CocoResult[];
  latency: Latency;
}

interface StreamHeader {
  fasternet_eval_stream: 1;
  model: string;
  model_sha256: string;
  gt: string;
  gt_sha256: string;
  images: string;
  limit: number | null;
  score_thr: number | null;
  /** "I/N"; absent when the run is not sharded (streams written before --shard existed have no such key). */
  shard?: string;
}

interface ImageLine {
  image_id: number;
  ms: number;
  warm: boolean;
  results: CocoResult[];
}

export function streamPathFor(out: string): string {
  return out.endsWith('.json') ? `${out}l` : `${out}.jsonl`;
}

/** `<model basename without .onnx>_results.json` in the working directory. */
export function defaultOutPath(model: string): string {
  return `${basename(model).replace(/\.onnx$/i, '')}_results.json`;
}

/** The GT's images sorted by id (the first `limit` of them, then the shard's) and the GT restricted to those images. */
export function selectImages(gt: CocoDataset, limit?: number, shard?: Shard): { images: CocoImage[]; dataset: CocoDataset } {
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) throw new UserError(`--limit must be a positive integer, got ${limit}`);
  const images = shardOf([...gt.images].sort((a, b) => a.id - b.id).slice(0, limit ?? Infinity), shard);
  if (limit === undefined && shard === undefined) return { images, dataset: gt };
  const keep = new Set(images.map((im) => im.id));
  // Same stats as pycocotools with params.imgIds = these ids: GT and detections off them are not looked at.
  return { images, dataset: { ...gt, images, annotations: gt.annotations.filter((a) => keep.has(a.image_id)) } };
}

function isImageLine(v: unknown): v is ImageLine {
  const l = v as ImageLine;
  return typeof l === 'object' && l !== null && Number.isInteger(l.image_id) && typeof l.ms === 'number' && typeof l.warm === 'boolean' && Array.isArray(l.results);
}

/** Runs `model` over the GT's images (see the file comment); resumes from the stream when asked. */
export async function runModelOverImages(o: RunModelOptions, gtData?: CocoDataset): Promise<RunModelOutcome> {
  const dataset = gtData ?? (readJsonFile(o.gt, 'GT annotations') as CocoDataset);
  if (!Array.isArray(dataset?.images)) throw new UserError(`${o.gt} has no "images" list`);
  const { images } = selectImages(dataset, o.limit, o.shard);
  const files = imageFiles(images, o);
  const streamPath = streamPathFor(o.out);
  checkWritable(o.out, '--out');
  const byId = new Map<number, ImageLine>();
  const { fd, lines } = ioGuard(streamPath, () => openStream(streamPath, { ...streamHeader(o) }, o.resume, EVAL_STREAM(streamPath)));
  for (const l of lines) byId.set(l.image_id, l);
  const total = images.length;
  const skipped = images.filter((im) => byId.has(im.id)).length;
  let done = skipped;
  let complete = true;
  let failed = 0;
  try {
    o.onProgress?.(done, total, skipped);
    const todo = images.map((im, k) => ({ im, file: files[k] })).filter(({ im }) => !byId.has(im.id));
    const progress = (ok: boolean): void => {
      if (!ok) failed++;
      done++;
      o.onProgress?.(done, total, skipped);
    };
    if (todo.length) complete = await runImages(todo, o, fd, streamPath, byId, progress);
    ioGuard(streamPath, () => fsyncSync(fd));
  } finally {
    closeSync(fd);
  }
  const ordered = images.map((im) => byId.get(im.id)).filter((l): l is ImageLine => l !== undefined);
  const results = ordered.flatMap((l) => l.results);
  if (complete) writeFileAtomicSync(o.out, JSON.stringify(results), `the finished images are in ${streamPath}: ${RESUME_HINT}`);
  return { complete, done, total, failed, streamPath, results, latency: warmLatency(ordered) };
}

const RESUME_HINT = 'fix that, then rerun the same command with --resume to continue';

/** Runs `f`; an I/O error on the stream becomes one line naming it, with how to resume. */
function ioGuard<T>(streamPath: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw ioError(streamPath, err, RESUME_HINT);
  }
}

/** The image files of the GT's images in --images, all checked to exist before any work. */
function imageFiles(images: CocoImage[], o: RunModelOptions): string[] {
  const files = images.map((im) => {
    if (typeof im.file_name !== 'string') throw new UserError(`image ${im.id} in ${o.gt} has no file_name`);
    return join(o.images, im.file_name);
  });
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length) {
    throw new UserError(`image ${missing[0]} not found${missing.length > 1 ? ` (and ${missing.length - 1} more of ${files.length})` : ''}; check --images`);
  }
  return files;
}

function streamHeader(o: RunModelOptions): StreamHeader {
  return {
    fasternet_eval_stream: 1,
    model: resolve(o.model),
    model_sha256: sha256File(o.model, 'model'),
    gt: resolve(o.gt),
    gt_sha256: sha256File(o.gt, 'GT annotations'),
    images: resolve(o.images),
    limit: o.limit ?? null,
    score_thr: o.scoreThreshold ?? null,
    ...(o.shard ? { shard: `${o.shard.index}/${o.shard.count}` } : {}),
  };
}

const EVAL_STREAM = (path: string): StreamKind<ImageLine> => ({
  key: 'fasternet_eval_stream', kind: 'eval', label: path, elsewhere: 'use another --out', isLine: isImageLine,
});

/**
 * Detects on each image and appends its line to the stream; returns false when shouldStop ended the run. With
 * onError, one image's failure is its own: reported, left out of the stream (a --resume retries it), the run
 * goes on.
 */
async function runImages(
  todo: { im: CocoImage; file: string }[], o: RunModelOptions, fd: number, streamPath: string, byId: Map<number, ImageLine>,
  progress: (ok: boolean) => void,
): Promise<boolean> {
  const det = await loadDetector(o.model, { threads: o.threads });
  try {
    let warm = false;
    for (const { im, file } of todo) {
      if (o.shouldStop?.()) return false;
      const t0 = performance.now();
      let r;
      try {
        r = await detectInProcess(file, { model: det, scoreThreshold: o.scoreThreshold });
      } catch (err) {
        if (!o.onError) throw err;
        const msg = err instanceof UserError ? err.message : `failed: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
        o.onError(file, msg.includes(file) ? msg : `${file}: ${msg}`);
        progress(false);
        continue;
      }
      const ms = performance.now() - t0;
      const line: ImageLine = {
        image_id: im.id,
        ms,
        warm,
        results: r.detections.map((d) => ({ image_id: im.id, category_id: d.categoryId, bbox: d.bbox, score: d.score, segmentation: d.mask })),
      };
      // One write per image: a kill leaves at worst a torn last line, which a resume drops.
      ioGuard(streamPath, () => writeSync(fd, `${JSON.stringify(line)}\n`));
      byId.set(im.id, line);
      warm = true;
      progress(true);
    }
    return true;
  } finally {
    await releaseDetector(det);
  }
}

/** Mean ms of the images run warm (the first image each process runs is warm-up and left out). */
function warmLatency(lines: ImageLine[]): Latency {
  const warmMs = lines.filter((l) => l.warm).map((l) => l.ms);
  return { meanMs: warmMs.length ? warmMs.reduce((a, b) => a + b, 0) / warmMs.length : NaN, images: warmMs.length };
}

