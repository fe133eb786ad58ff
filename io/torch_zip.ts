/**
 * The torch >= 1.6 `torch.save` zip layout: `<archive>/data.pkl` (the pickled object, tensors as persistent ids
 * naming storages), `<archive>/data/<key>` (raw storage bytes, stored uncompressed), `<archive>/version` and,
 * from torch 2.x, `<archive>/byteorder`. Zip structure is read by fflate from the central directory; we only
 * check what it reports against the buffer before trusting it.
 */
import { unzipSync, type UnzipFileInfo } from 'fflate';
import { UserError } from '../cli/errors.ts';
import { byteswap, itemSize } from './dtypes.ts';
import { STORAGE_CLASSES, describe, unpickle, type PyValue, type StorageRef } from './unpickle.ts';

interface ZipEntry {
  name: string;
  size: number;
  originalSize: number;
  compression: number;
}

export interface TorchZip {
  /** The unpickled object, with tensors as TensorRef views. */
  root: PyValue;
  /** Raw little-endian bytes of each requested storage, read once each. */
  readStorages(keys: Iterable<string>): Map<string, Uint8Array>;
}

// Smallest central-directory record: bounds the entry count a corrupt directory can claim.
const MIN_CDIR_RECORD = 46;
const MAX_PICKLE_BYTES = 1 << 30;

function zipError(err: unknown): never {
  if (err instanceof UserError) throw err;
  const msg = err instanceof Error ? err.message : String(err);
  throw new UserError(`truncated or corrupt zip checkpoint (${msg})`);
}

function listEntries(buf: Uint8Array, maxInflated: number): ZipEntry[] {
  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  try {
    unzipSync(buf, {
      filter: (f: UnzipFileInfo) => {
        if (entries.length >= buf.length / MIN_CDIR_RECORD) throw new UserError('corrupt zip checkpoint: central directory lists more entries than fit in the file');
        if (!f.name || seen.has(f.name)) throw new UserError(`corrupt zip checkpoint: ${f.name ? `duplicate entry ${f.name}` : 'entry without a name'}`);
        const bad = !Number.isSafeInteger(f.size) || f.size < 0 || f.size > buf.length || !Number.isSafeInteger(f.originalSize) || f.originalSize < 0;
        if (bad) throw new UserError(`truncated or corrupt zip checkpoint: entry ${f.name} claims ${f.size} bytes in a ${buf.length}-byte file`);
        if (f.compression === 0 && f.originalSize !== f.size) throw new UserError(`corrupt zip checkpoint: stored entry ${f.name} has mismatched sizes`);
        if (f.compression === 8 && f.originalSize > maxInflated) throw new UserError(`zip checkpoint entry ${f.name} inflates to ${f.originalSize} bytes, over the limit`);
        if (f.compression !== 0 && f.compression !== 8) throw new UserError(`unsupported: zip entry ${f.name} uses compression method ${f.compression}`);
        seen.add(f.name);
        entries.push({ name: f.name, size: f.size, originalSize: f.originalSize, compression: f.compression });
        return false;
      },
    });
  } catch (err) {
    zipError(err);
  }
  return entries;
}

/** Extracts the named entries (only those) and checks each came out at its directory size. */
function extract(buf: Uint8Array, wanted: Map<string, ZipEntry>): Map<string, Uint8Array> {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(buf, { filter: (f) => wanted.has(f.name) });
  } catch (err) {
    zipError(err);
  }
  const out = new Map<string, Uint8Array>();
  for (const [name, e] of wanted) {
    const data = files[name];
    if (!data || data.length !== e.originalSize) {
      throw new UserError(`truncated or corrupt zip checkpoint: entry ${name} has ${data?.length ?? 0} of its ${e.originalSize} bytes`);
    }
    out.set(name, data);
  }
  return out;
}

