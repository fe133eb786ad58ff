/**
 * Library entry point: `detect(image, { model })` -> instances with boxes, scores, labels (with names and COCO
 * category ids) and masks as COCO RLE (bitmaps on request).
 *
 *   const { detections } = await detect('photo.jpg', { model: 'mask_rcnn.onnx', scoreThreshold: 0.5 });
 *
 * Models are loaded once per path and shared; calls on one model are queued (sessions are not re-entered),
 * so concurrent calls are safe. `worker: true` runs decoding and inference in a worker_thread (one per model
 * path, reused), keeping the event loop free; results are the same.
 */
import type { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { decodeImage, loadSharp } from '../image/decode.ts';
import type { ImageU8 } from '../core/tensor.ts';
import { toCocoRle, area as rleArea, type CocoRle, type RLE } from '../postprocess/mask.ts';
import { toFullMask, type PastedMask } from '../postprocess/paste_masks.ts';
import { loadDetector, releaseDetector, runDetector, type Detector } from '../heads/mask_rcnn.ts';
import { UserError, invalidParameterError } from '../core/errors.ts';
import { MAX_THREADS } from '../core/options.ts';
import { siblingModule, startModuleWorker } from '../core/worker.ts';
import { packageFile } from '../core/package.ts';

/** A file path, encoded image bytes (JPEG, PNG, ...), or raw interleaved RGB pixels. */
export type ImageInput = string | Uint8Array | { data: Uint8Array; width: number; height: number; channels?: number };

export interface DetectOptions {
  /**
   * Path of a model written by `fasternet convert --flavor torchvision|mmdet`, or a loaded Detector. Default:
   * the bundled FasterNet-T0 model trained on Fashion-MNIST canvases (DEFAULT_MODEL_PATH).
   */
  model?: string | Detector;
  /** Keep detections scoring at least this (default: the model's 0.05). */
  scoreThreshold?: number;
  /** At most this many detections (default: the model's 100). */
  maxDetections?: number;
  /** Keep only these classes: names ('person') or labels as reported (torchvision: COCO ids). */
  classes?: Array<string | number>;
  /** Also return each mask as a full-image row-major 0/1 bitmap. */
  bitmaps?: boolean;
  /** Run in a worker thread. */
  worker?: boolean;
  /** ONNX Runtime intra-op threads of a model loaded by this call (default 2). */
  threads?: number;
  /** Filled with milliseconds per stage. */
  timings?: Record<string, number>;
}

export interface Detection {
  /** [x1, y1, x2, y2] in image pixels. */
  box: [number, number, number, number];
  /** COCO [x, y, width, height]. */
  bbox: [number, number, number, number];
  score: number;
  /** The label as the framework reports it (torchvision: 1..90 COCO ids; mmdet: 0-based class). */
  label: number;
  labelName: string;
  /** COCO-results category_id. */
  categoryId: number;
  /** COCO compressed RLE of the binary mask. */
  mask: CocoRle;
  /** Pixels in the mask. */
  area: number;
  /** Row-major height x width 0/1 mask, when `bitmaps` was asked for. */
  bitmap?: Uint8Array;
}

export interface DetectResult {
  width: number;
  height: number;
  detections: Detection[];
  /**
   * The input's EXIF orientation (2..8) when it was NOT applied (torchvision flavor on a path or bytes, as PIL
   * reads it): the detections are then in the stored pixels' coordinates, not the displayed ones.
   */
  unappliedOrientation?: number;
}

/** The bundled default model, resolved from this package's files (not the working directory). */
// The int8 model: 1.6x faster than its float original and as accurate on the val split (README, int8 models).
export const DEFAULT_MODEL_PATH = packageFile('models/fasternet_t0_canvases.int8.onnx');

/** `model`, or the bundled default when none is named (a clear error when that file is missing). */
export function resolveModel<M extends string | Detector>(model: M | undefined): M | string {
  if (model !== undefined) return model;
  if (!existsSync(DEFAULT_MODEL_PATH)) {
    throw new UserError(`no model given and the bundled default model is missing (${DEFAULT_MODEL_PATH}); pass a model from \`fasternet convert\``);
  }
  return DEFAULT_MODEL_PATH;
}

const models = new Map<string, Promise<Detector>>();

/** A model loaded once per path (and thread count). */
export function getDetector(path: string, threads?: number): Promise<Detector> {
  const key = `${path}\0${threads ?? ''}`;
  let d = models.get(key);
  if (!d) {
    d = loadDetector(path, { threads });
    models.set(key, d);
    d.catch(() => models.delete(key));
  }
  return d;
}

/** Releases the models that detect() loaded by path (a later call loads them again). */
export async function releaseDetectModels(): Promise<void> {
  const all = [...models.values()];
  models.clear();
  await Promise.all(all.map(async (d) => releaseDetector(await d).catch(() => undefined)));
}

/**
 * `autoOrient`: apply the EXIF orientation. mmdet loads with cv2.imdecode(IMREAD_COLOR), which rotates by
 * EXIF (checked on OpenCV 4.6); torchvision users' PIL.Image.open does not.
 */
async function toImage(image: ImageInput, autoOrient = false): Promise<ImageU8 & { unappliedOrientation?: number }> {
  if (typeof image === 'string' || image instanceof Uint8Array) {
    const img = await decodeImage(image, { autoOrient });
    if (autoOrient) return img;
    const orientation = await (await loadSharp())(image).metadata().then((m) => m.orientation ?? 1, () => 1);
    return orientation > 1 ? { ...img, unappliedOrientation: orientation } : img;
  }
  checkImage(image);
  return { data: image.data, width: image.width, height: image.height, channels: 3 };
}

/** Largest side of a raw pixel buffer (as image/decode.ts bounds decoded images). */
const MAX_RAW_SIDE = 65_535;

/** detect()'s image argument, before any work. */
function checkImage(image: unknown): asserts image is ImageInput {
  if (typeof image === 'string' || image instanceof Uint8Array) return;
  if (image === null || typeof image !== 'object' || !('data' in image)) {
    throw invalidParameterError('image', 'a file path, encoded image bytes (Uint8Array) or raw RGB pixels { data, width, height }', image);
  }
  const { data, width, height, channels = 3 } = image as { data: unknown; width: unknown; height: unknown; channels?: unknown };
  if (channels !== 3) throw invalidParameterError('image.channels', '3 (raw images are interleaved RGB)', channels);
  for (const [k, v] of [['image.width', width], ['image.height', height]] as const) {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_RAW_SIDE) throw invalidParameterError(k, `an integer in [1, ${MAX_RAW_SIDE}]`, v);
  }
  const need = (width as number) * (height as number) * 3;
  if (!(data instanceof Uint8Array)) throw invalidParameterError('image.data', `a Uint8Array of ${width}x${height}x3 RGB bytes`, data);
  if (data.length !== need) throw invalidParameterError('image.data', `${need} bytes (${width}x${height} RGB)`, `${data.length} bytes`);
}

