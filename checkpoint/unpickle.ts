/**
 * A restricted pickle reader for PyTorch checkpoints. It executes nothing: every GLOBAL / STACK_GLOBAL is looked
 * up in a short allow-list of functions reimplemented here (tensor rebuilds, OrderedDict, numpy scalars, ...) and
 * anything else stops the load with the global's name. Every length, count and index read from the file is
 * bounded by the bytes actually present, so a truncated or hostile file fails with a one-line error.
 *
 * Values map to JavaScript as: None -> null, bool -> boolean, int -> number (bigint past 2^53), float -> number,
 * str -> string, bytes -> Uint8Array, list -> array, tuple -> frozen array, dict / OrderedDict -> Map, and the
 * few allow-listed objects -> plain records tagged with `$py` (see PyRef).
 */
import { UserError } from '../core/errors.ts';
import { halfToFloat, type Dtype } from './dtypes.ts';

export type PyRef = StorageRef | TensorRef | GlobalRef | NumpyDtype | NamespaceObj;
export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyDict | PyRef;
export type PyDict = Map<PyValue, PyValue>;

/** A torch storage class used as a value (e.g. `torch.FloatStorage` inside a persistent id). */
export interface GlobalRef {
  $py: 'global';
  module: string;
  name: string;
}

/** What a torch-zip persistent id `('storage', torch.FloatStorage, key, location, numel)` resolves to. */
export interface StorageRef {
  $py: 'storage';
  dtype: StorageDtype;
  key: string;
  location: string;
  /** Element count the pickle claims; checked against the record's byte size by the caller. */
  numel: number;
}

/** `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`: a view, materialized later. */
export interface TensorRef {
  $py: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

export interface NumpyDtype {
  $py: 'numpy.dtype';
  str: string;
  byteorder: string;
}

/** argparse.Namespace (DeiT-style checkpoints keep their training args in one): only its fields. */
export interface NamespaceObj {
  $py: 'argparse.Namespace';
  fields: PyDict;
}

export type StorageDtype = Dtype;

export const STORAGE_CLASSES: Readonly<Record<string, StorageDtype>> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

export interface UnpickleOptions {
  /** Resolves a BINPERSID id; absent means persistent ids are refused. */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Deepest MARK nesting accepted (default 1000). */
  maxDepth?: number;
}

type Reducer = (args: readonly PyValue[], where: string) => PyValue;

// Globals that are legitimate in some torch files but that this loader does not rebuild: a precise message
// beats "refusing to load" for them.
const UNSUPPORTED: Readonly<Record<string, string>> = {
  'torch._utils._rebuild_qtensor': 'a quantized tensor',
  'torch._utils._rebuild_sparse_tensor': 'a sparse tensor',
  'torch._utils._rebuild_sparse_csr_tensor': 'a sparse tensor',
  'torch._utils._rebuild_meta_tensor_no_storage': 'a meta tensor',
  'torch._utils._rebuild_tensor_v3': 'a tensor of a newer dtype (torch >= 2.3 _rebuild_tensor_v3)',
  'torch._utils._rebuild_wrapper_subclass': 'a tensor subclass',
  'torch._utils._rebuild_device_tensor_from_numpy': 'a device tensor saved through numpy',
  'torch._tensor._rebuild_from_type_v2': 'a tensor subclass',
  'torch.storage.UntypedStorage': 'an untyped storage',
  'numpy.core.multiarray._reconstruct': 'a numpy array',
  'numpy._core.multiarray._reconstruct': 'a numpy array',
};

const NUMPY_SCALAR_BYTES: Readonly<Record<string, number>> = {
  b1: 1, i1: 1, u1: 1, i2: 2, u2: 2, i4: 4, u4: 4, i8: 8, u8: 8, f2: 2, f4: 4, f8: 8,
};

function fail(msg: string): never {
  throw new UserError(msg);
}

function isTuple(v: PyValue): v is PyValue[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

function tuple(items: PyValue[]): PyValue[] {
  return Object.freeze(items) as PyValue[];
}

function asInt(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  return fail(`corrupt checkpoint: ${what} must be an integer, got ${describe(v)}`);
}

function asIntTuple(v: PyValue, what: string): number[] {
  if (!Array.isArray(v)) fail(`corrupt checkpoint: ${what} must be a tuple of integers, got ${describe(v)}`);
  return v.map((x, i) => asInt(x, `${what}[${i}]`));
}

export function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return Object.isFrozen(v) ? `a tuple of ${v.length}` : `a list of ${v.length}`;
  if (v instanceof Map) return `a dict of ${v.size}`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'object') return v.$py === 'global' ? `${v.module}.${v.name}` : v.$py;
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}...` : v}'`;
  return `${typeof v} ${String(v)}`;
}

