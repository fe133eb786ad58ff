/**
 * COCO instances annotations (the GT side of COCOeval), loaded once into flat typed columns.
 *
 * What pycocotools does and we keep: image and category ids are the keys of `images` / `categories`
 * (duplicates collapse, the last image entry wins), evaluation runs over all GT images and categories in
 * ascending id order, and annotations naming an image or category absent from those lists are left out.
 * Where pycocotools would crash or silently compute nonsense (missing fields, ids that are neither all
 * numbers nor all strings, duplicate annotation ids, whose `loadAnns` would return the last one twice) we
 * throw a one-line UserError instead (README "Trust and limits" lists every difference).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { UserError } from '../core/errors.ts';
import type { RLE } from '../postprocess/mask.ts';
import type { IouType } from './params.ts';

/** One entry of `images`: only `id` is needed for bbox; `height`/`width` rasterise polygons for segm. */
export interface CocoImage {
  id: number;
  height?: number;
  width?: number;
  [key: string]: unknown;
}

export interface CocoCategory {
  id: number;
  name?: string;
  [key: string]: unknown;
}

/** Polygons (one list of x,y per part), or RLE: uncompressed (`counts` numbers) or compressed (string). */
export type CocoSegmentation = number[][] | { size: [number, number]; counts: string | number[] };

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  area: number;
  iscrowd: number | boolean;
  bbox?: number[];
  segmentation?: CocoSegmentation;
  [key: string]: unknown;
}

export interface CocoDataset {
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
  [key: string]: unknown;
}

/** The GT indexed for evaluation; annotation columns are in file order, restricted to known images/categories. */
export interface CocoGt {
  /** Ascending unique image ids; an image's index here is its `img` value below. */
  imageIds: Float64Array;
  imageIndex: Map<number, number>;
  /** Per image index; NaN where the file gives none. */
  heights: Float64Array;
  widths: Float64Array;
  /** Ascending unique category ids. */
  categoryIds: Float64Array;
  categoryIndex: Map<number, number>;
  categoryNames: string[];
  /** Each category's `supercategory`, undefined where the file gives none (the error analysis groups by it). */
  categorySupercategories: Array<string | undefined>;
  anns: GtAnnotations;
  /** The iou types whose fields were checked on load; evaluating another type needs a reload. */
  iouTypes: IouType[];
  /** The GT file (or 'GT'), for messages raised during evaluation. */
  name?: string;
  /**
   * Where the GT's image ids are strings (pycocotools evaluates those when used consistently): the ids in
   * sorted order; imageIds then holds their ranks 0..n-1, which keep pycocotools' sorted(imgIds) order.
   */
  imageIdStrings?: string[];
}

/** The id of GT image k as the files write it. */
export function imageIdLabel(gt: Pick<CocoGt, 'imageIds' | 'imageIdStrings'>, k: number): string {
  return gt.imageIdStrings ? JSON.stringify(gt.imageIdStrings[k]) : String(gt.imageIds[k]);
}

/**
 * Where a warning goes: a mistake pycocotools evaluates anyway (masks whose size is not their image's) is
 * computed the same way and reported once, as one line.
 */
export type WarnFn = (message: string) => void;
export const stderrWarning: WarnFn = (m) => process.stderr.write(`warning: ${m}\n`);

/** RLE masks of another size than their image: one warning per file naming the first and the count. */
export function maskSizeWarning(file: string, what: string, first: string, count: number, warn: WarnFn): void {
  if (count === 0) return;
  warn(`${file}: ${first}${count > 1 ? ` (and ${count - 1} more ${what})` : ''}; evaluated as pycocotools does (mask IoU with a mask of another size is -1: no match)`);
}

