/**
 * safetensors: an 8-byte little-endian header length, a JSON header
 * `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`, then the raw
 * little-endian tensor bytes with offsets relative to the end of the header.
 */
import { UserError } from '../core/errors.ts';
import type { StateDict } from '../core/tensor.ts';
import { contiguousStrides, itemSize, materialize, type Dtype } from './dtypes.ts';

const DTYPES: Readonly<Record<string, Dtype>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** The safetensors reference implementation refuses headers over 100 MB too. */
export const MAX_HEADER_BYTES = 100_000_000;

/** True when `buf` starts like a safetensors file: a plausible header length followed by '{'. */
export function looksLikeSafetensors(buf: Uint8Array): boolean {
  if (buf.length < 10) return false;
  const len = new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true);
  return len >= 2n && len <= BigInt(Math.min(MAX_HEADER_BYTES, buf.length - 8)) && buf[8] === 0x7b;
}

function bad(msg: string): never {
  throw new UserError(`corrupt safetensors file: ${msg}`);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

interface Entry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(name: string, info: unknown, dataLen: number): Entry {
  if (info === null || typeof info !== 'object' || Array.isArray(info)) bad(`entry ${name} is not an object`);
  const { dtype, shape, data_offsets: offs } = info as Record<string, unknown>;
  if (typeof dtype !== 'string') bad(`entry ${name} has no dtype`);
  const dt = DTYPES[dtype];
  if (!dt) throw new UserError(`unsupported: safetensors tensor ${name} has dtype ${dtype.slice(0, 16)}`);
  if (!Array.isArray(shape) || shape.length > 64 || !shape.every(isNonNegInt)) bad(`entry ${name} has a bad shape`);
  if (!Array.isArray(offs) || offs.length !== 2 || !isNonNegInt(offs[0]) || !isNonNegInt(offs[1])) bad(`entry ${name} has bad data_offsets`);
  const [begin, end] = offs as number[];
  if (begin > end || end > dataLen) bad(`entry ${name} data_offsets [${begin}, ${end}] fall outside the ${dataLen}-byte data section`);
  let n = 1;
  for (const d of shape) n *= d;
  if (end - begin !== n * itemSize(dt)) bad(`entry ${name} has ${end - begin} bytes but ${dtype} [${shape.join(', ')}] needs ${n * itemSize(dt)}`);
  return { name, dtype: dt, shape: shape as number[], begin, end };
}

/** Reads a safetensors buffer; tensors come out in file (offset) order, `__metadata__` as meta. */
export function parseSafetensors(buf: Uint8Array): { stateDict: StateDict; meta?: Record<string, string> } {
  if (buf.length < 8) bad(`file is only ${buf.length} bytes`);
  const headerLen = new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, buf.length - 8))) bad(`header claims ${headerLen} bytes in a ${buf.length}-byte file`);
  const hl = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + hl)));
  } catch (err) {
    bad(`header is not valid JSON (${err instanceof Error ? err.message : err})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) bad('header is not a JSON object');
  const dataStart = 8 + hl;
  const dataLen = buf.length - dataStart;
  let meta: Record<string, string> | undefined;
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object' || Array.isArray(info) || !Object.values(info).every((v) => typeof v === 'string')) {
        bad('__metadata__ must map strings to strings');
      }
      meta = info as Record<string, string>;
      continue;
    }
    entries.push(parseEntry(name, info, dataLen));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].begin < entries[i - 1].end) bad(`tensors ${entries[i - 1].name} and ${entries[i].name} overlap`);
  }
  const stateDict: StateDict = new Map();
  for (const e of entries) {
    const bytes = buf.subarray(dataStart + e.begin, dataStart + e.end);
    // Entries do not overlap, so each aliases its own bytes of `buf` when alignment allows.
    const view = { offset: 0, shape: e.shape, stride: contiguousStrides(e.shape) };
    stateDict.set(e.name, materialize(bytes, e.dtype, view, `safetensors tensor ${e.name}`, true));
  }
  return meta ? { stateDict, meta } : { stateDict };
}
