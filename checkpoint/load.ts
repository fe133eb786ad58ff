/**
 * Safe loading of PyTorch checkpoints: `torch.save` files, zip (torch >= 1.6) or legacy, through a restricted
 * unpickler that executes nothing, and safetensors. Returns the state dict as runtime tensors, unwrapped from the usual
 * wrappers: a bare (Ordered)dict, mmdetection's {'state_dict', 'meta', 'optimizer'}, {'model': ...}
 * (FasterNet / DeiT style) or {'model_state_dict': ...}. Modeled on `torch.load(p, map_location='cpu')`
 * followed by mmcv's checkpoint unwrapping.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { UserError } from '../core/errors.ts';
import type { StateDict } from '../core/tensor.ts';
import { checkView, itemSize, materialize, outputBytes } from './dtypes.ts';
import { looksLikeSafetensors, parseSafetensors } from './safetensors.ts';
import { readTorchLegacy } from './torch_legacy.ts';
import { openTorchZipFile, readTorchZip, type TorchZip } from './torch_zip.ts';
import { describe, type PyDict, type PyValue, type TensorRef } from './unpickle.ts';

export interface Checkpoint {
  stateDict: StateDict;
  /**
   * mmdetection's `meta`; else a wrapper's other top-level entries minus optimizer-like state and anything
   * holding tensors; or safetensors `__metadata__`. Plain data (see toPlain); absent for a bare state dict.
   */
  meta?: unknown;
  format: 'torch-zip' | 'torch-legacy' | 'safetensors';
}

export interface CheckpointOptions {
  /** Largest file accepted, in bytes (default: no limit; files other than torch zips must be under 2 GiB). */
  maxBytes?: number;
}

const READ_LIMIT = 2 ** 31 - 1;
const WRAPPER_KEYS = ['state_dict', 'model', 'model_state_dict'] as const;
const MAX_META_DEPTH = 100;
/** Training state that wrappers carry next to the weights; left out of `meta`. */
const TRAINING_STATE = new Set(['optimizer', 'optimizer_states', 'lr_scheduler', 'lr_schedulers', 'scaler', 'model_ema']);
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/**
 * Reads and parses a checkpoint file; errors name the file. torch zips are read record by record (only the
 * storages the state dict uses, no whole-file buffer, any size); legacy torch and safetensors files are read
 * whole (under 2 GiB).
 */
export async function loadCheckpoint(path: string, opts: CheckpointOptions = {}): Promise<Checkpoint> {
  const maxBytes = opts.maxBytes ?? Infinity;
  let size: number;
  const head = new Uint8Array(4);
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new UserError(`checkpoint ${path} is not a file`);
    size = st.size;
    const fh = await open(path, 'r');
    try {
      await fh.read(head, 0, 4, 0);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read checkpoint ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (size > maxBytes) throw new UserError(`checkpoint ${path} is ${size} bytes, over the ${maxBytes}-byte limit`);
  try {
    if (isZip(head)) return await loadTorchZip(path, size);
    if (size > READ_LIMIT) throw new UserError(`checkpoint is ${size} bytes; files over 2 GiB can only be read in torch zip format`);
    return parseCheckpoint(await readFile(path));
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`${path}: ${err.message}`);
    throw err;
  }
}

function isZip(buf: Uint8Array): boolean {
  return startsWith(buf, [0x50, 0x4b, 0x03, 0x04]) || startsWith(buf, [0x50, 0x4b, 0x05, 0x06]);
}

function startsWith(buf: Uint8Array, magic: readonly number[]): boolean {
  return buf.length >= magic.length && magic.every((b, i) => buf[i] === b);
}

/**
 * Parses a checkpoint held in memory, sniffing the format from its first bytes. Tensors may share memory
 * with `buf` (safetensors) but never with each other. torch zip storages are copied out of `buf` once.
 */
