/**
 * Run-length mask API: a port of pycocotools.mask (maskApi.c + _mask.pyx, pycocotools 2.0.11) that gives the
 * same counts, areas, boxes and IoUs bit for bit. This module is the API (index.ts exports it as `mask`) and
 * _mask.pyx's frPyObjects / COCO.annToRLE; the work is done by its parts:
 *   mask_rle.ts     RLE type, encode, decode, area, toBbox, merge (rleEncode .. rleMerge);
 *   mask_poly.ts    frPoly, frBbox (rleFrPoly, rleFrBbox);
 *   mask_string.ts  counts strings and the COCO JSON form (rleToString, rleFrString), also from JSON bytes;
 *   mask_iou.ts     bboxIou and iou (bbIou, rleIou), with its WebAssembly kernel mask_iou_wasm.ts;
 *   mask_scratch.ts grow-only scratch arrays and the CountsArena.
 *
 * RLE counts run column-major (down each column, then to the next column) and start with a run of zeros,
 * exactly like maskApi.c; `encode`/`decode` take and give ROW-MAJOR h x w bitmaps so that callers never hold
 * Fortran-ordered arrays. Integer arithmetic follows C's `uint`/`int` wrap-around where maskApi.c relies on it.
 *
 * Speed (bench/mask.ts): `iou` never decodes bitmaps (see mask_iou.ts). `encode` reads the row-major bitmap
 * row against row, `frPoly` visits only the boundary points that maskApi.c keeps.
 * Hot loops read counts through int32 views (V8 runs uint32 loads on doubles), and callers that hold many
 * masks briefly pass a CountsArena / an `out` array: a typed array over 64 bytes is allocated off the V8
 * heap and costs about a microsecond, more than decoding or rasterising a typical mask.
 *
 * Deliberate differences from pycocotools, all on input it would silently turn into garbage:
 * - bad user data (counts that are not non-negative integers, that do not add up to h*w, counts strings
 *   with characters outside '0'..'o', non-finite polygon coordinates, a bad size) throws a UserError;
 * - masks are binary with nonzero = 1 (pycocotools toggles on every change of byte value);
 * - merging RLEs of different sizes throws (pycocotools returns an empty 0x0 RLE);
 * - polygons on a 0-pixel image, or with coordinates beyond +-2e8 (where maskApi.c's int arithmetic
 *   overflows), throw; a first polygon part of 4 numbers throws, as pycocotools' box reading of it does.
 */
import { UserError } from '../core/errors.ts';
import { frPoly } from './mask_poly.ts';
import { merge, type RLE, type Segmentation } from './mask_rle.ts';
import type { CountsArena } from './mask_scratch.ts';
import { fromCocoRle } from './mask_string.ts';

export { area, decode, encode, encodeColumnMajor, merge, toBbox, toBboxes, type CocoRle, type RLE, type Segmentation } from './mask_rle.ts';
export { frBbox, frPoly } from './mask_poly.ts';
export {
  countsFromJsonBytes,
  countsFromString,
  countsToString,
  fromCocoRle,
  rleFrJsonBytes,
  rleFrString,
  rleToString,
  toCocoRle,
} from './mask_string.ts';
export { bboxIou, iou, useWasmIou } from './mask_iou.ts';
export { arenaReserve, type CountsArena } from './mask_scratch.ts';

function isPolygonList(segm: unknown): segm is number[][] {
  return Array.isArray(segm);
}

/**
 * frPyObjects for one COCO segmentation: polygons give one RLE per part on h x w; an RLE object (list or
 * string counts) gives [RLE] with its own size. As in pycocotools, a first part of 4 numbers would be read as
 * a box list (and rejected there), and a first part shorter than that is not a polygon.
 */
export function frPyObjects(segm: Segmentation, h: number, w: number, arena?: CountsArena): RLE[] {
  if (isPolygonList(segm)) {
    if (segm.length === 0) throw new UserError('segmentation: empty polygon list');
    for (let i = 0; i < segm.length; i++) {
      if (!Array.isArray(segm[i])) throw new UserError(`segmentation: polygon part ${i} is not a list of numbers`);
    }
    const n0 = segm[0].length;
    if (n0 === 4) throw new UserError('segmentation: a polygon of 4 numbers is read as a box list by pycocotools, which rejects it');
    if (n0 < 4) throw new UserError(`segmentation: first polygon part has ${n0} numbers, need at least 6`);
    return segm.map((part) => frPoly(part, h, w, arena));
  }
  if (segm !== null && typeof segm === 'object' && 'counts' in segm && 'size' in segm) return [fromCocoRle(segm)];
  throw new UserError('segmentation: expected a list of polygons or an RLE object {size, counts}');
}

/**
 * COCO.annToRLE: polygon parts merged as a union on h x w; RLE objects keep their own size. Polygon counts
 * go to `arena` where given (see CountsArena).
 */
export function annToRle(segm: Segmentation, h: number, w: number, arena?: CountsArena): RLE {
  const rles = frPyObjects(segm, h, w, arena);
  return rles.length === 1 ? rles[0] : merge(rles);
}
