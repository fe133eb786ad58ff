/**
 * The torch >= 1.6 `torch.save` zip layout: `<archive>/data.pkl` (the pickled object, tensors as persistent ids
 * naming storages), `<archive>/data/<key>` (raw storage bytes, stored uncompressed), `<archive>/version` and,
 * from torch 2.x, `<archive>/byteorder`.
 *
 * Zip structure comes from libraries that read the central directory (torch writes data descriptors, so the
 * local headers alone cannot be trusted): fflate for an in-memory buffer (sync; extracting copies each entry
 * once), yauzl for a file (async; reads only the records needed, each straight into its own buffer, so a
 * checkpoint's optimizer state is never read and no whole-file buffer exists; ZIP64 and files over 4 GiB work).
 */
import { read as fsRead } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { unzipSync, type UnzipFileInfo } from 'fflate';
import yauzl from 'yauzl';
import { UserError } from '../core/errors.ts';
import { byteswap, itemSize } from './dtypes.ts';
import { STORAGE_CLASSES, describe, unpickle, type PyValue, type StorageRef } from './unpickle.ts';

export interface ZipEntry {
  name: string;
  /** Compressed size. */
  size: number;
  originalSize: number;
  compression: number;
}

export interface TorchZip {
  /** The unpickled object, with tensors as TensorRef views. */
  root: PyValue;
  /**
   * Raw little-endian bytes of each requested storage (key -> bytes its tensors reach: only that prefix is
   * read or inflated), in fresh buffers (so they may be aliased).
   */
  readStorages(needs: StorageNeeds): Map<string, Uint8Array>;
}

/** Storage key -> the bytes of it that the selected tensors reach (a prefix of the record). */
export type StorageNeeds = ReadonlyMap<string, number>;

export interface TorchZipFile {
  root: PyValue;
  readStorages(needs: StorageNeeds): Promise<Map<string, Uint8Array>>;
  close(): Promise<void>;
}

// Smallest central-directory record: bounds the entry count a corrupt directory can claim.
const MIN_CDIR_RECORD = 46;
const MAX_PICKLE_BYTES = 1 << 30;
const MAX_ENTRIES = 10_000_000;

/**
 * Bytes all deflated storage records together may inflate to: real weights barely compress, so a file that
 * would inflate past 16 times its size (or 64 MiB for small files) is hostile or not a state dict. This
 * bounds the memory a small file can claim (a 10 MB file stays well under 1 GB of resident memory in convert).
 */
export function inflateBudget(fileSize: number): number {
  return Math.max(16 * fileSize, 64 * 2 ** 20);
}

function zipError(err: unknown): never {
  if (err instanceof UserError) throw err;
  const msg = err instanceof Error ? err.message : String(err);
  throw new UserError(`truncated or corrupt zip checkpoint (${msg})`);
}

/** Checks one directory entry and adds it; shared by both readers. */
function addEntry(entries: Map<string, ZipEntry>, e: ZipEntry, fileSize: number, maxInflated: number): void {
  if (entries.size >= Math.min(MAX_ENTRIES, fileSize / MIN_CDIR_RECORD)) {
    throw new UserError('corrupt zip checkpoint: central directory lists more entries than fit in the file');
  }
  if (!e.name || entries.has(e.name)) throw new UserError(`corrupt zip checkpoint: ${e.name ? `duplicate entry ${e.name}` : 'entry without a name'}`);
  const sane = (v: number): boolean => Number.isSafeInteger(v) && v >= 0;
  if (!sane(e.size) || e.size > fileSize || !sane(e.originalSize)) {
    throw new UserError(`truncated or corrupt zip checkpoint: entry ${e.name} claims ${e.size} bytes in a ${fileSize}-byte file`);
  }
  if (e.compression === 0 && e.originalSize !== e.size) throw new UserError(`corrupt zip checkpoint: stored entry ${e.name} has mismatched sizes`);
  if (e.compression === 8 && e.originalSize > maxInflated) throw new UserError(`zip checkpoint entry ${e.name} inflates to ${e.originalSize} bytes, over the limit`);
  if (e.compression !== 0 && e.compression !== 8) throw new UserError(`unsupported: zip entry ${e.name} uses compression method ${e.compression}`);
  entries.set(e.name, e);
}