function decodeNumpyScalar(dtype: NumpyDtype, raw: Uint8Array, where: string): PyValue {
  const size = NUMPY_SCALAR_BYTES[dtype.str];
  if (size === undefined) fail(`unsupported: ${where} holds a numpy scalar of dtype '${dtype.str}'`);
  if (raw.length !== size) fail(`corrupt checkpoint: numpy scalar of dtype '${dtype.str}' has ${raw.length} bytes, expected ${size}`);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
  const le = dtype.byteorder !== '>';
  switch (dtype.str) {
    case 'b1': return raw[0] !== 0;
    case 'i1': return dv.getInt8(0);
    case 'u1': return dv.getUint8(0);
    case 'i2': return dv.getInt16(0, le);
    case 'u2': return dv.getUint16(0, le);
    case 'i4': return dv.getInt32(0, le);
    case 'u4': return dv.getUint32(0, le);
    case 'i8': return intValue(dv.getBigInt64(0, le));
    case 'u8': return intValue(dv.getBigUint64(0, le));
    case 'f2': return halfToFloat(dv.getUint16(0, le));
    case 'f4': return dv.getFloat32(0, le);
    default: return dv.getFloat64(0, le);
  }
}

function intValue(b: bigint): number | bigint {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function rebuildTensor(args: readonly PyValue[], where: string): TensorRef {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.length < 4) fail(`corrupt checkpoint: ${where} got ${args.length} arguments`);
  const storage = args[0];
  if (storage === null || typeof storage !== 'object' || !('$py' in storage) || storage.$py !== 'storage') {
    return fail(`corrupt checkpoint: ${where} expects a storage, got ${describe(storage)}`);
  }
  const offset = asInt(args[1], 'tensor storage offset');
  const shape = asIntTuple(args[2], 'tensor size');
  const stride = asIntTuple(args[3], 'tensor stride');
  if (shape.length !== stride.length) fail(`corrupt checkpoint: tensor size has ${shape.length} dims but stride has ${stride.length}`);
  return { $py: 'tensor', storage, offset, shape, stride };
}

function rebuildParameter(args: readonly PyValue[], where: string): PyValue {
  // (data, requires_grad, backward_hooks[, state]): a Parameter is its data here.
  const data = args[0];
  if (args.length < 3 || data === null || typeof data !== 'object' || !('$py' in data) || data.$py !== 'tensor') {
    return fail(`corrupt checkpoint: ${where} expects (tensor, requires_grad, hooks), got ${args.length} arguments`);
  }
  return data;
}

function orderedDict(args: readonly PyValue[], where: string): PyDict {
  const d: PyDict = new Map();
  if (args.length === 0) return d;
  const items = args[0];
  if (args.length !== 1 || !Array.isArray(items)) return fail(`corrupt checkpoint: ${where} got unexpected arguments`);
  for (const kv of items) {
    if (!Array.isArray(kv) || kv.length !== 2) fail(`corrupt checkpoint: ${where} item is not a (key, value) pair`);
    d.set(kv[0], kv[1]);
  }
  return d;
}

function codecsEncode(args: readonly PyValue[], where: string): Uint8Array {
  // Protocol 2 pickles bytes as _codecs.encode(latin1 text, 'latin1').
  const [text, encoding] = args;
  if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
    return fail(`unsupported: ${where} with ${describe(encoding ?? null)} encoding`);
  }
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) fail(`corrupt checkpoint: ${where} text is not latin1`);
    out[i] = c;
  }
  return out;
}

