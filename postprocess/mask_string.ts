/**
 * Counts strings and the COCO JSON form of RLEs (maskApi.c rleToString / rleFrString, _mask.pyx's
 * {size, counts} objects), with validation of what users hand in. `countsFromJsonBytes` reads counts
 * strings straight from a results file's bytes (eval/load_res.ts); it is the byte twin of countsFromString.
 */
import { UserError } from '../core/errors.ts';
import { checkRle, checkSize, INT_MIN, UINT_RANGE, type CocoRle, type RLE } from './mask_rle.ts';
import { u32Scratch } from './mask_scratch.ts';

/** rleToString of raw counts: LEB128-like, 5 bits a char, deltas against the count two back from index 3 on. */
export function countsToString(cnts: ArrayLike<number>): string {
  const m = cnts.length;
  const s = Buffer.allocUnsafe(m * 7 + 1);
  let p = 0;
  for (let i = 0; i < m; i++) {
    let x = cnts[i];
    if (i > 2) x -= cnts[i - 2];
    if (x >= INT_MIN && x <= 2147483647) {
      for (;;) {
        let c = x & 0x1f;
        x >>= 5;
        const more = c & 0x10 ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        s[p++] = c + 48;
        if (!more) break;
      }
    } else {
      // Beyond int32 (counts near 2^32): C's 64-bit arithmetic shift, done with floor division.
      for (;;) {
        let c = x - Math.floor(x / 32) * 32;
        x = Math.floor(x / 32);
        const more = c & 0x10 ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        s[p++] = c + 48;
        if (!more) break;
      }
    }
  }
  return s.toString('latin1', 0, p);
}

/**
 * rleFrString without checks: raw counts exactly as maskApi.c reads them (int shifts wrap as on x86, so
 * strings with counts past 2^29 read back as pycocotools reads them, garbage included).
 */
export function countsFromString(s: string): Uint32Array {
  const n = s.length;
  const cnts = u32Scratch(n);
  let m = 0;
  let p = 0;
  let sum = 0;
  while (p < n) {
    const code = s.charCodeAt(p);
    if (code < 48 || code > 111) badCountsChar(s, p);
    let c = code - 48;
    p++;
    let x: number;
    if ((c & 0x20) === 0) {
      x = c & 0x10 ? c | -32 : c; // one char, the common case: 5 bits, sign-extended
    } else {
      x = c & 0x1f;
      let k = 1;
      let more = 1;
      while (more) {
        if (p >= n) throw new UserError('RLE counts string ends inside a number');
        const code2 = s.charCodeAt(p);
        if (code2 < 48 || code2 > 111) badCountsChar(s, p);
        c = code2 - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        p++;
        k++;
        if (!more && c & 0x10) x |= -1 << (5 * k);
      }
    }
    cnts[m] = m > 2 ? x + cnts[m - 2] : x;
    sum += cnts[m];
    m++;
  }
  countsFromStringSum = sum;
  return cnts.slice(0, m);
}

/** Sum of the counts the last countsFromString call read (saves rleFrString a second pass). */
let countsFromStringSum = 0;

function badCountsChar(s: string, p: number): never {
  throw new UserError(`RLE counts string has character ${JSON.stringify(s[p])} at ${p}, expected '0'..'o'`);
}

/** Compressed counts string of an RLE (rleToString). */
export function rleToString(rle: RLE): string {
  return countsToString(rle.counts);
}

/** rleFrString with validation: the runs must cover exactly h*w pixels. */
export function rleFrString(s: string, h: number, w: number): RLE {
  checkSize(h, w, 'RLE');
  if (typeof s !== 'string') throw new UserError('RLE counts must be a string or a list of integers');
  const counts = countsFromString(s);
  if (countsFromStringSum !== h * w) {
    throw new UserError(`RLE: RLE counts add up to ${countsFromStringSum}, expected h*w = ${h}*${w} = ${h * w}`);
  }
  return { h, w, counts };
}