interface Layout {
  prefix: string;
  entries: Map<string, ZipEntry>;
  /** data.pkl and byteorder (if any): the records read before unpickling. */
  control: ZipEntry[];
}

function layout(entries: Map<string, ZipEntry>): Layout {
  const all = [...entries.values()];
  const pkl = all.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkl.length === 0) {
    if (all.some((e) => /(^|\/)(constants\.pkl|code\/)/.test(e.name))) {
      throw new UserError('this is a TorchScript archive (torch.jit.save), not a state dict: save model.state_dict() with torch.save instead');
    }
    const names = all.slice(0, 5).map((e) => e.name).join(', ');
    throw new UserError(`zip file has no <archive>/data.pkl, so it is not a torch.save checkpoint (entries: ${names || 'none'})`);
  }
  if (pkl.length > 1) throw new UserError(`corrupt zip checkpoint: ${pkl.length} data.pkl records`);
  const prefix = pkl[0].name.slice(0, -'data.pkl'.length);
  if (pkl[0].originalSize > MAX_PICKLE_BYTES) throw new UserError(`data.pkl is ${pkl[0].originalSize} bytes, too large for a state dict`);
  const control = [pkl[0]];
  const order = entries.get(`${prefix}byteorder`);
  if (order) {
    if (order.originalSize > 16) throw new UserError('corrupt zip checkpoint: byteorder record is too long');
    control.push(order);
  }
  return { prefix, entries, control };
}

interface Unpickled {
  root: PyValue;
  storages: Map<string, StorageRef>;
  bigEndian: boolean;
}

function unpickleArchive(lay: Layout, records: Map<string, Uint8Array>): Unpickled {
  const { prefix, entries } = lay;
  let bigEndian = false;
  const orderBytes = records.get(`${prefix}byteorder`);
  if (orderBytes) {
    const order = new TextDecoder().decode(orderBytes);
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
    const entry = entries.get(`${prefix}data/${key}`);
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
  const root = unpickle(records.get(`${prefix}data.pkl`) as Uint8Array, { persistentLoad });
  return { root, storages, bigEndian };
}

/** A record to read: its directory entry and how many of its leading bytes are wanted. */
interface Wanted {
  e: ZipEntry;
  bytes: number;
}

function whole(e: ZipEntry): Wanted {
  return { e, bytes: e.originalSize };
}

/**
 * The storage records to read, each cut to the bytes its tensors reach, after checking the total that will
 * be inflated against `budget`: a few-MB file of deflated zeros must not make the reader allocate gigabytes
 * for tensors that are 1-element views. `inflatesWhole`: the reader can only inflate records whole (fflate).
 */
function storageEntries(lay: Layout, needs: StorageNeeds, budget: number, inflatesWhole: boolean): Wanted[] {
  const out: Wanted[] = [];
  let inflated = 0;
  for (const [k, bytes] of needs) {
    const e = lay.entries.get(`${lay.prefix}data/${k}`) as ZipEntry;
    const w = { e, bytes: Math.min(bytes, e.originalSize) };
    if (e.compression === 8) {
      inflated += inflatesWhole ? e.originalSize : w.bytes;
      if (inflated > budget) {
        throw new UserError(`deflated storage records would inflate past ${budget} bytes (at data/${k}); torch.save writes them uncompressed: re-save the checkpoint with torch.save`);
      }
    }
    out.push(w);
  }
  return out;
}

/** Byte-swaps big-endian storages in place (their buffers are fresh) and keys the result by storage key. */
function finishStorages(lay: Layout, u: Unpickled, records: Map<string, Uint8Array>): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const start = `${lay.prefix}data/`.length;
  for (const [name, bytes] of records) {
    const key = name.slice(start);
    const ref = u.storages.get(key);
    if (u.bigEndian && ref) byteswap(bytes, itemSize(ref.dtype));
    out.set(key, bytes);
  }
  return out;
}