export interface GtAnnotations {
  n: number;
  img: Int32Array;
  cat: Int32Array;
  id: Float64Array;
  iscrowd: Uint8Array;
  area: Float64Array;
  /** x, y, w, h per annotation; NaN unless the GT was loaded for bbox. */
  bbox: Float64Array;
  /** Raw `segmentation` per annotation (undefined unless loaded for segm), rasterised during evaluation. */
  segm: Array<CocoSegmentation | undefined>;
  /** The masks already rasterised, where a caller evaluates the same GT many times (eval/analyze.ts). */
  rle?: RLE[];
}

/** What a loader accepts: a file path or the already parsed JSON. */
export type JsonSource<T> = string | T;

function oneLine(s: string, max = 160): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}...` : t;
}

/**
 * Reads a file's bytes, turning I/O errors into one-line UserErrors. `shared` puts them in a
 * SharedArrayBuffer, which worker threads can read without a copy.
 */
export function readFileBytes(path: string, what: string, shared = false): Buffer {
  try {
    if (!shared) return readFileSync(path);
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.from(new SharedArrayBuffer(size));
      let off = 0;
      while (off < size) {
        const got = readSync(fd, buf, off, size - off, off);
        if (got === 0) break;
        off += got;
      }
      return off === size ? buf : buf.subarray(0, off);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new UserError(`${what} file not found: ${path}`);
    if (e.code === 'EISDIR') throw new UserError(`${what} path is a directory, not a JSON file: ${path}`);
    throw new UserError(`cannot read ${what} file ${path}: ${e.message}`);
  }
}

/** Parses JSON file contents, turning syntax errors into one-line UserErrors. */
export function parseJsonBytes(bytes: Buffer, path: string, what: string): unknown {
  let text: string;
  try {
    text = bytes.toString('utf8');
  } catch {
    throw new UserError(`${what} file is too large to parse: ${path}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    // Python's json.dump writes NaN/Infinity, which no JSON parser accepts: say so plainly.
    const hint = /\b(NaN|-?Infinity)\b/.test(text) ? ' (it contains NaN or Infinity, which JSON does not allow)' : '';
    throw new UserError(`${what} file ${path} is not valid JSON${hint}: ${oneLine((err as Error).message)}`);
  }
}

/** Reads and parses a JSON file with one-line UserErrors for I/O and syntax errors. */
export function readJsonFile(path: string, what: string): unknown {
  return parseJsonBytes(readFileBytes(path, what), path, what);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${oneLine(v, 40)}"`;
  return typeof v === 'object' ? 'an object' : String(v);
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A required finite number field; `where` names the entry for the error message. */
export function numberField(obj: Record<string, unknown>, key: string, where: string): number {
  const v = obj[key];
  if (v === undefined) throw new UserError(`${where}: missing required field "${key}"`);
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new UserError(`${where}: "${key}" must be a finite number, got ${describe(v)}`);
  }
  return v;
}

/** x, y, w, h as 4 finite numbers, or a UserError naming the entry. */
export function bboxField(v: unknown, where: string): [number, number, number, number] {
  if (!Array.isArray(v) || v.length !== 4) {
    throw new UserError(`${where}: "bbox" must be [x, y, w, h], got ${Array.isArray(v) ? `${v.length} values` : describe(v)}`);
  }
  for (const c of v) {
    if (typeof c !== 'number' || !Number.isFinite(c)) {
      throw new UserError(`${where}: "bbox" values must be finite numbers, got ${describe(c)}`);
    }
  }
  return v as [number, number, number, number];
}