/**
 * rleFrString on the bytes of a JSON string's contents (buf[start .. end)), as a results file holds them:
 * saves building a JS string per mask, and reads the `\\` escape (JSON's way of writing the backslash,
 * one of the 64 counts characters; a quarter of real counts strings have one) in place. Returns null on
 * anything else (other escapes, characters outside '0'..'o', counts not adding up to h*w, a bad size) so
 * that the caller takes the string path and its error messages. Same arithmetic as countsFromString.
 */
export function rleFrJsonBytes(buf: Uint8Array, start: number, end: number, h: number, w: number): RLE | null {
  const cnts = u32Scratch(end - start);
  const m = countsFromJsonBytes(buf, start, end, h, w, cnts, 0);
  return m < 0 ? null : { h, w, counts: cnts.slice(0, m) };
}

/**
 * rleFrJsonBytes's decoder writing the counts to out[at ..] (room for end - start counts needed) and
 * returning how many, or -1 where rleFrJsonBytes gives null: callers that hold many masks at once keep
 * them in one array instead of allocating one per mask (a typed array allocation costs more than decoding).
 */
export function countsFromJsonBytes(
  buf: Uint8Array,
  start: number,
  end: number,
  h: number,
  w: number,
  cnts: Uint32Array,
  at: number,
): number {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h * w >= UINT_RANGE) return -1;
  // Written through an int32 view: the same bits, and V8 keeps the loop on int32 arithmetic (uint32 loads
  // and stores make it work on doubles, three times slower).
  const ci = new Int32Array(cnts.buffer, cnts.byteOffset, cnts.length);
  let m = at;
  let p = start;
  let sum = 0;
  while (p < end) {
    let c = buf[p++] - 48;
    if (c === 44 && buf[p++] !== 92) return -1; // 92 - 48: a backslash, valid only as the escape \\
    if (c < 0 || c > 63) return -1;
    let x: number;
    if ((c & 0x20) === 0) {
      x = c & 0x10 ? c | -32 : c;
    } else {
      x = c & 0x1f;
      let k = 1;
      let more = 1;
      while (more) {
        if (p >= end) return -1;
        c = buf[p++] - 48;
        if (c === 44 && buf[p++] !== 92) return -1;
        if (c < 0 || c > 63) return -1;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        k++;
        if (!more && c & 0x10) x |= -1 << (5 * k);
      }
    }
    if (m - at > 2) x = (x + ci[m - 2]) | 0;
    ci[m] = x;
    sum += x >>> 0;
    m++;
  }
  return sum === h * w && p === end ? m - at : -1;
}

/** JSON form with compressed counts, as pycocotools.mask.encode returns it (counts as text, not bytes). */
export function toCocoRle(rle: RLE): CocoRle {
  return { size: [rle.h, rle.w], counts: rleToString(rle) };
}

/** RLE from its JSON form (string or list counts), using its own size; bad data throws a UserError. */
export function fromCocoRle(obj: CocoRle): RLE {
  if (obj === null || typeof obj !== 'object') throw new UserError('RLE must be an object {size: [h, w], counts}');
  const size: unknown = obj.size;
  if (!Array.isArray(size) || size.length !== 2) throw new UserError('RLE size must be [h, w]');
  const [h, w] = size as [number, number];
  checkSize(h, w, 'RLE');
  const counts: unknown = obj.counts;
  if (typeof counts === 'string') return rleFrString(counts, h, w);
  if (!Array.isArray(counts)) throw new UserError('RLE counts must be a string or a list of integers');
  const cnts = new Uint32Array(counts.length);
  for (let j = 0; j < counts.length; j++) {
    const c: unknown = counts[j];
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c >= UINT_RANGE) {
      throw new UserError(`RLE counts[${j}] is ${JSON.stringify(c)}, expected a non-negative integer`);
    }
    cnts[j] = c;
  }
  const rle = { h, w, counts: cnts };
  checkRle(rle, 'RLE');
  return rle;
}
