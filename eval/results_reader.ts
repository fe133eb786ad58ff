/**
 * Results files as flat columns, straight from the file's bytes.
 *
 * A COCO-val-sized mask results file is ~200 MB of `{"image_id", "category_id", "bbox", "score",
 * "segmentation": {"size", "counts"}}`; JSON.parse turns it into millions of objects that then sit in the
 * heap (and in every GC) for the whole evaluation. This reader scans the bytes once into typed columns and
 * keeps each RLE counts string as a byte range of the file, decoded when its detection is evaluated.
 *
 * It handles the common shape only and answers null for anything else (an unexpected type, a missing
 * field, syntax errors, escapes in keys, non-RLE segmentations it cannot place, ...): the caller then
 * uses JSON.parse and the object path, whose error messages say what is wrong. Numbers are read exactly
 * as JSON.parse reads them (up to 15 significant digits and powers of ten up to 22 by the exact fast path
 * of strtod, anything else through Number()).
 */
import type { CocoSegmentation } from './coco.ts';

/** Detections as columns; `segmAt(i)` materialises a segmentation when it is needed. */
export interface RawResults {
  n: number;
  /** Numeric image ids (NaN where the id is a string: see imageIdStr). */
  imageId: Float64Array;
  /** String image ids by position, where the file uses them (GTs whose image ids are strings). */
  imageIdStr?: Array<string | undefined>;
  categoryId: Float64Array;
  score: Float64Array;
  /** x, y, w, h where bboxKind is 1. */
  bbox: Float64Array;
  /** 0: no "bbox", 1: four numbers, 2: an empty list. */
  bboxKind: Uint8Array;
  /** 0: no "segmentation", 1: an RLE object, 2: polygons. */
  segmKind: Uint8Array;
  /** RLE size where segmKind is 1. */
  segmH: Float64Array;
  segmW: Float64Array;
  segmAt: (i: number) => CocoSegmentation | undefined;
  /** Where segmAt reads from, in a form worker threads can share (the file bytes may be shared memory). */
  bytes?: RleBytes;
}

/** Zeroed columns of RawResults for n detections. */
export function rawColumns(n: number): Omit<RawResults, 'n' | 'segmAt' | 'bytes'> {
  return {
    imageId: new Float64Array(n),
    categoryId: new Float64Array(n),
    score: new Float64Array(n),
    bbox: new Float64Array(4 * n),
    bboxKind: new Uint8Array(n),
    segmKind: new Uint8Array(n),
    segmH: new Float64Array(n),
    segmW: new Float64Array(n),
  };
}

/** Segmentations left in the file's bytes: RLE counts strings, or whole values (polygons) to JSON.parse. */
export interface RleBytes {
  buf: Uint8Array;
  /** Byte range of the counts string's contents (RLE) or of the whole value (raw). */
  start: Int32Array;
  end: Int32Array;
  /** The counts string has escapes. */
  esc: Uint8Array;
  /** The range is a whole JSON value (polygons). */
  raw: Uint8Array;
  kind: Uint8Array;
  h: Float64Array;
  w: Float64Array;
}

/** Segmentation i of a byte source (undefined where the result has none). */
export function segmFromBytes(b: RleBytes, i: number): CocoSegmentation | undefined {
  if (b.kind[i] === 0) return undefined;
  const buf = Buffer.isBuffer(b.buf) ? b.buf : Buffer.from(b.buf.buffer, b.buf.byteOffset, b.buf.byteLength);
  if (b.raw[i]) return JSON.parse(buf.toString('utf8', b.start[i], b.end[i])) as CocoSegmentation;
  const counts = b.esc[i]
    ? (JSON.parse(buf.toString('utf8', b.start[i] - 1, b.end[i] + 1)) as string)
    : buf.toString('latin1', b.start[i], b.end[i]);
  return { size: [b.h[i], b.w[i]], counts };
}

const POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/** Strings up to this many bytes are scanned by a JS loop, longer ones by memchr (Buffer.indexOf). */
const SHORT_STRING = 24;

class Fail extends Error {}
const FAIL = new Fail();

/** The entry the last scan stopped in (index and first byte): names the entry when no other parser can. */
let stoppedAt = { entry: -1, byte: 0 };

/** Where readResultsFast last gave up: the entry index (-1: before the first) and the byte it starts at. */
export function lastStop(): { entry: number; byte: number } {
  return stoppedAt;
}