function numpyDtype(args: readonly PyValue[], where: string): NumpyDtype {
  const s = args[0];
  if (typeof s !== 'string' || s.length > 16) return fail(`corrupt checkpoint: ${where} expects a dtype string`);
  return { $py: 'numpy.dtype', str: s, byteorder: '=' };
}

function numpyScalar(args: readonly PyValue[], where: string): PyValue {
  const [dt, raw] = args;
  if (dt === null || typeof dt !== 'object' || !('$py' in dt) || dt.$py !== 'numpy.dtype' || !(raw instanceof Uint8Array)) {
    return fail(`corrupt checkpoint: ${where} expects (dtype, bytes)`);
  }
  return decodeNumpyScalar(dt, raw, where);
}

const REDUCERS: Readonly<Record<string, Reducer>> = {
  'collections.OrderedDict': orderedDict,
  'torch._utils._rebuild_tensor_v2': rebuildTensor,
  'torch._utils._rebuild_parameter': rebuildParameter,
  'torch._utils._rebuild_parameter_with_state': rebuildParameter,
  '_codecs.encode': codecsEncode,
  'numpy.dtype': numpyDtype,
  'numpy.core.multiarray.scalar': numpyScalar,
  'numpy._core.multiarray.scalar': numpyScalar,
};

/** Globals that only ever appear as values or as NEWOBJ classes, never called through REDUCE. */
function isValueGlobal(module: string, name: string): boolean {
  return (module === 'torch' && name in STORAGE_CLASSES) || (module === 'argparse' && name === 'Namespace');
}

// Python 3 reads protocol-2 names through these renames (pickle's fix_imports), so report them the same way.
const PY2_MODULES: Readonly<Record<string, string>> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

function resolveGlobal(rawModule: string, name: string): GlobalRef {
  const module = PY2_MODULES[rawModule] ?? rawModule;
  const full = `${module}.${name}`;
  if (full in REDUCERS || isValueGlobal(module, name)) return { $py: 'global', module, name };
  const what = UNSUPPORTED[full];
  if (what) fail(`unsupported: checkpoint contains ${what} (${full}); only dense tensors can be loaded`);
  if (/^(torch\.nn\.|torchvision\.|mmdet\.|timm\.|__main__$|__torch__)/.test(module)) {
    fail(`refusing to load: checkpoint pickles a whole object (${full}), not a state dict; save model.state_dict() instead`);
  }
  return fail(`refusing to load: checkpoint references ${full}, which a state dict never needs (nothing was executed)`);
}

const MAX_LINE = 256;

