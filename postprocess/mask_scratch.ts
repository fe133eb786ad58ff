/**
 * Memory for the RLE code in postprocess/mask*.ts: grow-only scratch arrays shared by encode, merge, frPoly
 * and the counts-string readers (they run thousands of times per evaluation, and fresh h*w-sized arrays
 * would dominate), and the CountsArena in which callers that hold many masks at once keep their counts.
 * Every user copies its result out of the scratch before returning, so one set of arrays serves them all.
 */

let scratchU32 = new Uint32Array(1024);
let scratchU32b = new Uint32Array(1024);
const scratchI32 = [new Int32Array(1024), new Int32Array(1024), new Int32Array(1024), new Int32Array(1024)];
let scratchCol = new Int32Array(1024);

export function u32Scratch(n: number): Uint32Array {
  if (scratchU32.length < n) scratchU32 = new Uint32Array(Math.max(n, scratchU32.length * 2));
  return scratchU32;
}

/** A second array, for code that reads one scratch array while writing another. */
export function u32ScratchB(n: number): Uint32Array {
  if (scratchU32b.length < n) scratchU32b = new Uint32Array(Math.max(n, scratchU32b.length * 2));
  return scratchU32b;
}

/** One of four int32 arrays (slots 0..3), for the polygon rasteriser's vertex and crossing lists. */
export function i32Scratch(slot: number, n: number): Int32Array {
  if (scratchI32[slot].length < n) scratchI32[slot] = new Int32Array(Math.max(n, scratchI32[slot].length * 2));
  return scratchI32[slot];
}

/** Per-column counters of the counting sorts in encode and frPoly. */
export function colScratch(n: number): Int32Array {
  if (scratchCol.length < n) scratchCol = new Int32Array(Math.max(n, 2 * scratchCol.length));
  return scratchCol;
}

/**
 * Room for the counts of many masks held at once (an evaluator's masks of one image and category): they
 * are placed one after another, and the holder resets `used` when it drops them. A typed array allocation
 * per mask costs more than decoding or rasterising it. A grown array replaces `buf`; masks already placed
 * keep views on the old one.
 */
export interface CountsArena {
  buf: Uint32Array;
  used: number;
}

/** Where n counts can be written in the arena (growing it); the caller then advances `used`. */
export function arenaReserve(arena: CountsArena, n: number): number {
  if (arena.buf.length - arena.used >= n) return arena.used;
  arena.buf = new Uint32Array(Math.max(2 * arena.buf.length, 2 * n));
  arena.used = 0;
  return 0;
}

/** counts[0 .. n) as the counts of a new RLE: in the arena where given, else a copy of their own. */
export function placeCounts(counts: Uint32Array, n: number, arena: CountsArena | undefined): Uint32Array {
  if (arena === undefined) return counts.slice(0, n);
  const at = arenaReserve(arena, n);
  const out = arena.buf.subarray(at, at + n);
  out.set(counts.subarray(0, n));
  arena.used = at + n;
  return out;
}
