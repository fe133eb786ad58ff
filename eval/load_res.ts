/**
 * Detection results, as pycocotools `COCO.loadRes` reads them, stored as flat columns.
 *
 * loadRes decides from the FIRST result only: if it has a non-empty `bbox`, every result gets area = w*h
 * (segm evaluation too) and a result without `segmentation` becomes the polygon of its box; otherwise
 * every result must carry an RLE `segmentation`, area = its mask area and a missing `bbox` = toBbox(mask).
 * Result ids are position + 1. Mask-derived values are filled in lazily (see `resolveDtMasks`), since only
 * detections that survive the per-image-per-category maxDets cut are ever looked at.
 */
import { UserError } from '../core/errors.ts';
import {
  area as rleArea,
  annToRle,
  arenaReserve,
  countsFromJsonBytes,
  rleFrJsonBytes,
  toBbox,
  type CocoRle,
  type CountsArena,
  type RLE,
} from '../postprocess/mask.ts';

export type { CountsArena } from '../postprocess/mask.ts';
import {
  bboxField,
  checkSegmentation,
  imageIdLabel,
  isRecord,
  maskSizeWarning,
  numberField,
  parseJsonBytes,
  readFileBytes,
  stderrWarning,
  type CocoGt,
  type WarnFn,
  type CocoSegmentation,
  type JsonSource,
} from './coco.ts';
import type { IouType } from './params.ts';
import { lastStop, rawColumns, readResultsFast, type RawResults, type RleBytes } from './results_reader.ts';
import { constants as bufferConstants } from 'node:buffer';

/** Longest string V8 builds: a results file longer than this cannot go through JSON.parse. */
const MAX_STRING_LENGTH = bufferConstants.MAX_STRING_LENGTH;

/**
 * One entry of a COCO results file, as fasternet writes it (api/run_model.ts; `fasternet detect --json`
 * names the image by `file` instead). loadRes reads files from other tools too (mmdetection, detectron2):
 * there `bbox` or `segmentation` may be missing and other keys are ignored; it checks every field it reads.
 */
export interface CocoResult {
  image_id: number;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
  segmentation: CocoRle;
}

export interface CocoDt {
  n: number;
  /** GT image index and category index per result. */
  img: Int32Array;
  cat: Int32Array;
  score: Float64Array;
  /** True when the first result carried a non-empty bbox (loadRes's box branch). */
  boxBranch: boolean;
  /** x, y, w, h; NaN until known where it comes from the mask. */
  bbox: Float64Array;
  /** loadRes's `area`; NaN until known where it comes from the mask. */
  area: Float64Array;
  /** The result's segmentation, or undefined (box branch, no mask given: the box polygon is used). */
  segmAt: (i: number) => CocoSegmentation | undefined;
  /** segmAt's data where it is the file's bytes (for worker threads). */
  bytes?: RleBytes;
  /** The results file (or 'results'), for messages raised during evaluation. */
  name?: string;
}

export interface LoadResOptions {
  iouTypes?: readonly IouType[];
  name?: string;
  /** Where warnings go (default: one line on stderr). */
  warn?: WarnFn;
}

/**
 * Loads (path) or indexes (parsed array) detection results against a loaded GT. Files go through the
 * byte-level reader (results_reader.ts); whatever it does not take goes through JSON.parse.
 */
export function loadRes(gt: CocoGt, source: JsonSource<CocoResult[] | unknown>, options: LoadResOptions = {}): CocoDt {
  const name = options.name ?? (typeof source === 'string' ? source : 'results');
  let raw: RawResults;
  if (typeof source === 'string') {
    raw = resultsFromBytes(readFileBytes(source, 'results', true), source, name);
  } else {
    raw = rawFromParsed(source, name);
  }
  return indexResults(gt, raw, name, options.iouTypes ?? ['bbox'], options.warn ?? stderrWarning);
}

/** A results file's bytes as columns: the byte-level reader, else JSON.parse (errors name `path`). */
export function resultsFromBytes(bytes: Buffer, path: string, name = path): RawResults {
  return readResultsFast(bytes) ?? rawFromParsed(parseResultsBytes(bytes, path), name);
}

/**
 * JSON.parse for what the byte-level reader did not take. A file over V8's string limit (~512 MiB) cannot
 * go through JSON.parse, so the entry the reader stopped in is named instead of "too large".
 */
function parseResultsBytes(bytes: Buffer, path: string): unknown {
  if (bytes.length <= MAX_STRING_LENGTH) return parseJsonBytes(bytes, path, 'results');
  const { entry, byte } = lastStop();
  const at = bytes.subarray(byte, byte + 120).toString('utf8').replace(/\s+/g, ' ').trim();
  const where = entry < 0 ? 'the start of the file' : `results[${entry}] (byte ${byte})`;
  throw new UserError(
    `${path}: ${where} is not a results entry this reader takes (each needs numeric image_id, category_id, score, a 4-number bbox and/or an RLE segmentation): ${at.slice(0, 100)}${at.length > 100 ? '...' : ''}`,
  );
}