export function parseCheckpoint(buf: Uint8Array, opts: CheckpointOptions = {}): Checkpoint {
  const maxBytes = opts.maxBytes ?? READ_LIMIT;
  if (buf.length > maxBytes) throw new UserError(`checkpoint is ${buf.length} bytes, over the ${maxBytes}-byte limit`);
  if (isZip(buf)) return parseTorchZip(buf);
  if (looksLikeSafetensors(buf)) return { ...parseSafetensors(buf), format: 'safetensors' };
  if (startsWith(buf, LEGACY_MAGIC)) return parseTorchLegacy(buf);
  if (buf[0] === 0x80) throw new UserError('file is a bare pickle, not a torch.save checkpoint; save it with torch.save(state_dict, path)');
  const head = Array.from(buf.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new UserError(`unrecognized checkpoint format (first bytes: ${head || 'none'}); expected a torch.save file or a safetensors file`);
}

function isTensorRef(v: PyValue): v is TensorRef {
  return v !== null && typeof v === 'object' && '$py' in v && v.$py === 'tensor';
}

interface Selected {
  root: PyDict;
  wrapper?: string;
  refs: Array<[string, TensorRef]>;
}

/** Finds the state dict inside the unpickled object and its tensors, checking their total size. */
function selectTensors(root: PyValue, fileSize: number): Selected {
  if (!(root instanceof Map)) throw new UserError(`checkpoint holds ${describe(root)}, not a dict of tensors`);
  const wrapper = WRAPPER_KEYS.find((k) => root.get(k) instanceof Map);
  const sdValue = wrapper ? (root.get(wrapper) as PyDict) : root;
  const refs: Array<[string, TensorRef]> = [];
  for (const [k, v] of sdValue) if (typeof k === 'string' && isTensorRef(v)) refs.push([k, v]);
  if (refs.length === 0) {
    const keys = [...root.keys()].slice(0, 8).map((k) => (typeof k === 'string' ? k : describe(k)));
    throw new UserError(`no tensors found in the checkpoint${wrapper ? `'s '${wrapper}'` : ''} (top-level keys: ${keys.join(', ') || 'none'})`);
  }
  // Expanded (stride-0) views can ask for far more memory than the file holds: cap what they may build.
  // 4x covers float16 / int8 storages widened to 32 bits; 64 MiB lets small files use views freely while
  // keeping what convert then builds from a file under 10 MB far below 1 GB.
  const budget = Math.max(4 * fileSize, 64 * 2 ** 20);
  let total = 0;
  for (const [name, ref] of refs) {
    let n = 1;
    for (const d of ref.shape) n *= Math.max(d, 0);
    total += outputBytes(ref.storage.dtype, n);
    if (total > budget) throw new UserError(`tensor ${name} of shape [${ref.shape.join(', ')}] takes the load past ${budget} bytes of tensor data`);
  }
  return wrapper ? { root, wrapper, refs } : { root, refs };
}

/**
 * For each storage the selected tensors use, the bytes they reach (a prefix of it): the readers read or
 * inflate only that much, so a storage that claims a gigabyte behind a 1-element view costs 4 bytes.
 */
function storageNeeds(sel: Selected): Map<string, number> {
  const needs = new Map<string, number>();
  for (const [name, ref] of sel.refs) {
    const { key, dtype, numel } = ref.storage;
    const n = checkView(ref, numel, `tensor ${name}`);
    let last = ref.offset;
    for (let d = 0; d < ref.shape.length; d++) last += (ref.shape[d] - 1) * ref.stride[d];
    const bytes = n === 0 ? 0 : (last + 1) * itemSize(dtype);
    needs.set(key, Math.max(needs.get(key) ?? 0, bytes));
  }
  return needs;
}

/** Materializes the selected tensors from their storages' bytes (fresh buffers, so they may be aliased). */
function finish(sel: Selected, storages: Map<string, Uint8Array>, format: Checkpoint['format']): Checkpoint {
  const stateDict: StateDict = new Map();
  const shared = new Set<string>();
  for (const [name, ref] of sel.refs) {
    const { key, dtype, numel } = ref.storage;
    const bytes = (storages.get(key) as Uint8Array).subarray(0, numel * itemSize(dtype)); // at most what the tensors reach
    // The first tensor of a storage may alias the storage bytes; later ones copy so tensors never overlap.
    stateDict.set(name, materialize(bytes, dtype, ref, `tensor ${name}`, !shared.has(key)));
    shared.add(key);
  }
  const meta = sel.wrapper ? metaOf(sel.root, sel.wrapper) : undefined;
  return meta === undefined ? { stateDict, format } : { stateDict, meta, format };
}

/** Deflated records (torch never writes them; a re-zipped file may) can inflate this far. */
function maxInflated(fileSize: number): number {
  return Math.max(64 * fileSize, 2 ** 30);
}

function parseTorchZip(buf: Uint8Array): Checkpoint {
  const zip = readTorchZip(buf, maxInflated(buf.length));
  const sel = selectTensors(zip.root, buf.length);
  return finish(sel, zip.readStorages(storageNeeds(sel)), 'torch-zip');
}

function parseTorchLegacy(buf: Uint8Array): Checkpoint {
  let legacy: TorchZip;
  try {
    legacy = readTorchLegacy(buf);
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    throw new UserError(
      `${err.message} (legacy, pre-1.6 torch.save format); re-saving it with torch >= 1.6 gives a zip checkpoint: ` +
        `python -c "import torch; torch.save(torch.load('old.pth', map_location='cpu'), 'new.pth')"`,
    );
  }
  const sel = selectTensors(legacy.root, buf.length);
  return finish(sel, legacy.readStorages(storageNeeds(sel)), 'torch-legacy');
}

async function loadTorchZip(path: string, fileSize: number): Promise<Checkpoint> {
  const zip = await openTorchZipFile(path, fileSize, maxInflated(fileSize));
  try {
    const sel = selectTensors(zip.root, fileSize);
    return finish(sel, await zip.readStorages(storageNeeds(sel)), 'torch-zip');
  } finally {
    await zip.close();
  }
}

function metaOf(root: PyDict, wrapper: string): unknown {
  if (root.has('meta')) return toPlain(root.get('meta') as PyValue);
  const rest: Record<string, unknown> = {};
  let any = false;
  for (const [k, v] of root) {
    if (k === wrapper || typeof k !== 'string' || TRAINING_STATE.has(k) || containsTensor(v, new Set(), 0)) continue;
    define(rest, k, toPlain(v));
    any = true;
  }
  return any ? rest : undefined;
}

function containsTensor(v: PyValue, seen: Set<object>, depth: number): boolean {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array || seen.has(v)) return false;
  if (depth > MAX_META_DEPTH) throw new UserError(`checkpoint nests deeper than ${MAX_META_DEPTH} levels`);
  seen.add(v);
  if (Array.isArray(v)) return v.some((x) => containsTensor(x, seen, depth + 1));
  if (v instanceof Map) {
    for (const x of v.values()) if (containsTensor(x, seen, depth + 1)) return true;
    return false;
  }
  if (v.$py === 'argparse.Namespace') return containsTensor(v.fields, seen, depth + 1);
  return v.$py === 'tensor' || v.$py === 'storage';
}

function define(obj: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so that a '__proto__' key stays a plain field.
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Converts unpickled values to plain JSON-like data: dicts -> objects (keys stringified), tuples -> arrays,
 * numpy scalars -> numbers, Namespace -> object, tensors -> {tensor: {dtype, shape}} (no data).
 */
export function toPlain(v: PyValue, depth = 0, seen = new Map<object, unknown>()): unknown {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (depth > MAX_META_DEPTH) throw new UserError(`checkpoint meta nests deeper than ${MAX_META_DEPTH} levels`);
  const done = seen.get(v);
  if (done !== undefined) return done;
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    seen.set(v, out);
    for (const x of v) out.push(toPlain(x, depth + 1, seen));
    return out;
  }
  if (v instanceof Map || v.$py === 'argparse.Namespace') {
    const out: Record<string, unknown> = {};
    seen.set(v, out);
    for (const [k, x] of v instanceof Map ? v : v.fields) define(out, typeof k === 'string' ? k : String(toPlain(k, depth + 1, seen)), toPlain(x, depth + 1, seen));
    return out;
  }
  switch (v.$py) {
    case 'tensor': return { tensor: { dtype: v.storage.dtype, shape: [...v.shape] } };
    case 'numpy.dtype': return v.str;
    case 'storage': return { storage: { dtype: v.dtype, numel: v.numel } };
    case 'global': return `${v.module}.${v.name}`;
  }
}

function listKeys(keys: readonly string[], max = 5, sep = ', '): string {
  const shown = keys.slice(0, max).join(sep);
  return keys.length > max ? `${shown}${sep}... ${keys.length - max} more` : shown;
}

function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}

