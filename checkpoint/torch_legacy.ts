/**
 * The legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`) `torch.save` format, as read by
 * torch.serialization._legacy_load: five back-to-back pickles (magic number, protocol version 1001, sys_info,
 * the object, the list of storage keys) followed by each storage as an int64 element count and its raw bytes.
 * mmdetection's 2020 model-zoo checkpoints are in this format. The object goes through the same restricted
 * unpickler as zip checkpoints; storage views (`view_metadata`) and big-endian files are refused.
 */
import { UserError } from '../core/errors.ts';
import { itemSize } from './dtypes.ts';
import { STORAGE_CLASSES, describe, unpickleAt, type PyValue, type StorageRef } from './unpickle.ts';
import type { TorchZip } from './torch_zip.ts';

const MAGIC = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

function bad(msg: string): never {
  throw new UserError(`corrupt legacy checkpoint: ${msg}`);
}

/** Parses a legacy checkpoint held in memory; storages are copied out on request. */
export function readTorchLegacy(buf: Uint8Array): TorchZip {
  const magic = unpickleAt(buf, 0);
  if (magic.value !== MAGIC) bad('wrong magic number');
  const version = unpickleAt(buf, magic.end);
  if (version.value !== PROTOCOL_VERSION) throw new UserError(`unsupported: legacy checkpoint protocol version ${describe(version.value)}`);
  const sysInfo = unpickleAt(buf, version.end);
  if (!(sysInfo.value instanceof Map)) bad('sys_info is not a dict');
  if (sysInfo.value.get('little_endian') !== true) throw new UserError('unsupported: big-endian legacy checkpoint; re-save it as a zip checkpoint');

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    // ('storage', torch.FloatStorage, root_key, location, numel, view_metadata)
    if (!Array.isArray(pid) || pid.length !== 6 || pid[0] !== 'storage') bad(`unexpected persistent id ${describe(pid)}`);
    const [, cls, key, location, numel, view] = pid;
    if (cls === null || typeof cls !== 'object' || !('$py' in cls) || cls.$py !== 'global' || cls.module !== 'torch' || !(cls.name in STORAGE_CLASSES)) {
      throw new UserError(`unsupported: storage type ${describe(cls)}`);
    }
    if (typeof key !== 'string' || typeof location !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
      bad('malformed storage persistent id');
    }
    if (view !== null) throw new UserError('unsupported: legacy checkpoint with storage views; re-save it as a zip checkpoint');
    const dtype = STORAGE_CLASSES[cls.name];
    const prev = storages.get(key);
    if (prev) {
      if (prev.dtype !== dtype || prev.numel !== numel) bad(`storage ${key} is described two ways`);
      return prev;
    }
    const ref: StorageRef = { $py: 'storage', dtype, key, location, numel };
    storages.set(key, ref);
    return ref;
  };
  const main = unpickleAt(buf, sysInfo.end, { persistentLoad });
  const keyList = unpickleAt(buf, main.end);
  if (!Array.isArray(keyList.value) || !keyList.value.every((k) => typeof k === 'string')) bad('storage key list is not a list of strings');

  // Storage records follow in key-list order: int64 element count, then the elements.
  const spans = new Map<string, [number, number]>();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = keyList.end;
  for (const key of keyList.value as string[]) {
    const ref = storages.get(key);
    if (!ref) bad(`storage ${key} is listed but never used`);
    if (spans.has(key)) bad(`storage ${key} is listed twice`);
    if (pos + 8 > buf.length) bad(`storage ${key} is cut off`);
    const count = dv.getBigInt64(pos, true);
    const bytes = BigInt(itemSize(ref.dtype)) * count;
    if (count < 0n || bytes > BigInt(buf.length - pos - 8)) bad(`storage ${key} claims ${count} elements, more than the file holds`);
    if (count < BigInt(ref.numel)) bad(`storage ${key} holds ${count} elements but the pickle claims ${ref.numel}`);
    spans.set(key, [pos + 8, pos + 8 + Number(bytes)]);
    pos += 8 + Number(bytes);
  }
  for (const key of storages.keys()) if (!spans.has(key)) bad(`storage ${key} has no data`);

  return {
    root: main.value,
    readStorages: (needs) => {
      const out = new Map<string, Uint8Array>();
      for (const [key, bytes] of needs) {
        const [a, b] = spans.get(key) as [number, number];
        out.set(key, Uint8Array.prototype.slice.call(buf, a, Math.min(b, a + bytes))); // a fresh, aligned copy, even for a Buffer
      }
      return out;
    },
  };
}
