/**
 * Stand-in COCO RLE encoder for the canvas generator until postprocess/mask.ts lands (same signatures:
 * encode(mask row-major, h, w) -> RLE, toCocoRle(rle) -> { size, counts: string }). COCO RLE runs are
 * column-major and start with a run of zeros; the string form is maskApi.c's rleToString.
 */
export interface RLE {
  h: number;
  w: number;
  counts: number[];
}

export function encode(mask: Uint8Array, h: number, w: number): RLE {
  if (mask.length !== h * w) throw new Error(`mask has ${mask.length} values, ${h}x${w} needs ${h * w}`);
  const counts: number[] = [];
  let cur = 0;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x] ? 1 : 0;
      if (v !== cur) {
        counts.push(run);
        run = 0;
        cur = v;
      }
      run++;
    }
  }
  counts.push(run);
  return { h, w, counts };
}

export function toCocoRle(rle: RLE): { size: [number, number]; counts: string } {
  let s = '';
  const c = rle.counts;
  for (let i = 0; i < c.length; i++) {
    let x = c[i];
    if (i > 2) x -= c[i - 2];
    let more = true;
    while (more) {
      let ch = x & 0x1f;
      x >>= 5;
      more = ch & 0x10 ? x !== -1 : x !== 0;
      if (more) ch |= 0x20;
      s += String.fromCharCode(ch + 48);
    }
  }
  return { size: [rle.h, rle.w], counts: s };
}