/** Columns from parsed results, checking each field's type. */
export function rawFromParsed(data: unknown, name: string): RawResults {
  if (!Array.isArray(data)) throw new UserError(`${name}: results must be a JSON array of detections`);
  const n = data.length;
  const { imageId, categoryId, score, bbox, bboxKind, segmKind, segmH, segmW } = rawColumns(n);
  const segm: Array<CocoSegmentation | undefined> = new Array(n);
  const imageIdStr: Array<string | undefined> = new Array(n);
  let anyStr = false;
  for (let i = 0; i < n; i++) {
    const r = data[i];
    const where = `${name}: results[${i}]`;
    if (!isRecord(r)) throw new UserError(`${where} must be an object`);
    if (typeof r.image_id === 'string') {
      imageIdStr[i] = r.image_id;
      imageId[i] = NaN;
      anyStr = true;
    } else imageId[i] = numberField(r, 'image_id', where);
    categoryId[i] = numberField(r, 'category_id', where);
    score[i] = numberField(r, 'score', where);
    if (Array.isArray(r.bbox) && r.bbox.length === 0) bboxKind[i] = 2;
    else if (r.bbox !== undefined) {
      bbox.set(bboxField(r.bbox, where), 4 * i);
      bboxKind[i] = 1;
    }
    if (r.segmentation !== undefined) {
      const s = checkSegmentation(r.segmentation, where);
      segm[i] = s;
      if (Array.isArray(s)) segmKind[i] = 2;
      else {
        segmKind[i] = 1;
        segmH[i] = s.size[0];
        segmW[i] = s.size[1];
      }
    }
  }
  return { n, imageId, ...(anyStr ? { imageIdStr } : {}), categoryId, score, bbox, bboxKind, segmKind, segmH, segmW, segmAt: (i) => segm[i] };
}

/** COCO.loadRes on columns: GT image/category indices, box areas, and loadRes's requirements per branch. */
function indexResults(gt: CocoGt, raw: RawResults, name: string, iouTypes: readonly IouType[], warn: WarnFn): CocoDt {
  let offSize = 0;
  let firstOffSize = '';
  const n = raw.n;
  const boxBranch = n > 0 && raw.bboxKind[0] === 1;
  const needSegm = iouTypes.includes('segm');
  const img = new Int32Array(n);
  const cat = new Int32Array(n);
  const score = Float64Array.from(raw.score);
  const bbox = new Float64Array(4 * n).fill(NaN);
  const area = new Float64Array(n).fill(NaN);
  // Detectors write an image's results together, so most lookups repeat the previous one.
  let lastImageId = NaN;
  let lastK: number | undefined;
  // String image ids are looked up by their rank in the GT's sorted ids (coco.ts), numbers as they are.
  const rankOf = gt.imageIdStrings ? new Map(gt.imageIdStrings.map((s, r) => [s, r])) : undefined;
  for (let i = 0; i < n; i++) {
    const str = raw.imageIdStr?.[i];
    const imageId = rankOf ? (str === undefined ? NaN : (rankOf.get(str) ?? NaN)) : str === undefined ? raw.imageId[i] : NaN;
    const k = imageId === lastImageId ? lastK : gt.imageIndex.get(imageId);
    lastImageId = imageId;
    lastK = k;
    if (k === undefined) {
      const shown = str === undefined ? String(raw.imageId[i]) : JSON.stringify(str);
      throw new UserError(
        `${name}: results[${i}]: image_id ${shown} is not in the GT (results do not correspond to the GT set)`,
      );
    }
    const c = gt.categoryIndex.get(raw.categoryId[i]);
    if (c === undefined) throw new UserError(`${name}: results[${i}]: category_id ${raw.categoryId[i]} is not a GT category`);
    img[i] = k;
    cat[i] = c;
    // (The byte reader reads 1e400 as Infinity, as JSON.parse does; the object path rejects it earlier.)
    if (!Number.isFinite(score[i])) throw new UserError(`${name}: results[${i}]: "score" must be a finite number, got ${score[i]}`);
    const bk = raw.bboxKind[i];
    if (bk === 1) {
      for (let q = 0; q < 4; q++) {
        const v = raw.bbox[4 * i + q];
        if (!Number.isFinite(v)) throw new UserError(`${name}: results[${i}]: "bbox" values must be finite numbers, got ${v}`);
      }
      const w = raw.bbox[4 * i + 2];
      const h = raw.bbox[4 * i + 3];
      if (w < 0 || h < 0) throw new UserError(`${name}: results[${i}]: "bbox" has a negative width or height`);
      for (let q = 0; q < 4; q++) bbox[4 * i + q] = raw.bbox[4 * i + q];
      if (boxBranch) area[i] = w * h;
    } else if (boxBranch) {
      throw new UserError(
        bk === 2
          ? `${name}: results[${i}]: "bbox" must be [x, y, w, h], got 0 values`
          : `${name}: results[${i}]: missing "bbox" (the first result has one, so every result needs one)`,
      );
    }
    const sk = raw.segmKind[i];
    if (sk === 2 && !boxBranch) {
      throw new UserError(`${name}: results[${i}]: mask results must be RLE {size, counts}, not polygons`);
    }
    if (sk === 1 && (needSegm || !boxBranch)) {
      const off = rleSizeMismatch(raw.segmH[i], raw.segmW[i], gt, k, `results[${i}]`);
      if (off && offSize++ === 0) firstOffSize = off;
    }
    if (sk === 0 && !boxBranch) {
      throw new UserError(`${name}: results[${i}]: missing "segmentation" (results need a "bbox" or an RLE "segmentation")`);
    }
    if (needSegm && boxBranch && sk !== 1) {
      // Box and polygon masks are rasterised on the image grid.
      const h = gt.heights[k];
      const w = gt.widths[k];
      if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
        throw new UserError(`${name}: image ${gt.imageIds[k]} needs integer "height" and "width" for segm`);
      }
    }
  }
  maskSizeWarning(name, 'result masks', firstOffSize, offSize, warn);
  return { n, img, cat, score, boxBranch, bbox, area, segmAt: raw.segmAt, bytes: raw.bytes, name };
}