/**
 * Throws a UserError naming missing and unexpected keys (sorted, first few of each), like
 * `load_state_dict(strict=True)`: "FasterNet-S checkpoint: 2 missing keys (a, b), 1 unexpected key (foo)".
 * `ignore` drops keys from both sides (e.g. `k => k.endsWith('num_batches_tracked')`).
 */
export function checkKeys(sd: StateDict, expected: Iterable<string>, what: string, opts: { ignore?: (k: string) => boolean } = {}): void {
  const ignore = opts.ignore ?? (() => false);
  const want = new Set(expected);
  const missing = [...want].filter((k) => !sd.has(k) && !ignore(k)).sort();
  const unexpected = [...sd.keys()].filter((k) => !want.has(k) && !ignore(k)).sort();
  const parts: string[] = [];
  if (missing.length) parts.push(`${plural(missing.length, 'missing key')} (${listKeys(missing)})`);
  if (unexpected.length) parts.push(`${plural(unexpected.length, 'unexpected key')} (${listKeys(unexpected)})`);
  if (parts.length) throw new UserError(`${what}: ${parts.join(', ')}`);
}

/**
 * Throws a UserError listing tensors whose shape differs from `expected` (keys absent from `sd` are skipped:
 * checkKeys reports those).
 */
export function checkShapes(sd: StateDict, expected: Iterable<[string, readonly number[]]>, what: string): void {
  const bad: string[] = [];
  for (const [k, shape] of expected) {
    const t = sd.get(k);
    if (t && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      bad.push(`${k}: [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
  }
  bad.sort();
  if (bad.length) throw new UserError(`${what}: ${plural(bad.length, 'shape mismatch', 'shape mismatches')} (${listKeys(bad, 3, '; ')})`);
}

/**
 * The entries whose key starts with `prefix`, with it removed (mmcv `_load_checkpoint_with_prefix`), e.g.
 * 'backbone.' from a detector or 'module.' from DataParallel. With `keepOthers`, other keys stay as they are
 * (mmcv `revise_keys`). Throws a UserError when no key has the prefix.
 */
export function stripPrefix(sd: StateDict, prefix: string, opts: { keepOthers?: boolean } = {}): StateDict {
  const out: StateDict = new Map();
  let hits = 0;
  for (const [k, t] of sd) {
    const name = k.startsWith(prefix) ? k.slice(prefix.length) : opts.keepOthers ? k : undefined;
    if (name === undefined) continue;
    if (out.has(name)) throw new UserError(`stripping '${prefix}' makes two checkpoint keys '${name}'`);
    out.set(name, t);
    if (name !== k) hits++;
  }
  if (hits === 0) throw new UserError(`no checkpoint key starts with '${prefix}' (keys look like: ${listKeys([...sd.keys()], 3)})`);
  return out;
}