// ---- in-memory buffer: fflate --------------------------------------------------------------------------

function listEntriesSync(buf: Uint8Array, maxInflated: number): Map<string, ZipEntry> {
  const entries = new Map<string, ZipEntry>();
  try {
    unzipSync(buf, {
      filter: (f: UnzipFileInfo) => {
        addEntry(entries, { name: f.name, size: f.size, originalSize: f.originalSize, compression: f.compression }, buf.length, maxInflated);
        return false;
      },
    });
  } catch (err) {
    zipError(err);
  }
  return entries;
}

/** Extracts the named entries (only those), checks each came out at its directory size, keeps the wanted prefix. */
function extractSync(buf: Uint8Array, wanted: Wanted[]): Map<string, Uint8Array> {
  const names = new Set(wanted.map((w) => w.e.name));
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(buf, { filter: (f) => names.has(f.name) });
  } catch (err) {
    zipError(err);
  }
  const out = new Map<string, Uint8Array>();
  for (const { e, bytes } of wanted) {
    const data = files[e.name];
    if (!data || data.length !== e.originalSize) {
      throw new UserError(`truncated or corrupt zip checkpoint: entry ${e.name} has ${data?.length ?? 0} of its ${e.originalSize} bytes`);
    }
    out.set(e.name, bytes === data.length ? data : data.subarray(0, bytes));
  }
  return out;
}

/** Parses the zip directory and data.pkl of an in-memory checkpoint; storages are read on request. */
export function readTorchZip(buf: Uint8Array, maxInflated: number): TorchZip {
  const lay = layout(listEntriesSync(buf, maxInflated));
  const u = unpickleArchive(lay, extractSync(buf, lay.control.map(whole)));
  return {
    root: u.root,
    readStorages: (needs) => finishStorages(lay, u, extractSync(buf, storageEntries(lay, needs, inflateBudget(buf.length), true))),
  };
}

// ---- file: yauzl ---------------------------------------------------------------------------------------

function outOfRange(start: number, end: number, size: number): Error | undefined {
  const ok = Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end <= size;
  return ok ? undefined : new Error(`a zip record points at bytes ${start}..${end}, outside the ${size}-byte file`);
}

/** Bytes [start, end) of `fd`. Unlike fs.ReadStream, destroying it never closes the descriptor. */
function rangeStream(fd: number, start: number, end: number): Readable {
  let pos = start;
  return new Readable({
    read(size) {
      const n = Math.min(Math.max(size, 1 << 16), end - pos);
      if (n <= 0) {
        this.push(null);
        return;
      }
      const buf = Buffer.allocUnsafe(n);
      fsRead(fd, buf, 0, n, pos, (err, got) => {
        if (err) return void this.destroy(err);
        if (got === 0) return void this.destroy(new Error('unexpected end of file'));
        pos += got;
        this.push(got < n ? buf.subarray(0, got) : buf);
      });
    },
  });
}

/**
 * yauzl's file access, through our descriptor, refusing reads outside the file: yauzl itself passes offsets
 * from a corrupt ZIP64 record straight to fs.read, which throws outside any callback and kills the process.
 */
class CheckedReader extends yauzl.RandomAccessReader {
  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const err = outOfRange(start, end, this.size);
    if (err) return new Readable({ read() { this.destroy(err); } });
    return rangeStream(this.fd, start, end);
  }

  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null, bytesRead: number) => void): void {
    const err = outOfRange(position, position + length, this.size);
    if (err) {
      setImmediate(callback, err, 0);
      return;
    }
    fsRead(this.fd, buffer, offset, length, position, (e, n) => callback(e, n));
  }

  override close(callback: (err: Error | null) => void): void {
    setImmediate(callback, null); // the descriptor belongs to openTorchZipFile
  }
}