/**
 * A mask of another size than its image: pycocotools evaluates it (detectron2's own test uses 10x10 RLEs on
 * 640x640 images, matching GT masks of the same size), so it is computed the same way, with a warning.
 */
function rleSizeMismatch(sh: number, sw: number, gt: CocoGt, k: number, where: string): string | undefined {
  const h = gt.heights[k];
  const w = gt.widths[k];
  if (Number.isFinite(h) && Number.isFinite(w) && (sh !== h || sw !== w)) {
    return `${where}: mask size ${sh}x${sw} differs from image ${imageIdLabel(gt, k)}'s ${h}x${w} (height x width)`;
  }
  return undefined;
}

/** The box polygon loadRes gives a box-only result: [x1,y1, x1,y2, x2,y2, x2,y1]. */
export function boxPolygon(bbox: Float64Array, i: number): number[][] {
  const x1 = bbox[4 * i];
  const y1 = bbox[4 * i + 1];
  const x2 = x1 + bbox[4 * i + 2];
  const y2 = y1 + bbox[4 * i + 3];
  return [[x1, y1, x1, y2, x2, y2, x2, y1]];
}

/**
 * The mask of result i as COCO.annToRLE makes it (RLE results as given, box polygons rasterised on the
 * image), filling in its mask-derived area and bbox where loadRes takes them from the mask.
 */
export function dtRle(gt: Pick<CocoGt, 'heights' | 'widths'>, dt: CocoDt, i: number, arena?: CountsArena): RLE {
  const k = dt.img[i];
  const b = dt.bytes;
  // A compressed RLE left in the file is decoded from its bytes (what annToRle ends in); the string path
  // below takes what that decoder refuses and says what is wrong.
  let rle: RLE | null = null;
  if (b && b.kind[i] === 1 && !b.raw[i]) {
    if (arena) {
      const at = arenaReserve(arena, b.end[i] - b.start[i]);
      const m = countsFromJsonBytes(b.buf, b.start[i], b.end[i], b.h[i], b.w[i], arena.buf, at);
      if (m >= 0) {
        rle = { h: b.h[i], w: b.w[i], counts: arena.buf.subarray(at, at + m) };
        arena.used = at + m;
      }
    } else {
      rle = rleFrJsonBytes(b.buf, b.start[i], b.end[i], b.h[i], b.w[i]);
    }
  }
  if (rle === null) rle = toRle(dt.segmAt(i) ?? boxPolygon(dt.bbox, i), gt.heights[k], gt.widths[k], `${dt.name ?? 'results'}: results[${i}]`, arena);
  // (loadRes's box branch knows both for every result: no need to touch them, a cache miss each)
  if (!dt.boxBranch) {
    if (Number.isNaN(dt.area[i])) dt.area[i] = rleArea(rle);
    if (Number.isNaN(dt.bbox[4 * i])) dt.bbox.set(toBbox(rle), 4 * i);
  }
  return rle;
}

/** Makes sure area (and bbox when `needBbox`) of result i are known, decoding its mask if they come from it. */
export function resolveDt(gt: Pick<CocoGt, 'heights' | 'widths'>, dt: CocoDt, i: number, needBbox: boolean): void {
  if (Number.isNaN(dt.area[i]) || (needBbox && Number.isNaN(dt.bbox[4 * i]))) dtRle(gt, dt, i);
}

/**
 * annToRle with the mask code's errors (corrupt RLE strings, ...) turned into one-line UserErrors naming
 * results[index] or the GT annotation id (built only on error: this runs once per evaluated mask).
 */
export function toRle(
  s: CocoSegmentation,
  h: number,
  w: number,
  where: string,
  arena?: CountsArena,
): RLE {
  try {
    return annToRle(s, h, w, arena);
  } catch (err) {
    throw new UserError(`${where}: bad "segmentation": ${(err as Error).message}`);
  }
}