function isDetector(m: object): m is Detector {
  const d = m as Partial<Detector>;
  return typeof d.cfg === 'object' && d.cfg !== null && [d.main, d.boxHead, d.maskHead].every((s) => typeof s?.run === 'function');
}

/** Every option's type and range, before any work: one UserError naming the option, expected and got. */
function checkOptions(o: DetectOptions): void {
  if (o === null || typeof o !== 'object') throw invalidParameterError('options', 'an object', o);
  if (o.model !== undefined && !(typeof o.model === 'string' || (typeof o.model === 'object' && o.model !== null && isDetector(o.model)))) {
    throw invalidParameterError('options.model', 'a .onnx path or a detector from loadDetector()', o.model);
  }
  if (o.scoreThreshold !== undefined && !(typeof o.scoreThreshold === 'number' && o.scoreThreshold >= 0 && o.scoreThreshold <= 1)) {
    throw invalidParameterError('options.scoreThreshold', 'a number in [0, 1]', o.scoreThreshold);
  }
  if (o.maxDetections !== undefined && !(Number.isInteger(o.maxDetections) && o.maxDetections >= 0 && o.maxDetections <= 10_000)) {
    throw invalidParameterError('options.maxDetections', 'an integer in [0, 10000]', o.maxDetections);
  }
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1 && o.threads <= MAX_THREADS)) {
    throw invalidParameterError('options.threads', `an integer in [1, ${MAX_THREADS}]`, o.threads);
  }
  if (o.classes !== undefined && !(Array.isArray(o.classes) && o.classes.every((c) => typeof c === 'string' || Number.isInteger(c)))) {
    throw invalidParameterError('options.classes', 'an array of class names or integer labels', o.classes);
  }
  for (const k of ['bitmaps', 'worker'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw invalidParameterError(`options.${k}`, 'a boolean', o[k]);
  }
  if (o.timings !== undefined && (o.timings === null || typeof o.timings !== 'object')) throw invalidParameterError('options.timings', 'an object', o.timings);
}

/** Runs `image` through the model in this thread. */
export async function detectInProcess(image: ImageInput, o: DetectOptions = {}): Promise<DetectResult> {
  checkImage(image);
  checkOptions(o);
  const model = resolveModel(o.model);
  const det = typeof model === 'string' ? await getDetector(model, o.threads) : model;
  const img = await toImage(image, det.cfg.flavor === 'mmdet');
  const cfg = det.cfg;
  const keepLabel = classFilter(o.classes, cfg.classNames);
  const raw = await runDetector(det, img, {
    timings: o.timings,
    boxHead: { scoreThresh: o.scoreThreshold, maxDetections: o.maxDetections, keepLabel },
  });
  const { width: w, height: h } = img;
  const detections: Detection[] = [];
  for (let i = 0; i < raw.scores.length; i++) {
    const m = raw.masks[i];
    const rle = encodeCropped(m, h, w);
    const bitmap = o.bitmaps ? toFullMask(m, h, w) : undefined;
    const b = raw.boxes.subarray(i * 4, i * 4 + 4);
    const label = raw.labels[i];
    detections.push({
      box: [b[0], b[1], b[2], b[3]],
      bbox: [b[0], b[1], b[2] - b[0], b[3] - b[1]],
      score: raw.scores[i],
      label,
      labelName: cfg.classNames[label] ?? String(label),
      categoryId: cfg.categoryIds[label] ?? label,
      mask: toCocoRle(rle),
      area: rleArea(rle),
      ...(bitmap ? { bitmap } : {}),
    });
  }
  return { width: w, height: h, detections, ...(img.unappliedOrientation ? { unappliedOrientation: img.unappliedOrientation } : {}) };
}