/** Reads a results file's bytes into columns, or returns null where the generic path must decide. */
export function readResultsFast(buf: Buffer): RawResults | null {
  stoppedAt = { entry: -1, byte: 0 };
  try {
    return scan(buf);
  } catch (err) {
    if (err instanceof Fail) return null;
    throw err;
  }
}

const KEYS = ['image_id', 'category_id', 'score', 'bbox', 'segmentation', 'size', 'counts'].map((k) =>
  Uint8Array.from(Buffer.from(k, 'latin1')),
);
const K_IMAGE_ID = 0;
const K_CATEGORY_ID = 1;
const K_SCORE = 2;
const K_BBOX = 3;
const K_SEGMENTATION = 4;
const K_SIZE = 5;
const K_COUNTS = 6;
const K_OTHER = -1;

/**
 * The scanner, one function on purpose (~390 lines, the hot loop of loading a results file): its helpers are
 * closures sharing one read position `p` and the column arrays (the hottest copy `p` into a local);
 * module-level functions would pass a cursor object through every call of a loop that runs per byte. The
 * "comma or closing bracket" steps after each member and element are repeated inline for the same reason.
 */
function scan(buf: Buffer): RawResults {
  const len = buf.length;
  let p = 0;
  // Hot helpers work on a local copy of the shared position (a captured variable lives in memory).
  const ws = (): void => {
    let q = p;
    while (q < len) {
      const c = buf[q];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) q++;
      else break;
    }
    p = q;
  };
  const expect = (c: number): void => {
    ws();
    if (buf[p] !== c) throw FAIL;
    p++;
  };
  const number = (): number => {
    ws();
    let q = p;
    const start = q;
    let neg = false;
    if (buf[q] === 0x2d) {
      neg = true;
      q++;
    }
    let mant = 0;
    let digits = 0;
    let frac = 0;
    let c = buf[q];
    if (c === 0x30) {
      q++;
      c = buf[q];
    } else if (c >= 0x31 && c <= 0x39) {
      while (c >= 0x30 && c <= 0x39) {
        mant = mant * 10 + (c - 0x30);
        digits++;
        c = buf[++q];
      }
    } else throw FAIL;
    if (c === 0x2e) {
      c = buf[++q];
      if (!(c >= 0x30 && c <= 0x39)) throw FAIL;
      while (c >= 0x30 && c <= 0x39) {
        if (digits > 0 || c !== 0x30) digits++;
        mant = mant * 10 + (c - 0x30);
        frac++;
        c = buf[++q];
      }
    }
    let exp = 0;
    if (c === 0x65 || c === 0x45) {
      c = buf[++q];
      let eneg = false;
      if (c === 0x2b || c === 0x2d) {
        eneg = c === 0x2d;
        c = buf[++q];
      }
      if (!(c >= 0x30 && c <= 0x39)) throw FAIL;
      while (c >= 0x30 && c <= 0x39) {
        exp = exp * 10 + (c - 0x30);
        if (exp > 1e6) throw FAIL;
        c = buf[++q];
      }
      if (eneg) exp = -exp;
    }
    const e10 = exp - frac;
    let v: number;
    if (digits <= 15 && e10 >= -22 && e10 <= 22) {
      // Both operands exact, one correctly rounded operation: the value strtod gives.
      v = e10 >= 0 ? mant * POW10[e10] : mant / POW10[-e10];
      if (neg) v = -v;
    } else {
      v = Number(latin1(buf, start, q));
    }
    p = q;
    return v;
  };
  /**
   * Skips a string (p at the opening quote), returning the start of its contents; `strEscaped` tells
   * whether it has escapes. The closing quote is found with memchr (Buffer.indexOf); the next backslash
   * is cached so that files without escapes are not rescanned.
   */
  let strEscaped = false;
  let nextBackslash = -2; // -2: unknown, -1: none left
  const string = (): number => {
    ws();
    if (buf[p] !== 0x22) throw FAIL;
    const start = ++p;
    let q: number;
    // Keys and other short strings: a byte loop costs less than a call into Buffer.indexOf (8 strings
    // a result, millions a file).
    const stop = start + SHORT_STRING < len ? start + SHORT_STRING : len;
    for (q = start; q < stop; q++) {
      const c = buf[q];
      if (c === 0x22) {
        strEscaped = false;
        p = q + 1;
        return start;
      }
      if (c === 0x5c) break;
    }
    if (q < stop) {
      nextBackslash = q;
    } else {
      if (nextBackslash !== -1 && nextBackslash < start) nextBackslash = buf.indexOf(0x5c, start);
      q = buf.indexOf(0x22, start);
      if (q < 0) throw FAIL;
      if (nextBackslash === -1 || nextBackslash > q) {
        strEscaped = false;
        p = q + 1;
        return start;
      }
      // Escapes before the first quote (a quarter of RLE counts strings have a "\\"): that quote ends the
      // string unless an odd number of backslashes precede it, so memchr keeps going instead of a byte walk.
      for (;;) {
        let k = q - 1;
        while (buf[k] === 0x5c) k--;
        if (((q - 1 - k) & 1) === 0) break;
        q = buf.indexOf(0x22, q + 1);
        if (q < 0) throw FAIL;
      }
      strEscaped = true;
      p = q + 1;
      nextBackslash = -2;
      return start;
    }
    // A short string with escapes: walk from the first backslash.
    strEscaped = true;
    q = nextBackslash;
    for (;;) {
      if (q >= len) throw FAIL;
      const c = buf[q];
      if (c === 0x22) break;
      q += c === 0x5c ? 2 : 1;
    }
    p = q + 1;
    nextBackslash = -2;
    return start;
  };
  /** Skips one JSON value (checking its syntax), returning its start for a lazy JSON.parse of the range. */
  const skipValue = (depth = 0): number => {
    if (depth > 512) throw FAIL;
    ws();
    const start = p;
    const c = buf[p];
    if (c === 0x22) string();
    else if (c === 0x7b || c === 0x5b) {
      const close = c === 0x7b ? 0x7d : 0x5d;
      p++;
      ws();
      if (buf[p] === close) p++;
      else {
        for (;;) {
          if (close === 0x7d) {
            string();
            expect(0x3a);
          }
          skipValue(depth + 1);
          ws();
          if (buf[p] === 0x2c) {
            p++;
            continue;
          }
          expect(close);
          break;
        }
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) number();
    else if (c === 0x74 && buf[p + 1] === 0x72 && buf[p + 2] === 0x75 && buf[p + 3] === 0x65) p += 4;
    else if (c === 0x66 && buf[p + 1] === 0x61 && buf[p + 2] === 0x6c && buf[p + 3] === 0x73 && buf[p + 4] === 0x65) p += 5;
    else if (c === 0x6e && buf[p + 1] === 0x75 && buf[p + 2] === 0x6c && buf[p + 3] === 0x6c) p += 4;
    else throw FAIL;
    return start;
  };
  /** The key of an object member, as one of the K_ codes: plain ASCII keys only. */
  const key = (): number => {
    const s = string();
    if (strEscaped) throw FAIL;
    const n = p - 1 - s;
    // Candidates by length, then by bytes (this runs for every member of every result).
    let k: number;
    switch (n) {
      case 4:
        k = buf[s] === 0x62 ? K_BBOX : K_SIZE;
        break;
      case 5:
        k = K_SCORE;
        break;
      case 6:
        k = K_COUNTS;
        break;
      case 8:
        k = K_IMAGE_ID;
        break;
      case 11:
        k = K_CATEGORY_ID;
        break;
      case 12:
        k = K_SEGMENTATION;
        break;
      default:
        return K_OTHER;
    }
    const want = KEYS[k];
    for (let j = 0; j < n; j++) if (buf[s + j] !== want[j]) return K_OTHER;
    return k;
  };

  // Column storage grows by doubling.
  let cap = 1024;
  let { imageId, categoryId, score, bbox, bboxKind, segmKind, segmH, segmW } = rawColumns(cap);
  // RLE counts byte range (start, end, escaped) or, for other segmentations, the value's byte range.
  let segStart = new Int32Array(cap);
  let segEnd = new Int32Array(cap);
  let segEsc = new Uint8Array(cap);
  let segRaw = new Uint8Array(cap);
  const growTo = (n: number): void => {
    if (n <= cap) return;
    const c2 = Math.max(n, 2 * cap);
    const g = <T extends Float64Array | Uint8Array | Int32Array>(a: T, k = 1): T => {
      const b = new (a.constructor as new (n: number) => T)(c2 * k);
      b.set(a);
      return b;
    };
    imageId = g(imageId);
    categoryId = g(categoryId);
    score = g(score);
    bbox = g(bbox, 4);
    bboxKind = g(bboxKind);
    segmKind = g(segmKind);
    segmH = g(segmH);
    segmW = g(segmW);
    segStart = g(segStart);
    segEnd = g(segEnd);
    segEsc = g(segEsc);
    segRaw = g(segRaw);
    cap = c2;
  };

  /** Reads {"size": [h, w], "counts": "..."} in any key order; anything else fails (generic path). */
  const rle = (i: number): void => {
    expect(0x7b);
    let haveSize = false;
    let haveCounts = false;
    ws();
    if (buf[p] === 0x7d) throw FAIL;
    for (;;) {
      const k = key();
      expect(0x3a);
      if (k === K_SIZE) {
        expect(0x5b);
        segmH[i] = number();
        expect(0x2c);
        segmW[i] = number();
        expect(0x5d);
        if (!isCount(segmH[i]) || !isCount(segmW[i])) throw FAIL;
        haveSize = true;
      } else if (k === K_COUNTS) {
        ws();
        if (buf[p] !== 0x22) throw FAIL; // list counts: generic path
        segStart[i] = string();
        segEnd[i] = p - 1;
        segEsc[i] = strEscaped ? 1 : 0;
        haveCounts = true;
      } else {
        throw FAIL;
      }
      ws();
      if (buf[p] === 0x2c) {
        p++;
        continue;
      }
      expect(0x7d);
      break;
    }
    if (!haveSize || !haveCounts) throw FAIL;
    segmKind[i] = 1;
    segRaw[i] = 0;
  };

  expect(0x5b);
  let n = 0;
  ws();
  if (buf[p] === 0x5d) p++;
  else {
    for (;;) {
      growTo(n + 1);
      const i = n++;
      stoppedAt.entry = i;
      stoppedAt.byte = p;
      let seen = 0; // bits: image_id, category_id, score
      bboxKind[i] = 0;
      segmKind[i] = 0;
      expect(0x7b);
      ws();
      if (buf[p] !== 0x7d) {
        for (;;) {
          const k = key();
          expect(0x3a);
          ws();
          if (k === K_IMAGE_ID) {
            imageId[i] = number();
            seen |= 1;
          } else if (k === K_CATEGORY_ID) {
            categoryId[i] = number();
            seen |= 2;
          } else if (k === K_SCORE) {
            score[i] = number();
            seen |= 4;
          } else if (k === K_BBOX) {
            expect(0x5b);
            ws();
            if (buf[p] === 0x5d) {
              p++;
              bboxKind[i] = 2;
            } else {
              for (let q = 0; q < 4; q++) {
                if (q) expect(0x2c);
                bbox[4 * i + q] = number();
              }
              expect(0x5d);
              bboxKind[i] = 1;
            }
          } else if (k === K_SEGMENTATION) {
            if (buf[p] === 0x7b) rle(i);
            else if (buf[p] === 0x5b) {
              segStart[i] = skipValue();
              segEnd[i] = p;
              segRaw[i] = 1;
              segmKind[i] = 2;
            } else throw FAIL;
          } else {
            skipValue();
          }
          ws();
          if (buf[p] === 0x2c) {
            p++;
            continue;
          }
          expect(0x7d);
          break;
        }
      } else p++;
      if (seen !== 7) throw FAIL;
      ws();
      if (buf[p] === 0x2c) {
        p++;
        continue;
      }
      expect(0x5d);
      break;
    }
  }
  ws();
  if (p !== len) throw FAIL;

  const bytes: RleBytes = {
    buf,
    start: segStart.subarray(0, n),
    end: segEnd.subarray(0, n),
    esc: segEsc.subarray(0, n),
    raw: segRaw.subarray(0, n),
    kind: segmKind.subarray(0, n),
    h: segmH.subarray(0, n),
    w: segmW.subarray(0, n),
  };
  const segmAt = (i: number): CocoSegmentation | undefined => segmFromBytes(bytes, i);
  // Polygon results are validated now, like the object path does (they are rare and small).
  for (let i = 0; i < n; i++) if (segRaw[i] && !isPolygonList(segmAt(i))) throw FAIL;
  return {
    n,
    imageId: imageId.subarray(0, n),
    categoryId: categoryId.subarray(0, n),
    score: score.subarray(0, n),
    bbox: bbox.subarray(0, 4 * n),
    bboxKind: bboxKind.subarray(0, n),
    segmKind: segmKind.subarray(0, n),
    segmH: segmH.subarray(0, n),
    segmW: segmW.subarray(0, n),
    segmAt,
    bytes,
  };
}

function isCount(v: number): boolean {
  return Number.isInteger(v) && v >= 0;
}

function isPolygonList(v: unknown): boolean {
  return (
    Array.isArray(v) &&
    v.every((part) => Array.isArray(part) && part.every((c) => typeof c === 'number' && Number.isFinite(c)))
  );
}

function latin1(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, end);
}