/** Shape check only (rasterising is left to the mask code): polygons or an RLE object. */
export function checkSegmentation(v: unknown, where: string): CocoSegmentation {
  if (Array.isArray(v)) {
    for (const part of v) {
      if (!Array.isArray(part)) throw new UserError(`${where}: polygon "segmentation" must be a list of coordinate lists`);
      for (const c of part) {
        if (typeof c !== 'number' || !Number.isFinite(c)) {
          throw new UserError(`${where}: polygon coordinates must be finite numbers, got ${describe(c)}`);
        }
      }
    }
    return v as number[][];
  }
  if (isRecord(v)) {
    const size = v.size;
    if (!Array.isArray(size) || size.length !== 2 || !size.every((s) => Number.isInteger(s) && (s as number) >= 0)) {
      throw new UserError(`${where}: RLE "segmentation" needs "size": [height, width]`);
    }
    const counts = v.counts;
    if (typeof counts !== 'string' && !(Array.isArray(counts) && counts.every((c) => Number.isInteger(c) && c >= 0))) {
      throw new UserError(`${where}: RLE "counts" must be a string or a list of non-negative integers`);
    }
    return v as CocoSegmentation;
  }
  throw new UserError(`${where}: "segmentation" must be polygons or an RLE object, got ${describe(v)}`);
}

function arrayField(obj: Record<string, unknown>, key: string, what: string): unknown[] {
  const v = obj[key];
  if (v === undefined) throw new UserError(`${what}: missing required field "${key}"`);
  if (!Array.isArray(v)) throw new UserError(`${what}: "${key}" must be an array, got ${describe(v)}`);
  return v;
}

function sortedUnique(ids: number[]): Float64Array {
  const a = Float64Array.from(ids).sort();
  let n = 0;
  for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[n - 1]) a[n++] = a[i];
  return a.slice(0, n);
}

function indexOf(ids: Float64Array): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i < ids.length; i++) m.set(ids[i], i);
  return m;
}

export interface LoadGtOptions {
  /** Fields checked on every used annotation: `bbox` for bbox, `segmentation` and image sizes for segm (default bbox). */
  iouTypes?: readonly IouType[];
  /** Name used in error messages (the file path when loading from one). */
  name?: string;
  /** Where warnings go (default: one line on stderr). */
  warn?: WarnFn;
}

/** Loads (path) or indexes (parsed object) a COCO instances GT. */
export function loadGt(source: JsonSource<CocoDataset | unknown>, options: LoadGtOptions = {}): CocoGt {
  const name = options.name ?? (typeof source === 'string' ? source : 'GT');
  const data = typeof source === 'string' ? readJsonFile(source, 'GT') : source;
  if (!isRecord(data)) throw new UserError(`${name}: GT must be a JSON object with images, annotations, categories`);
  const iouTypes = [...(options.iouTypes ?? ['bbox'])];
  const images = indexImages(arrayField(data, 'images', name), name);
  const categories = indexCategories(arrayField(data, 'categories', name), name);
  const anns = readAnnotations(arrayField(data, 'annotations', name), name, images, categories, iouTypes, options.warn ?? stderrWarning);
  const { imageOf: _, ...imageColumns } = images;
  return { name, ...imageColumns, ...categories, iouTypes, anns };
}

type GtImages = Pick<CocoGt, 'imageIds' | 'imageIndex' | 'heights' | 'widths' | 'imageIdStrings'> & {
  /** An annotation's image index, or undefined for an image not in the GT. */
  imageOf: (a: Record<string, unknown>, where: string) => number | undefined;
};
type GtCategories = Pick<CocoGt, 'categoryIds' | 'categoryIndex' | 'categoryNames' | 'categorySupercategories'>;