/**
 * COCO RLE (column-major runs, zeros first) of a full h x w mask that is zero outside the crop `p`, read from
 * the crop alone: the same counts as encode(toFullMask(p)) without touching the other h*w pixels.
 */
export function encodeCropped(p: PastedMask, h: number, w: number): RLE {
  const counts: number[] = [];
  let cur = 0;
  let run = p.x0 * h; // whole zero columns left of the crop
  const push = (v: number, n: number) => {
    if (n === 0) return;
    if (v === cur) run += n;
    else {
      counts.push(run);
      cur = v;
      run = n;
    }
  };
  for (let x = 0; x < p.width; x++) {
    push(0, p.y0);
    for (let y = 0; y < p.height; y++) push(p.data[y * p.width + x] ? 1 : 0, 1);
    push(0, h - p.y0 - p.height);
  }
  push(0, (w - p.x0 - p.width) * h);
  counts.push(run);
  return { h, w, counts: Uint32Array.from(counts) };
}

/** Label predicate for `classes` (names or labels), or undefined for all. */
function classFilter(classes: Array<string | number> | undefined, names: string[]): ((label: number) => boolean) | undefined {
  if (!classes) return undefined;
  const labels = new Set<number>();
  for (const c of classes) {
    if (typeof c === 'number') labels.add(c);
    else {
      const i = names.indexOf(c);
      if (i < 0) throw new UserError(`unknown class '${c}' (the model's classes: ${names.filter((n) => n !== 'N/A' && n !== '__background__').slice(0, 8).join(', ')}, ...)`);
      labels.add(i);
    }
  }
  return (l) => labels.has(l);
}

// ---------------------------------------------------------------------------------------------------------
// Worker mode

interface Pending { resolve: (r: DetectResult) => void; reject: (e: Error) => void }
interface WorkerHandle { worker: Worker; pending: Map<number, Pending>; next: number }

const workers = new Map<string, WorkerHandle>();

function workerFor(model: string, threads?: number): WorkerHandle {
  const key = `${model}\0${threads ?? ''}`;
  let h = workers.get(key);
  if (h) return h;
  const worker = startModuleWorker(siblingModule('./detect_worker', import.meta.url));
  worker.unref();
  const handle: WorkerHandle = { worker, pending: new Map(), next: 0 };
  worker.on('message', (msg: { id: number; result?: DetectResult; error?: { message: string; user: boolean } }) => {
    const p = handle.pending.get(msg.id);
    if (!p) return;
    handle.pending.delete(msg.id);
    if (handle.pending.size === 0) worker.unref();
    if (msg.error) p.reject(msg.error.user ? new UserError(msg.error.message) : new Error(msg.error.message));
    else p.resolve(msg.result!);
  });
  worker.on('error', (err) => {
    for (const p of handle.pending.values()) p.reject(err);
    handle.pending.clear();
    workers.delete(key);
  });
  workers.set(key, handle);
  return handle;
}

/** Stops the worker threads started by `worker: true` calls. */
export async function closeDetectWorkers(): Promise<void> {
  const all = [...workers.values()];
  workers.clear();
  await Promise.all(all.map((h) => h.worker.terminate()));
}

/**
 * Frees what detect() keeps between calls: its worker threads and the models it loaded by path. A later
 * call starts and loads them again; call it before exiting a long-lived process, or to reclaim memory.
 */
export async function release(): Promise<void> {
  await closeDetectWorkers();
  await releaseDetectModels();
}

/** Detects instances in one image (see module comment). */
export async function detect(image: ImageInput, options: DetectOptions = {}): Promise<DetectResult> {
  checkImage(image);
  checkOptions(options);
  if (!options.worker) return detectInProcess(image, options);
  const model = resolveModel(options.model);
  if (typeof model !== 'string') throw new UserError('worker: true needs options.model to be a path');
  const h = workerFor(model, options.threads);
  const id = h.next++;
  const { worker: _w, timings: _t, ...rest } = { ...options, model };
  return new Promise<DetectResult>((resolve, reject) => {
    h.pending.set(id, { resolve, reject });
    h.worker.ref();
    h.worker.postMessage({ id, image, options: rest });
  });
}