/** The first `bytes` bytes of a stored record. */
async function readFully(fh: FileHandle, e: ZipEntry, bytes: number, position: number, fileSize: number): Promise<Uint8Array> {
  const bad = outOfRange(position, position + e.size, fileSize);
  if (bad) throw new UserError(`truncated or corrupt zip checkpoint: entry ${e.name}: ${bad.message}`);
  const out = new Uint8Array(bytes);
  let done = 0;
  while (done < bytes) {
    const { bytesRead } = await fh.read(out, done, Math.min(bytes - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new UserError(`truncated zip checkpoint: entry ${e.name} has ${done} of its ${e.size} bytes`);
    done += bytesRead;
  }
  return out;
}

/** Inflates the first `bytes` bytes of a deflated record and stops there (a whole record is checked for size). */
async function inflateEntry(zip: yauzl.ZipFile, raw: yauzl.Entry, e: ZipEntry, bytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(bytes);
  let done = 0;
  const stream = await zip.openReadStreamPromise(raw);
  const prefix = bytes < e.originalSize;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const take = prefix ? Math.min(chunk.length, bytes - done) : chunk.length;
    if (done + take > out.length) throw new UserError(`corrupt zip checkpoint: entry ${e.name} inflates past its ${out.length} bytes`);
    out.set(take === chunk.length ? chunk : chunk.subarray(0, take), done);
    done += take;
    if (prefix && done === bytes) {
      stream.destroy();
      break;
    }
  }
  if (done !== out.length) throw new UserError(`truncated zip checkpoint: entry ${e.name} inflates to ${done} of its ${e.originalSize} bytes`);
  return out;
}

/**
 * Opens a checkpoint file: reads the zip directory and data.pkl; storages are read on request. Call close().
 */
export async function openTorchZipFile(path: string, fileSize: number, maxInflated: number): Promise<TorchZipFile> {
  const fh = await open(path, 'r');
  let zip: yauzl.ZipFile | undefined;
  try {
    const entries = new Map<string, ZipEntry>();
    const raws = new Map<string, yauzl.Entry>();
    try {
      const reader = new CheckedReader(fh.fd, fileSize);
      zip = await yauzl.fromRandomAccessReaderPromise(reader, fileSize, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true });
      for await (const raw of zip.eachEntry()) {
        const e = { name: raw.fileName, size: raw.compressedSize, originalSize: raw.uncompressedSize, compression: raw.compressionMethod };
        addEntry(entries, e, fileSize, maxInflated);
        raws.set(e.name, raw);
      }
    } catch (err) {
      zipError(err);
    }
    const z = zip as yauzl.ZipFile;
    const read = async (wanted: Wanted[]): Promise<Map<string, Uint8Array>> => {
      const out = new Map<string, Uint8Array>();
      try {
        for (const { e, bytes } of wanted) {
          const raw = raws.get(e.name) as yauzl.Entry;
          if (e.compression === 8) {
            out.set(e.name, await inflateEntry(z, raw, e, bytes));
          } else {
            const { fileDataStart } = await z.readLocalFileHeaderPromise(raw, { minimal: true });
            out.set(e.name, await readFully(fh, e, bytes, fileDataStart, fileSize));
          }
        }
      } catch (err) {
        zipError(err);
      }
      return out;
    };
    const lay = layout(entries);
    const u = unpickleArchive(lay, await read(lay.control.map(whole)));
    return {
      root: u.root,
      readStorages: async (needs) => finishStorages(lay, u, await read(storageEntries(lay, needs, inflateBudget(fileSize), false))),
      close: async () => {
        z.close();
        await fh.close();
      },
    };
  } catch (err) {
    zip?.close();
    await fh.close();
    throw err;
  }
}
