/**
 * Turns raw little-endian storage bytes into runtime tensors: float16 / bfloat16 / float64 become Float32Array,
 * int64 BigInt64Array, int32 / int16 / int8 Int32Array, uint8 / bool Uint8Array; `sourceDtype` keeps the file's
 * dtype. Strided views (transposes, slices, stride-0 expands) are gathered into contiguous row-major arrays.
 */
import { UserError } from '../core/errors.ts';
import type { Tensor, TensorData } from '../core/tensor.ts';

export type Dtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

type SourceArray = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
type SourceCtor = { new (n: number): SourceArray; new (b: ArrayBufferLike, off: number, n: number): SourceArray; BYTES_PER_ELEMENT: number };

const SOURCE: Readonly<Record<Dtype, SourceCtor>> = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export function itemSize(dtype: Dtype): number {
  return SOURCE[dtype].BYTES_PER_ELEMENT;
}

/** Bytes the runtime array takes for `n` elements of `dtype` (float16 widens to 4 bytes, int8 to 4, ...). */
export function outputBytes(dtype: Dtype, n: number): number {
  if (dtype === 'int64') return 8 * n;
  if (dtype === 'uint8' || dtype === 'bool') return n;
  return 4 * n;
}

let halfTable: Float32Array | undefined;

/** All 65536 float16 values as float32, built once (256 KiB) so conversion is one lookup per element. */
function halfToFloat32Table(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfToFloat(h);
  halfTable = t;
  return t;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Reverses each `size`-byte element in place (big-endian storages). */
export function byteswap(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/** Converts a contiguous source array to the runtime array; `own` says `src` may be returned as is. */
function convert(dtype: Dtype, src: SourceArray, own: boolean): TensorData {
  const n = src.length;
  switch (dtype) {
    case 'float32':
    case 'int64':
    case 'int32':
    case 'uint8':
    case 'bool':
      return (own ? src : src.slice()) as TensorData;
    case 'float16': {
      const table = halfToFloat32Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[(src as Uint16Array)[i]];
      return out;
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32: shift the bits into place.
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = (src as Uint16Array)[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'float64':
      return Float32Array.from(src as Float64Array);
    case 'int16':
    case 'int8':
      return Int32Array.from(src as Int16Array | Int8Array);
  }
}

export interface ViewSpec {
  offset: number;
  shape: readonly number[];
  stride: readonly number[];
}

/** C-contiguous strides for `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== acc) return false;
    acc *= shape[d];
  }
  return true;
}

/**
 * Checks a view against its storage and returns its element count: sizes and strides are non-negative safe
 * integers, and the furthest element it addresses lies inside the storage.
 */
export function checkView(view: ViewSpec, storageNumel: number, what: string): number {
  const { offset, shape, stride } = view;
  if (shape.length !== stride.length) throw new UserError(`${what}: size has ${shape.length} dims but stride has ${stride.length}`);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new UserError(`${what}: bad storage offset ${offset}`);
  let n = 1;
  let last = offset;
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d];
    const st = stride[d];
    if (!Number.isSafeInteger(size) || size < 0) throw new UserError(`${what}: bad size [${shape.join(', ')}]`);
    if (!Number.isSafeInteger(st) || st < 0) throw new UserError(`${what}: bad stride [${stride.join(', ')}]`);
    n *= size;
    if (size > 0) last += (size - 1) * st;
  }
  if (!Number.isSafeInteger(n) || n > 2 ** 31 - 1) throw new UserError(`${what}: ${n} elements is more than this loader handles`);
  if (n > 0 && (!Number.isSafeInteger(last) || last >= storageNumel)) {
    throw new UserError(
      `${what}: view (offset ${offset}, size [${shape.join(', ')}], stride [${stride.join(', ')}]) reaches element ${last} ` +
        `but its storage holds ${storageNumel}`,
    );
  }
  return n;
}

/**
 * Builds a runtime tensor from storage bytes (little-endian) and a view. With `share`, a contiguous
 * float32 / int64 / int32 / uint8 view aliases `bytes` (no copy) when it is aligned; otherwise data is copied.
 */
export function materialize(bytes: Uint8Array, dtype: Dtype, view: ViewSpec, what: string, share: boolean): Tensor {
  const Ctor = SOURCE[dtype];
  const isz = Ctor.BYTES_PER_ELEMENT;
  const storageNumel = Math.floor(bytes.length / isz);
  const n = checkView(view, storageNumel, what);
  const shape = [...view.shape];
  let own = share;
  if (bytes.byteOffset % isz !== 0) {
    bytes = new Uint8Array(bytes); // typed views need aligned offsets (a copy, even for a Buffer)
    own = true;
  }
  const src = new Ctor(bytes.buffer, bytes.byteOffset, storageNumel);
  let flat: SourceArray;
  if (n === 0) {
    flat = new Ctor(0);
    own = true;
  } else if (isContiguous(view.shape, view.stride)) {
    flat = src.subarray(view.offset, view.offset + n);
  } else {
    flat = gather(src, Ctor, view, n);
    own = true;
  }
  return { shape, data: convert(dtype, flat, own), sourceDtype: dtype };
}

function gather(src: SourceArray, Ctor: SourceCtor, view: ViewSpec, n: number): SourceArray {
  const { shape, stride } = view;
  const nd = shape.length;
  const out = new Ctor(n);
  const idx = new Array<number>(nd).fill(0);
  let s = view.offset;
  // Row-major walk with an odometer over the dims; `s` tracks the source element.
  for (let i = 0; i < n; i++) {
    (out as Float32Array)[i] = (src as Float32Array)[s];
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        s += stride[d];
        break;
      }
      s -= (shape[d] - 1) * stride[d];
      idx[d] = 0;
    }
  }
  return out;
}