function findArchivePrefix(entries: ZipEntry[]): string {
  const pkl = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkl.length === 1) return pkl[0].name.slice(0, -'data.pkl'.length);
  if (pkl.length > 1) throw new UserError(`corrupt zip checkpoint: ${pkl.length} data.pkl records`);
  if (entries.some((e) => /(^|\/)(constants\.pkl|code\/)/.test(e.name))) {
    throw new UserError('this is a TorchScript archive (torch.jit.save), not a state dict: save model.state_dict() with torch.save instead');
  }
  const names = entries.slice(0, 5).map((e) => e.name).join(', ');
  throw new UserError(`zip file has no <archive>/data.pkl, so it is not a torch.save checkpoint (entries: ${names || 'none'})`);
}

/** Parses the zip directory and data.pkl; storages are read later, only those the caller needs. */
export function readTorchZip(buf: Uint8Array, maxInflated: number): TorchZip {
  const entries = listEntries(buf, maxInflated);
  const prefix = findArchivePrefix(entries);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const control = new Map<string, ZipEntry>();
  const pklEntry = byName.get(`${prefix}data.pkl`) as ZipEntry;
  if (pklEntry.originalSize > MAX_PICKLE_BYTES) throw new UserError(`data.pkl is ${pklEntry.originalSize} bytes, too large for a state dict`);
  control.set(pklEntry.name, pklEntry);
  const orderEntry = byName.get(`${prefix}byteorder`);
  if (orderEntry) {
    if (orderEntry.originalSize > 16) throw new UserError('corrupt zip checkpoint: byteorder record is too long');
    control.set(orderEntry.name, orderEntry);
  }
  const records = extract(buf, control);
  let bigEndian = false;
  if (orderEntry) {
    const order = new TextDecoder().decode(records.get(orderEntry.name));
    if (order !== 'little' && order !== 'big') throw new UserError(`corrupt zip checkpoint: byteorder is '${order.slice(0, 16)}'`);
    bigEndian = order === 'big';
  }

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    // ('storage', torch.FloatStorage, key, location, numel)
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
      throw new UserError(`corrupt zip checkpoint: unexpected persistent id ${describe(pid)}`);
    }
    const [, cls, key, location, numel] = pid;
    if (cls === null || typeof cls !== 'object' || !('$py' in cls) || cls.$py !== 'global' || cls.module !== 'torch' || !(cls.name in STORAGE_CLASSES)) {
      throw new UserError(`unsupported: storage type ${describe(cls)}`);
    }
    if (typeof key !== 'string' || typeof location !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
      throw new UserError('corrupt zip checkpoint: malformed storage persistent id');
    }
    const dtype = STORAGE_CLASSES[cls.name];
    const entry = byName.get(`${prefix}data/${key}`);
    if (!entry) throw new UserError(`corrupt zip checkpoint: storage ${key} has no data/${key} record`);
    const bytes = numel * itemSize(dtype);
    if (bytes > entry.originalSize) {
      throw new UserError(
        `corrupt zip checkpoint: storage ${key} claims ${numel} ${dtype} elements (${bytes} bytes) but data/${key} holds ${entry.originalSize} bytes`,
      );
    }
    const prev = storages.get(key);
    if (prev && prev.dtype === dtype && prev.numel === numel) return prev;
    const ref: StorageRef = { $py: 'storage', dtype, key, location, numel };
    storages.set(key, ref);
    return ref;
  };
  const root = unpickle(records.get(pklEntry.name) as Uint8Array, { persistentLoad });

  const readStorages = (keys: Iterable<string>): Map<string, Uint8Array> => {
    const wanted = new Map<string, ZipEntry>();
    for (const key of keys) wanted.set(`${prefix}data/${key}`, byName.get(`${prefix}data/${key}`) as ZipEntry);
    const got = extract(buf, wanted);
    const out = new Map<string, Uint8Array>();
    for (const key of keys) {
      const bytes = got.get(`${prefix}data/${key}`) as Uint8Array;
      if (bigEndian) {
        const ref = storages.get(key);
        if (ref) byteswap(bytes, itemSize(ref.dtype)); // `extract` returned a fresh copy
      }
      out.set(key, bytes);
    }
    return out;
  };
  return { root, readStorages };
}