function indexImages(images: unknown[], name: string): GtImages {
  const imgIdList: number[] = new Array(images.length);
  // String image ids (all of them, or none: pycocotools' sorted() cannot order a mix) become their ranks.
  const stringIds = images.length > 0 && isRecord(images[0]) && typeof images[0].id === 'string';
  let imageIdStrings: string[] | undefined;
  let rankOf: Map<string, number> | undefined;
  if (stringIds) {
    const strs = images.map((im, i) => {
      if (!isRecord(im)) throw new UserError(`${name}: images[${i}] must be an object`);
      if (typeof im.id !== 'string') throw new UserError(`${name}: images[${i}]: "id" must be a string like images[0]'s (pycocotools cannot sort a mix), got ${describe(im.id)}`);
      return im.id;
    });
    imageIdStrings = [...new Set(strs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    rankOf = new Map(imageIdStrings.map((s, r) => [s, r]));
    strs.forEach((s, i) => (imgIdList[i] = rankOf!.get(s)!));
  } else {
    for (let i = 0; i < images.length; i++) {
      const im = images[i];
      if (!isRecord(im)) throw new UserError(`${name}: images[${i}] must be an object`);
      imgIdList[i] = numberField(im, 'id', `${name}: images[${i}]`);
    }
  }
  const imageIds = sortedUnique(imgIdList);
  const imageIndex = indexOf(imageIds);
  const imageOf = (a: Record<string, unknown>, where: string): number | undefined => {
    if (!rankOf) return imageIndex.get(numberField(a, 'image_id', where));
    if (typeof a.image_id !== 'string') throw new UserError(`${where}: "image_id" must be a string like the GT's image ids, got ${describe(a.image_id)}`);
    const r = rankOf.get(a.image_id);
    return r === undefined ? undefined : imageIndex.get(r);
  };
  const heights = new Float64Array(imageIds.length).fill(NaN);
  const widths = new Float64Array(imageIds.length).fill(NaN);
  const seenImage = new Set<number>();
  for (let i = 0; i < images.length; i++) {
    // Later duplicates overwrite earlier ones, as in COCO.createIndex; a duplicate that disagrees on the
    // size is a GT mistake that would otherwise surface as a results error.
    const im = images[i] as Record<string, unknown>;
    const k = imageIndex.get(imgIdList[i])!;
    const h = typeof im.height === 'number' ? im.height : NaN;
    const w = typeof im.width === 'number' ? im.width : NaN;
    if (seenImage.has(k) && !(Object.is(heights[k], h) && Object.is(widths[k], w))) {
      throw new UserError(`${name}: images[${i}]: duplicate image id ${stringIds ? JSON.stringify((im as { id: string }).id) : imgIdList[i]} with another size (${h}x${w}, an earlier entry says ${heights[k]}x${widths[k]})`);
    }
    seenImage.add(k);
    heights[k] = h;
    widths[k] = w;
  }
  return { imageIds, imageIndex, heights, widths, ...(imageIdStrings ? { imageIdStrings } : {}), imageOf };
}

function indexCategories(categories: unknown[], name: string): GtCategories {
  const catIdList: number[] = new Array(categories.length);
  const catNameById = new Map<number, string>();
  const catSuperById = new Map<number, string | undefined>();
  for (let i = 0; i < categories.length; i++) {
    const c = categories[i];
    if (!isRecord(c)) throw new UserError(`${name}: categories[${i}] must be an object`);
    catIdList[i] = numberField(c, 'id', `${name}: categories[${i}]`);
    catNameById.set(catIdList[i], typeof c.name === 'string' ? c.name : String(catIdList[i]));
    catSuperById.set(catIdList[i], typeof c.supercategory === 'string' ? c.supercategory : undefined);
  }
  const categoryIds = sortedUnique(catIdList);
  const categoryIndex = indexOf(categoryIds);
  const categoryNames = Array.from(categoryIds, (id) => catNameById.get(id)!);
  const categorySupercategories = Array.from(categoryIds, (id) => catSuperById.get(id));
  return { categoryIds, categoryIndex, categoryNames, categorySupercategories };
}

/** Annotation columns in file order, checked for the fields `iouTypes` need; others' images/categories left out. */
function readAnnotations(
  annotations: unknown[],
  name: string,
  images: GtImages,
  categories: GtCategories,
  iouTypes: readonly IouType[],
  warn: WarnFn,
): GtAnnotations {
  const needBbox = iouTypes.includes('bbox');
  const needSegm = iouTypes.includes('segm');
  const n0 = annotations.length;
  const out: GtAnnotations = {
    n: 0, img: new Int32Array(n0), cat: new Int32Array(n0), id: new Float64Array(n0), iscrowd: new Uint8Array(n0),
    area: new Float64Array(n0), bbox: new Float64Array(4 * n0).fill(NaN), segm: [],
  };
  const seenIds = new Set<number>();
  const sizes = { off: 0, first: '' };
  for (let i = 0; i < n0; i++) {
    const a = annotations[i];
    const where = `${name}: annotations[${i}]`;
    if (!isRecord(a)) throw new UserError(`${where} must be an object`);
    const annId = numberField(a, 'id', where);
    if (seenIds.has(annId)) throw new UserError(`${where}: duplicate annotation id ${annId}`);
    seenIds.add(annId);
    const k = images.imageOf(a, where);
    const c = categories.categoryIndex.get(numberField(a, 'category_id', where));
    if (k === undefined || c === undefined) continue; // COCOeval only looks at GT images and categories
    const n = out.n++;
    out.iscrowd[n] = crowdField(a, where);
    out.img[n] = k;
    out.cat[n] = c;
    out.id[n] = annId;
    out.area[n] = numberField(a, 'area', where);
    if (needBbox) out.bbox.set(bboxField(requiredField(a, 'bbox', where), where), 4 * n);
    out.segm.push(needSegm ? gtSegmentation(a, where, images, k, name, sizes, i) : undefined);
  }
  maskSizeWarning(name, 'GT masks', sizes.first, sizes.off, warn);
  const n = out.n;
  return {
    n, img: out.img.slice(0, n), cat: out.cat.slice(0, n), id: out.id.slice(0, n), iscrowd: out.iscrowd.slice(0, n),
    area: out.area.slice(0, n), bbox: out.bbox.slice(0, 4 * n), segm: out.segm,
  };
}

function requiredField(a: Record<string, unknown>, key: string, where: string): unknown {
  if (a[key] === undefined) throw new UserError(`${where}: missing required field "${key}"`);
  return a[key];
}

/**
 * `iscrowd` as pycocotools reads it: by truthiness (ignore flag) and int() (mask IoU), so any integer >= 1 is a
 * crowd in both. Negative or fractional values disagree between the two (or with numpy's uint8 cast): refused.
 */
function crowdField(a: Record<string, unknown>, where: string): number {
  const crowd = requiredField(a, 'iscrowd', where);
  if (typeof crowd !== 'boolean' && !(typeof crowd === 'number' && Number.isInteger(crowd) && crowd >= 0)) {
    throw new UserError(`${where}: "iscrowd" must be 0 (not a crowd) or a positive integer (a crowd, as pycocotools reads any non-zero value), got ${describe(crowd)}`);
  }
  return crowd ? 1 : 0;
}

/**
 * A GT annotation's segmentation, checked; polygons also need their image's size. RLEs of another size than
 * their image are counted in `sizes` (pycocotools evaluates them: one warning per file, not a refusal).
 */
function gtSegmentation(
  a: Record<string, unknown>, where: string, images: GtImages, k: number, name: string, sizes: { off: number; first: string }, i: number,
): CocoSegmentation {
  const segm = checkSegmentation(requiredField(a, 'segmentation', where), where);
  const [h, w] = [images.heights[k], images.widths[k]];
  if (Array.isArray(segm)) checkImageSize(h, w, images.imageIds[k], name);
  else if (Number.isFinite(h) && (segm.size[0] !== h || segm.size[1] !== w) && sizes.off++ === 0) {
    sizes.first = `annotations[${i}]: mask size ${segm.size[0]}x${segm.size[1]} differs from image ${imageIdLabel(images, k)}'s ${h}x${w}`;
  }
  return segm;
}

/** Polygons are rasterised on the image's grid, so segm needs a positive integer height and width. */
export function checkImageSize(h: number, w: number, imageId: number, name: string): void {
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
    throw new UserError(`${name}: image ${imageId} needs integer "height" and "width" to rasterise polygons for segm`);
  }
}
