/**
 * Detection results, as pycocotools `COCO.loadRes` reads them, stored as flat columns.
 *
 * loadRes decides from the FIRST result only: if it has a non-empty `bbox`, every result gets area = w*h
 * (segm evaluation too) and a result without `segmentation` becomes the polygon of its box; otherwise
 * every result must carry an RLE `segmentation`, area = its mask area and a missing `bbox` = toBbox(mask).
 * Result ids are position + 1. Mask-derived values are filled in lazily (see `resolveDtMasks`), since only
 * detections that survive the per-image-per-category maxDets cut are ever looked at.
 */
import { UserError } from '../cli/errors.ts';
import { area as rleArea, annToRle, toBbox, type RLE } from '../postprocess/mask.ts';
import {
  bboxField,
  checkSegmentation,
  isRecord,
  numberField,
  readJsonFile,
  type CocoGt,
  type CocoSegmentation,
  type JsonSource,
} from './coco.ts';
import type { IouType } from './params.ts';

/** One entry of a results file (mmdetection and detectron2 write these). */
export interface CocoResult {
  image_id: number;
  category_id: number;
  score: number;
  bbox?: number[];
  segmentation?: CocoSegmentation;
  [key: string]: unknown;
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
  /** The raw segmentation, or undefined (box branch, no mask given: the box polygon is used). */
  segm: Array<CocoSegmentation | undefined>;
}

export interface LoadResOptions {
  iouTypes?: readonly IouType[];
  name?: string;
}

/** Loads (path) or indexes (parsed array) detection results against a loaded GT. */
export function loadRes(gt: CocoGt, source: JsonSource<CocoResult[] | unknown>, options: LoadResOptions = {}): CocoDt {
  const name = options.name ?? (typeof source === 'string' ? source : 'results');
  const data = typeof source === 'string' ? readJsonFile(source, 'results') : source;
  if (!Array.isArray(data)) throw new UserError(`${name}: results must be a JSON array of detections`);
  const n = data.length;
  const first = data[0];
  const boxBranch = isRecord(first) && Array.isArray(first.bbox) && first.bbox.length > 0;
  const iouTypes = options.iouTypes ?? ['bbox'];
  const needSegm = iouTypes.includes('segm');

  const img = new Int32Array(n);
  const cat = new Int32Array(n);
  const score = new Float64Array(n);
  const bbox = new Float64Array(4 * n).fill(NaN);
  const area = new Float64Array(n).fill(NaN);
  const segm: Array<CocoSegmentation | undefined> = new Array(n);
  for (let i = 0; i < n; i++) {
    const r = data[i];
    const where = `${name}: results[${i}]`;
    if (!isRecord(r)) throw new UserError(`${where} must be an object`);
    const imageId = numberField(r, 'image_id', where);
    const k = gt.imageIndex.get(imageId);
    if (k === undefined) {
      throw new UserError(`${where}: image_id ${imageId} is not in the GT (results do not correspond to the GT set)`);
    }
    const categoryId = numberField(r, 'category_id', where);
    const c = gt.categoryIndex.get(categoryId);
    if (c === undefined) throw new UserError(`${where}: category_id ${categoryId} is not a GT category`);
    img[i] = k;
    cat[i] = c;
    score[i] = numberField(r, 'score', where);

    if (r.bbox !== undefined && !(Array.isArray(r.bbox) && r.bbox.length === 0 && !boxBranch)) {
      const b = bboxField(r.bbox, where);
      if (b[2] < 0 || b[3] < 0) throw new UserError(`${where}: "bbox" has a negative width or height`);
      bbox.set(b, 4 * i);
      if (boxBranch) area[i] = b[2] * b[3];
    } else if (boxBranch) {
      throw new UserError(`${where}: missing "bbox" (the first result has one, so every result needs one)`);
    }

    if (r.segmentation !== undefined) {
      const s = checkSegmentation(r.segmentation, where);
      if (!boxBranch && Array.isArray(s)) {
        throw new UserError(`${where}: mask results must be RLE {size, counts}, not polygons`);
      }
      if (!Array.isArray(s) && (needSegm || !boxBranch)) checkRleSize(s.size, gt, k, where);
      segm[i] = s;
    } else if (!boxBranch) {
      throw new UserError(`${where}: missing "segmentation" (results need a "bbox" or an RLE "segmentation")`);
    }
  }
  if (needSegm && boxBranch) {
    // Box polygons are rasterised on the image grid.
    for (let i = 0; i < n; i++) {
      if (segm[i] === undefined || Array.isArray(segm[i])) {
        const k = img[i];
        const h = gt.heights[k];
        const w = gt.widths[k];
        if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
          throw new UserError(`${name}: image ${gt.imageIds[k]} needs integer "height" and "width" for segm`);
        }
      }
    }
  }
  return { n, img, cat, score, boxBranch, bbox, area, segm };
}

/** A mask of another size than its image would make IoUs meaningless (pycocotools does not check). */
function checkRleSize(size: [number, number], gt: CocoGt, k: number, where: string): void {
  const h = gt.heights[k];
  const w = gt.widths[k];
  if (Number.isFinite(h) && Number.isFinite(w) && (size[0] !== h || size[1] !== w)) {
    throw new UserError(
      `${where}: mask size ${size[0]}x${size[1]} differs from image ${gt.imageIds[k]}'s ${h}x${w} (height x width)`,
    );
  }
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
export function dtRle(gt: CocoGt, dt: CocoDt, i: number): RLE {
  const k = dt.img[i];
  const s = dt.segm[i] ?? boxPolygon(dt.bbox, i);
  const rle = toRle(s, gt.heights[k], gt.widths[k], `results[${i}]`);
  if (Number.isNaN(dt.area[i])) dt.area[i] = rleArea(rle);
  if (Number.isNaN(dt.bbox[4 * i])) dt.bbox.set(toBbox(rle), 4 * i);
  return rle;
}

/** Makes sure area (and bbox when `needBbox`) of result i are known, decoding its mask if they come from it. */
export function resolveDt(gt: CocoGt, dt: CocoDt, i: number, needBbox: boolean): void {
  if (Number.isNaN(dt.area[i]) || (needBbox && Number.isNaN(dt.bbox[4 * i]))) dtRle(gt, dt, i);
}

/** annToRle with the mask code's errors (corrupt RLE strings, ...) turned into one-line UserErrors. */
export function toRle(s: CocoSegmentation, h: number, w: number, where: string): RLE {
  try {
    return annToRle(s, h, w);
  } catch (err) {
    throw new UserError(`${where}: bad "segmentation": ${(err as Error).message}`);
  }
}