/**
 * Reads one pickle from `bytes`, resolving only allow-listed globals. Throws UserError on anything else.
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): PyValue {
  return unpickleAt(bytes, 0, opts).value;
}

/** Reads the pickle starting at `start`; `end` is the offset just past its STOP (files may hold several). */
export function unpickleAt(bytes: Uint8Array, start: number, opts: UnpickleOptions = {}): { value: PyValue; end: number } {
  const maxDepth = opts.maxDepth ?? 1000;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8');
  const n = bytes.length;
  let pos = start;
  let stack: PyValue[] = [];
  const metastack: PyValue[][] = [];
  const memo = new Map<number, PyValue>();

  const need = (k: number, what: string): number => {
    if (k < 0 || k > n - pos) fail(`truncated or corrupt checkpoint: ${what} needs ${k} bytes at offset ${pos} but only ${n - pos} remain`);
    const p = pos;
    pos += k;
    return p;
  };
  const u8 = (): number => bytes[need(1, 'a 1-byte argument')];
  const u16 = (): number => dv.getUint16(need(2, 'a 2-byte argument'), true);
  const u32 = (): number => dv.getUint32(need(4, 'a 4-byte argument'), true);
  const u64 = (what: string): number => {
    const v = dv.getBigUint64(need(8, what), true);
    if (v > BigInt(n)) fail(`truncated or corrupt checkpoint: ${what} of ${v} bytes exceeds the ${n}-byte pickle`);
    return Number(v);
  };
  const text = (len: number, what: string): string => {
    const p = need(len, what);
    return utf8.decode(bytes.subarray(p, p + len));
  };
  const raw = (len: number, what: string): Uint8Array => {
    const p = need(len, what);
    return Uint8Array.prototype.slice.call(bytes, p, p + len); // a copy even when `bytes` is a Buffer
  };
  const line = (): string => {
    const end = bytes.subarray(pos, pos + MAX_LINE + 1).indexOf(0x0a) + pos;
    if (end < pos) fail(`truncated or corrupt checkpoint: unterminated GLOBAL name at offset ${pos}`);
    const s = utf8.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    if (stack.length === 0) fail(`corrupt checkpoint: pickle stack underflow at offset ${pos - 1}`);
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail(`corrupt checkpoint: pickle stack underflow at offset ${pos - 1}`);
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) fail(`corrupt checkpoint: pickle MARK missing at offset ${pos - 1}`);
    stack = prev;
    return items;
  };
  const memoGet = (i: number): PyValue => {
    const v = memo.get(i);
    if (v === undefined) fail(`corrupt checkpoint: pickle memo entry ${i} is missing`);
    return v;
  };
  const setItems = (target: PyValue, items: PyValue[]): void => {
    if (!(target instanceof Map)) fail(`corrupt checkpoint: SETITEM(S) on ${describe(target)}`);
    if (items.length % 2) fail('corrupt checkpoint: SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const appendItems = (target: PyValue, items: PyValue[]): void => {
    if (!Array.isArray(target) || Object.isFrozen(target)) fail(`corrupt checkpoint: APPEND(S) on ${describe(target)}`);
    for (const it of items) target.push(it);
  };
  const int = (v: bigint): number | bigint => intValue(v);
  const long = (len: number): number | bigint => {
    if (len > 64) fail(`unsupported: ${len}-byte integer in checkpoint`);
    const p = need(len, 'a LONG');
    if (len === 0) return 0;
    let v = 0n;
    for (let i = len - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[p + i]);
    if (bytes[p + len - 1] & 0x80) v -= 1n << BigInt(8 * len);
    return int(v);
  };

  while (true) {
    if (pos >= n) fail('truncated or corrupt checkpoint: pickle ends without STOP');
    const at = pos;
    const op = bytes[pos++];
    switch (op) {
      case 0x80: { // PROTO
        const proto = u8();
        if (proto > 5) fail(`unsupported: pickle protocol ${proto}`);
        break;
      }
      case 0x95: u64('a FRAME'); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        if (stack.length !== 1 || metastack.length) fail('corrupt checkpoint: pickle stack is not a single value at STOP');
        return { value: stack[0], end: pos };
      }
      case 0x28: // MARK
        if (metastack.length >= maxDepth) fail(`corrupt checkpoint: pickle nests deeper than ${maxDepth} levels`);
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(dv.getInt32(need(4, 'BININT'), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(u8())); break; // LONG1
      case 0x8b: { // LONG4
        const len = dv.getInt32(need(4, 'LONG4'), true);
        if (len < 0) fail('corrupt checkpoint: negative LONG4 length');
        stack.push(long(len));
        break;
      }
      case 0x47: stack.push(dv.getFloat64(need(8, 'BINFLOAT'), false)); break; // BINFLOAT (big-endian)
      case 0x58: { // BINUNICODE
        const len = u32();
        stack.push(text(len, 'a BINUNICODE string'));
        break;
      }
      case 0x8c: stack.push(text(u8(), 'a SHORT_BINUNICODE string')); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(text(u64('a BINUNICODE8 length'), 'a BINUNICODE8 string')); break; // BINUNICODE8
      case 0x55: stack.push(text(u8(), 'a SHORT_BINSTRING')); break; // SHORT_BINSTRING (torch.load decodes utf-8)
      case 0x54: { // BINSTRING
        const len = dv.getInt32(need(4, 'BINSTRING'), true);
        stack.push(text(len, 'a BINSTRING'));
        break;
      }
      case 0x43: stack.push(raw(u8(), 'SHORT_BINBYTES')); break; // SHORT_BINBYTES
      case 0x42: stack.push(raw(u32(), 'BINBYTES')); break; // BINBYTES
      case 0x8e: stack.push(raw(u64('a BINBYTES8 length'), 'BINBYTES8')); break; // BINBYTES8
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x8f: stack.push([]); break; // EMPTY_SET: a set reads as a list
      case 0x64: { // DICT
        const d: PyDict = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      // popMark() swaps `stack`, so take its result before pushing.
      case 0x6c: { const items = popMark(); stack.push(items); break; } // LIST
      case 0x74: { const items = popMark(); stack.push(tuple(items)); break; } // TUPLE
      case 0x91: { const items = popMark(); stack.push(tuple(items)); break; } // FROZENSET
      case 0x85: stack.push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(tuple([a, b, c])); break; } // TUPLE3
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x90: { // ADDITEMS (sets are lists here)
        const items = popMark();
        const t = top();
        if (!Array.isArray(t)) fail(`corrupt checkpoint: ADDITEMS on ${describe(t)}`);
        t.push(...items);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: memo.set(decimal(line()), top()); break; // PUT (protocol 0)
      case 0x67: stack.push(memoGet(decimal(line()))); break; // GET (protocol 0)
      case 0x56: stack.push(rawUnicodeEscape(line())); break; // UNICODE (protocol 0)
      case 0x49: { // INT (protocol 0; '00' / '01' are False / True)
        const t = line();
        stack.push(t === '00' ? false : t === '01' ? true : decimal(t));
        break;
      }
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('corrupt checkpoint: STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (!isTuple(args)) fail(`corrupt checkpoint: REDUCE arguments are ${describe(args)}, not a tuple`);
        if (fn === null || typeof fn !== 'object' || !('$py' in fn) || fn.$py !== 'global') {
          return fail(`corrupt checkpoint: REDUCE on ${describe(fn)}`);
        }
        const full = `${fn.module}.${fn.name}`;
        const reducer = REDUCERS[full];
        if (!reducer) fail(`refusing to load: checkpoint calls ${full}, which is not a function a state dict needs`);
        stack.push(reducer(args, full));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args); only argparse.Namespace is accepted
        const args = pop();
        const cls = pop();
        if (!isTuple(args)) fail('corrupt checkpoint: NEWOBJ arguments are not a tuple');
        if (cls === null || typeof cls !== 'object' || !('$py' in cls) || cls.$py !== 'global' || cls.module !== 'argparse') {
          return fail(`refusing to load: checkpoint instantiates ${describe(cls)}`);
        }
        stack.push({ $py: 'argparse.Namespace', fields: new Map() });
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        build(top(), state);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('corrupt checkpoint: persistent id in a pickle that allows none');
        stack.push(opts.persistentLoad(pid));
        break;
      }
      default:
        fail(`unsupported or corrupt checkpoint: pickle opcode 0x${op.toString(16).padStart(2, '0')}${printable(op)} at offset ${at}`);
    }
  }
}

function decimal(t: string): number {
  if (!/^-?\d{1,15}$/.test(t)) fail(`corrupt checkpoint: '${t.slice(0, 20)}' is not a small decimal integer`);
  return Number(t);
}

function rawUnicodeEscape(t: string): string {
  return t.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u4?: string, u8?: string) => String.fromCodePoint(parseInt(u4 ?? u8 ?? '0', 16)));
}

function printable(op: number): string {
  return op >= 0x20 && op < 0x7f ? ` ('${String.fromCharCode(op)}')` : '';
}

function build(target: PyValue, state: PyValue): void {
  if (target instanceof Map) return; // OrderedDict attributes such as state_dict's _metadata: not needed
  if (target !== null && typeof target === 'object' && '$py' in target) {
    if (target.$py === 'numpy.dtype') {
      // state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
      if (Array.isArray(state) && typeof state[1] === 'string') target.byteorder = state[1];
      return;
    }
    if (target.$py === 'argparse.Namespace') {
      if (!(state instanceof Map)) fail('corrupt checkpoint: argparse.Namespace state is not a dict');
      for (const [k, v] of state) target.fields.set(k, v);
      return;
    }
  }
  fail(`corrupt checkpoint: BUILD on ${describe(target)}`);
}
