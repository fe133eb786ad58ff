import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { UserError } from '../core/errors.ts';
import { checkKeys, checkShapes, loadCheckpoint, parseCheckpoint, stripPrefix, type Checkpoint } from '../checkpoint/load.ts';
import { unpickle } from '../checkpoint/unpickle.ts';
import type { StateDict, Tensor } from '../core/tensor.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'checkpoint');
const MARKER = '/tmp/fasternet_checkpoint_pwned';

interface ExpectedTensor {
  shape: number[];
  dtype: string;
  offset: number;
  count: number;
}
interface ExpectedFile {
  tensors: Record<string, ExpectedTensor>;
  meta?: Record<string, unknown>;
}
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { files: Record<string, ExpectedFile> };
const raw = readFileSync(join(DIR, 'expected.bin'));
const values = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));

const ARRAY_TYPE: Record<string, unknown> = {
  float32: Float32Array, float16: Float32Array, bfloat16: Float32Array, float64: Float32Array,
  int64: BigInt64Array, int32: Int32Array, int16: Int32Array, int8: Int32Array, uint8: Uint8Array, bool: Uint8Array,
};

/** Every tensor of `sd` equals PyTorch's values exactly (float types rounded to float32), in file order. */
function expectStateDict(sd: StateDict, file: string): void {
  const exp = expected.files[file].tensors;
  expect([...sd.keys()].sort()).toEqual(Object.keys(exp).sort());
  for (const [key, e] of Object.entries(exp)) {
    const t = sd.get(key) as Tensor;
    expect(t.shape, key).toEqual(e.shape);
    expect(t.sourceDtype, key).toBe(e.dtype);
    expect(t.data, key).toBeInstanceOf(ARRAY_TYPE[e.dtype] as never);
    expect(t.data.length, key).toBe(e.count);
    const want = values.subarray(e.offset, e.offset + e.count);
    const got = Array.from(t.data as ArrayLike<number | bigint>, Number);
    const ref = t.data instanceof Float32Array ? Array.from(want, Math.fround) : Array.from(want);
    // Object.is tells -0 from 0 and needs no tolerance: loading is exact.
    const mismatches = got.map((v, i) => (Object.is(v, ref[i]) ? -1 : i)).filter((i) => i >= 0);
    expect(mismatches, `${key}: got ${got.slice(0, 6)} want ${ref.slice(0, 6)}`).toEqual([]);
  }
}

/** Loads through both readers (file: yauzl, record by record; buffer: fflate) and checks they agree. */
async function load(name: string): Promise<Checkpoint> {
  const fromFile = await loadCheckpoint(join(DIR, name));
  const fromBuffer = parseCheckpoint(readFileSync(join(DIR, name)));
  expect(fromBuffer).toEqual(fromFile);
  return fromFile;
}

/** Both readers refuse; returns the file reader's message (which starts with the path). */
async function refusal(name: string): Promise<string> {
  const err = await loadCheckpoint(join(DIR, name)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, name).toBeInstanceOf(UserError);
  const msg = (err as UserError).message;
  const bufMsg = parseError(readFileSync(join(DIR, name)));
  if (!name.includes('truncated')) expect(msg).toBe(`${join(DIR, name)}: ${bufMsg}`);
  return msg;
}

function parseError(buf: Uint8Array): string {
  try {
    parseCheckpoint(buf);
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as UserError).message;
  }
  throw new Error('expected parseCheckpoint to throw');
}

describe('torch.save zip checkpoints', () => {
  it('reads every dtype, strided views and shared storages exactly', async () => {
    const ck = await load('dtypes.pth');
    expect(ck.format).toBe('torch-zip');
    expect(ck.meta).toBeUndefined();
    expectStateDict(ck.stateDict, 'dtypes.pth');
    expect(ck.stateDict.has('note')).toBe(false); // the non-tensor entry
  });

  it('keeps file order and gives tensors that share a storage their own memory', async () => {
    const sd = (await load('dtypes.pth')).stateDict;
    expect([...sd.keys()].slice(0, 5)).toEqual(['conv.weight', 'f16', 'bf16', 'f64', 'bn.num_batches_tracked']);
    const base = sd.get('base') as Tensor<Float32Array>;
    const transposed = sd.get('transposed') as Tensor<Float32Array>;
    const before = transposed.data[0];
    base.data[0] += 1; // a converter fusing BN in place must not corrupt a neighbour
    expect(transposed.data[0]).toBe(before);
    const a = sd.get('shared.a') as Tensor<Float32Array>;
    const b = sd.get('shared.b') as Tensor<Float32Array>;
    expect(a.data.buffer === b.data.buffer && a.data.byteOffset + a.data.byteLength > b.data.byteOffset).toBe(false);
  });

  it('reads ZIP64 records, deflated entries and big-endian storages to the same values', async () => {
    for (const name of ['zip64.pth', 'bigendian.pth']) expectStateDict((await load(name)).stateDict, 'dtypes.pth');
    expectStateDict((await load('deflated.pth')).stateDict, 'protocol4.pth');
  });

  it('unwraps mmdetection checkpoints and returns their meta', async () => {
    const ck = await load('mmdet.pth');
    expectStateDict(ck.stateDict, 'mmdet.pth');
    const meta = ck.meta as Record<string, unknown>;
    const { raw: bytes, ...rest } = meta;
    expect(rest).toEqual(expected.files['mmdet.pth'].meta);
    expect(bytes).toEqual(new Uint8Array([0, 255, 97, 98]));
    expect(meta.iter).toBe(2 ** 40);
  });

  it("unwraps {'model': ...} with Parameters and argparse args, and protocol-4 {'model_state_dict': ...}", async () => {
    const wrapped = await load('model_wrapper.pth');
    expectStateDict(wrapped.stateDict, 'model_wrapper.pth');
    expect(wrapped.meta).toEqual(expected.files['model_wrapper.pth'].meta); // optimizer state left out
    const p4 = await load('protocol4.pth');
    expectStateDict(p4.stateDict, 'protocol4.pth');
    expect(p4.meta).toEqual(expected.files['protocol4.pth'].meta);
  });

  it('reads the legacy (pre-1.6) format to the same values and meta', async () => {
    const legacy = await load('legacy.pth');
    expect(legacy.format).toBe('torch-legacy');
    expectStateDict(legacy.stateDict, 'protocol4.pth');
    expectStateDict((await load('legacy_dtypes.pth')).stateDict, 'dtypes.pth');
    const mmdet = await load('legacy_mmdet.pth');
    expectStateDict(mmdet.stateDict, 'mmdet.pth');
    expect(mmdet.meta).toEqual((await load('mmdet.pth')).meta);
  });

  it('reads a hand-made zip with honest sizes (the control for the lying ones)', async () => {
    const sd = (await load('malicious/control_honest.pth')).stateDict;
    expect(Array.from((sd.get('w') as Tensor).data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe('safetensors', () => {
  it('reads all dtypes in data order with __metadata__', async () => {
    const ck = await load('tensors.safetensors');
    expect(ck.format).toBe('safetensors');
    expectStateDict(ck.stateDict, 'tensors.safetensors');
    expect([...ck.stateDict.keys()]).toEqual(Object.keys(expected.files['tensors.safetensors'].tensors).sort().reverse());
    expect(ck.meta).toEqual(expected.files['tensors.safetensors'].meta);
  });

  it('copes with a buffer at an unaligned offset', () => {
    const file = readFileSync(join(DIR, 'tensors.safetensors'));
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    expectStateDict(parseCheckpoint(shifted.subarray(1)).stateDict, 'tensors.safetensors');
  });

  const file = readFileSync(join(DIR, 'tensors.safetensors'));
  const headerLen = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerLen).toString()) as Record<string, { data_offsets: number[]; dtype: string; shape: number[] }>;
  const data = file.subarray(8 + headerLen);
  const rebuild = (h: unknown, body: Uint8Array = data, lenOverride?: bigint): Uint8Array => {
    const json = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
    return Buffer.concat([len, json, body]);
  };

  it('refuses corrupt headers with one-line messages', () => {
    expect(parseCheckpoint(rebuild(header)).stateDict.size).toBe(9); // the rebuild itself is valid
    const bad = (patch: (h: typeof header) => void): string => {
      const h = structuredClone(header);
      patch(h);
      return parseError(rebuild(h));
    };
    expect(bad((h) => (h['a.f32'].data_offsets = [0, 1 << 20]))).toMatch(/a\.f32 data_offsets \[0, 1048576\] fall outside/);
    expect(bad((h) => (h['a.f32'].shape = [3, 3]))).toMatch(/a\.f32 has 24 bytes but F32 \[3, 3\] needs 36/);
    expect(bad((h) => (h['a.f32'].dtype = 'F8_E4M3'))).toMatch(/unsupported: safetensors tensor a\.f32 has dtype F8_E4M3/);
    expect(bad((h) => (h['b.f16'].data_offsets = [...h['a.f32'].data_offsets].map((x, i) => (i ? x - 16 : x))))).toMatch(/overlap|needs/);
    expect(parseError(rebuild(header, data.subarray(0, 10)))).toMatch(/fall outside the 10-byte data section/);
    const huge = Buffer.from(file);
    huge.writeBigUInt64LE(BigInt(file.length), 0);
    expect(parseError(huge)).toMatch(/unrecognized checkpoint format/); // an impossible header length is not sniffed as safetensors
    const broken = Buffer.from(file);
    broken[8 + 1] = 0x7b; // '{{'
    expect(parseError(broken)).toMatch(/corrupt safetensors file: header is not valid JSON/);
  });
});

describe('refusals', () => {
  it('refuses code-running pickles, naming the global, and runs nothing', async () => {
    rmSync(MARKER, { force: true });
    const cases: Array<[string, string]> = [
      ['malicious/reduce_os_system.pth', 'posix.system'],
      ['malicious/builtins_eval.pth', 'builtins.eval'],
      ['malicious/stack_global_exec.pth', 'builtins.exec'],
      ['malicious/global_posix_system.pth', 'posix.system'],
    ];
    for (const [name, global] of cases) {
      expect(await refusal(name)).toBe(
        `${join(DIR, name)}: refusing to load: checkpoint references ${global}, which a state dict never needs (nothing was executed)`,
      );
      expect(existsSync(MARKER), name).toBe(false);
    }
  });

  it('refuses a pickled whole model with advice', async () => {
    expect(await refusal('malicious/whole_model.pth')).toMatch(
      /pickles a whole object \(torch\.nn\.modules\.container\.Sequential\), not a state dict; save model\.state_dict\(\) instead$/,
    );
  });

  it('refuses files whose sizes lie', async () => {
    expect(await refusal('malicious/storage_larger_than_entry.pth')).toMatch(
      /storage 0 claims 1000000 float32 elements \(4000000 bytes\) but data\/0 holds 24 bytes$/,
    );
    expect(await refusal('malicious/view_outside_storage.pth')).toMatch(
      /tensor w: view \(offset 2, size \[2, 3\], stride \[3, 1\]\) reaches element 7 but its storage holds 6$/,
    );
    expect(await refusal('malicious/truncated.pth')).toMatch(/truncated or corrupt zip checkpoint/);
  });

  it('refuses a ZIP64 locator pointing past the file (yauzl alone would crash the process) and bad deflate data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckbad-'));
    try {
      const z = Buffer.from(readFileSync(join(DIR, 'zip64.pth')));
      const locator = z.lastIndexOf(Buffer.from([0x50, 0x4b, 0x06, 0x07]));
      z.writeBigUInt64LE(0xffffffffffffff00n, locator + 8);
      writeFileSync(join(dir, 'z64.pth'), z);
      await expect(loadCheckpoint(join(dir, 'z64.pth'))).rejects.toThrow(/truncated or corrupt zip checkpoint \(a zip record points at bytes \d+\.\.\d+, outside the 5476-byte file\)/);
      expect(parseError(z)).toMatch(/truncated or corrupt zip checkpoint: entry dtypes\/data\.pkl claims 4294967295 bytes/);
      const d = Buffer.from(readFileSync(join(DIR, 'deflated.pth')));
      d.fill(0xff, 60, 70); // inside data.pkl's deflate stream
      writeFileSync(join(dir, 'deflated.pth'), d);
      // The inflate stream is destroyed mid-read; the descriptor must survive until we close it ourselves.
      await expect(loadCheckpoint(join(dir, 'deflated.pth'))).rejects.toThrow(/truncated or corrupt zip checkpoint \(invalid bit length repeat\)/);
      expect(parseError(d)).toMatch(/truncated or corrupt zip checkpoint/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explains how to re-save a legacy file it cannot read', () => {
    const good = readFileSync(join(DIR, 'legacy_dtypes.pth'));
    const msg = parseError(good.subarray(0, good.length - 100)); // cut inside the last storage
    expect(msg).toMatch(/^corrupt legacy checkpoint: storage \d+ claims \d+ elements, more than the file holds \(legacy, pre-1\.6 torch\.save format\)/);
    expect(msg).toContain("torch.save(torch.load('old.pth', map_location='cpu'), 'new.pth')");
    expect(parseError(good.subarray(0, 300))).toMatch(/^truncated or corrupt checkpoint: .*\(legacy, pre-1\.6/);
  });

  it('names missing files, size limits and unknown formats', async () => {
    await expect(loadCheckpoint(join(DIR, 'nope.pth'))).rejects.toThrow(/cannot read checkpoint .*nope\.pth: ENOENT/);
    await expect(loadCheckpoint(join(DIR, 'dtypes.pth'), { maxBytes: 1000 })).rejects.toThrow(/is \d+ bytes, over the 1000-byte limit/);
    await expect(loadCheckpoint(DIR)).rejects.toThrow(/is not a file/);
    expect(parseError(new Uint8Array(0))).toMatch(/unrecognized checkpoint format \(first bytes: none\)/);
    expect(parseError(new TextEncoder().encode('hello world'))).toMatch(/first bytes: 68 65 6c 6c 6f 20 77 6f/);
    expect(parseError(new Uint8Array([0x80, 0x02, 0x7d, 0x2e]))).toMatch(/bare pickle/);
    expect(parseError(zipSync({ 'a/b.txt': new Uint8Array([1]) }, { level: 0 }))).toMatch(/no <archive>\/data\.pkl/);
    expect(parseError(zipSync({ 'm/code/x.py': new Uint8Array([1]), 'm/constants.pkl': new Uint8Array([0x80]) }, { level: 0 }))).toMatch(
      /TorchScript archive/,
    );
  });
});

/** A torch-zip whose data.pkl is `pkl` (protocol 2 opcodes written by hand). */
function torchZip(pkl: number[] | Uint8Array, storages: Record<string, Uint8Array> = {}): Uint8Array {
  const files: Record<string, Uint8Array> = { 'archive/data.pkl': new Uint8Array(pkl), 'archive/version': new Uint8Array([0x33, 0x0a]) };
  for (const [k, v] of Object.entries(storages)) files[`archive/data/${k}`] = v;
  return zipSync(files, { level: 0 });
}

const enc = (s: string): number[] => Array.from(new TextEncoder().encode(s));
const binunicode = (s: string): number[] => {
  const b = enc(s);
  return [0x58, b.length & 255, (b.length >> 8) & 255, 0, 0, ...b];
};

describe('restricted unpickler bounds', () => {
  const cases: Array<[string, number[], RegExp]> = [
    ['string longer than the pickle', [0x80, 2, 0x58, 0xf0, 0xff, 0xff, 0xff, 0x61], /BINUNICODE string needs 4294967280 bytes at offset 7 but only 1 remain/],
    ['missing STOP', [0x80, 2, 0x7d], /pickle ends without STOP/],
    ['memo entry never stored', [0x80, 2, 0x68, 7, 0x2e], /memo entry 7 is missing/],
    ['stack underflow', [0x80, 2, 0x86, 0x2e], /stack underflow/],
    ['unknown opcode', [0x80, 2, 0xff, 0x2e], /pickle opcode 0xff at offset 2/],
    ['extension registry', [0x80, 2, 0x82, 1, 0x2e], /pickle opcode 0x82/],
    ['deep nesting', [0x80, 2, ...new Array(5000).fill(0x28)], /nests deeper than 1000 levels/],
    ['calling a storage class', [0x80, 2, ...enc('ctorch\nFloatStorage\n'), 0x29, 0x52, 0x2e], /calls torch\.FloatStorage, which is not a function/],
    ['NEWOBJ of a non-Namespace', [0x80, 2, ...enc('ctorch\nFloatStorage\n'), 0x29, 0x81, 0x2e], /instantiates torch\.FloatStorage/],
    ['quantized tensors', [0x80, 2, ...enc('ctorch._utils\n_rebuild_qtensor\n'), 0x2e], /a quantized tensor \(torch\._utils\._rebuild_qtensor\)/],
    ['unterminated GLOBAL', [0x80, 2, ...enc('cos'), 0x2e], /unterminated GLOBAL name/],
    ['odd SETITEMS', [0x80, 2, 0x7d, 0x28, 0x4e, 0x75, 0x2e], /odd number of items/],
    ['APPEND to a tuple', [0x80, 2, 0x29, 0x4e, 0x61, 0x2e], /APPEND\(S\) on a tuple of 0/],
    ['bad persistent id', [0x80, 2, ...binunicode('x'), 0x51, 0x2e], /unexpected persistent id 'x'/],
  ];
  for (const [what, pkl, msg] of cases) {
    it(`refuses ${what}`, () => {
      expect(parseError(torchZip(pkl))).toMatch(msg);
    });
  }

  /** {'w': _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', 1), 0, (size,), (stride,), False, OrderedDict())} */
  const tensorPickle = (key: string, size: number, stride: number): number[] => {
    const int = (v: number): number[] => [0x4a, v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255];
    return [
      0x80, 2, 0x7d, ...binunicode('w'), ...enc('ctorch._utils\n_rebuild_tensor_v2\n'), 0x28,
      0x28, ...binunicode('storage'), ...enc('ctorch\nFloatStorage\n'), ...binunicode(key), ...binunicode('cpu'), 0x4b, 1, 0x74, 0x51,
      0x4b, 0, ...int(size), 0x85, ...int(stride), 0x85, 0x89, ...enc('ccollections\nOrderedDict\n'), 0x29, 0x52, 0x74, 0x52, 0x73, 0x2e,
    ];
  };
  const oneFloat = new Uint8Array(new Float32Array([4.5]).buffer);

  it('refuses a persistent id naming a storage record that is not there', () => {
    expect(parseError(torchZip(tensorPickle('9', 1, 1)))).toMatch(/storage 9 has no data\/9 record/);
    const ok = parseCheckpoint(torchZip(tensorPickle('9', 1, 1), { '9': oneFloat }));
    expect(Array.from(ok.stateDict.get('w')?.data as Float32Array)).toEqual([4.5]);
  });

  it('materializes stride-0 views but refuses ones that would exhaust memory', () => {
    const expanded = parseCheckpoint(torchZip(tensorPickle('0', 5, 0), { '0': oneFloat }));
    expect(Array.from(expanded.stateDict.get('w')?.data as Float32Array)).toEqual([4.5, 4.5, 4.5, 4.5, 4.5]);
    expect(parseError(torchZip(tensorPickle('0', 2 ** 30, 0), { '0': oneFloat }))).toMatch(/tensor w of shape \[1073741824\] takes the load past \d+ bytes/);
    expect(parseError(torchZip(tensorPickle('0', 2, 1), { '0': oneFloat }))).toMatch(/reaches element 1 but its storage holds 1/);
  });

  it('bounds meta nesting', () => {
    // {'meta': [[[...]]] 150 deep, 'state_dict': {'w': tensor}}
    const deep = [...new Array(150).fill(0x5d), ...new Array(149).fill(0x61)];
    const tensor = tensorPickle('0', 1, 1).slice(2, -1); // the dict {'w': tensor} without PROTO and STOP
    const pkl = [0x80, 2, 0x7d, ...binunicode('meta'), ...deep, 0x73, ...binunicode('state_dict'), ...tensor, 0x73, 0x2e];
    expect(parseError(torchZip(pkl, { '0': oneFloat }))).toMatch(/meta nests deeper than 100 levels/);
  });

  it('decodes values it allows: ints of every width, floats, bytes, nested containers', () => {
    const pkl = new Uint8Array([
      0x80, 2, 0x5d, 0x28, 0x4a, 0xfe, 0xff, 0xff, 0xff, 0x4d, 0x34, 0x12, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x8a, 1, 0xff,
      0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x43, 2, 0x61, 0x62, 0x8c, 2, 0xc3, 0xa9, 0x4e, 0x88, 0x65, 0x2e,
    ]);
    expect(unpickle(pkl)).toEqual([-2, 0x1234, 1n << 64n, -1, 1.5, new Uint8Array([0x61, 0x62]), 'é', null, true]);
  });

  it('never throws anything but UserError on damaged copies of a real checkpoint', () => {
    const good = readFileSync(join(DIR, 'dtypes.pth'));
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let refused = 0;
    for (let trial = 0; trial < 300; trial++) {
      const buf = new Uint8Array(trial % 3 === 0 ? good.subarray(0, rnd(good.length)) : good);
      for (let k = 0; k < 1 + rnd(8); k++) buf[rnd(buf.length)] = rnd(256);
      try {
        parseCheckpoint(buf);
      } catch (e) {
        if (!(e instanceof UserError)) throw new Error(`trial ${trial}: ${String(e)}`);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
  });

  it('never throws anything but UserError, nor leaks a descriptor, reading damaged files', async () => {
    const good = readFileSync(join(DIR, 'mmdet.pth'));
    const dir = mkdtempSync(join(tmpdir(), 'ckfuzz-'));
    let seed = 777;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const fdsBefore = readdirSync('/proc/self/fd').length;
    let refused = 0;
    try {
      for (let trial = 0; trial < 120; trial++) {
        const buf = new Uint8Array(trial % 3 === 0 ? good.subarray(0, rnd(good.length)) : good);
        for (let k = 0; k < 1 + rnd(8); k++) buf[rnd(buf.length)] = rnd(256);
        const path = join(dir, `t${trial}.pth`);
        writeFileSync(path, buf);
        try {
          await loadCheckpoint(path);
        } catch (e) {
          if (!(e instanceof UserError)) throw new Error(`trial ${trial}: ${String(e)}`);
          refused++;
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(refused).toBeGreaterThan(40);
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fdsBefore);
  });
});

describe('checkKeys / checkShapes / stripPrefix', () => {
  const t = (shape: number[]): Tensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const sd: StateDict = new Map([
    ['stages.0.0.mlp.1.weight', t([2])],
    ['foo', t([1])],
    ['bn.num_batches_tracked', t([])],
  ]);

  it('lists missing and unexpected keys, sorted and counted', () => {
    const want = ['stages.0.0.mlp.1.weight', 'stages.0.0.mlp.0.weight', 'patch_embed.proj.weight'];
    expect(() => checkKeys(sd, want, 'FasterNet-S checkpoint')).toThrow(
      new UserError('FasterNet-S checkpoint: 2 missing keys (patch_embed.proj.weight, stages.0.0.mlp.0.weight), 2 unexpected keys (bn.num_batches_tracked, foo)'),
    );
    expect(() => checkKeys(sd, want, 'X', { ignore: (k) => k.endsWith('num_batches_tracked') || k.startsWith('patch_embed') })).toThrow(
      /^X: 1 missing key \(stages\.0\.0\.mlp\.0\.weight\), 1 unexpected key \(foo\)$/,
    );
    expect(() => checkKeys(sd, [...sd.keys()], 'X')).not.toThrow();
    const many = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    expect(() => checkKeys(new Map(), many, 'X')).toThrow(/^X: 12 missing keys \(k00, k01, k02, k03, k04, \.\.\. 7 more\)$/);
  });

  it('compares shapes', () => {
    expect(() => checkShapes(sd, [['foo', [1]], ['absent', [3]]], 'X')).not.toThrow();
    expect(() => checkShapes(sd, [['foo', [2, 1]]], 'X')).toThrow(/^X: 1 shape mismatch \(foo: \[1\], expected \[2, 1\]\)$/);
    expect(() => checkShapes(sd, [['foo', [2]], ['bn.num_batches_tracked', [1]]], 'X')).toThrow(
      /^X: 2 shape mismatches \(bn\.num_batches_tracked: \[\], expected \[1\]; foo: \[1\], expected \[2\]\)$/,
    );
  });

  it('selects and strips a prefix', async () => {
    const full = (await load('mmdet.pth')).stateDict;
    const backbone = stripPrefix(full, 'backbone.');
    expect([...backbone.keys()]).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']);
    expect(backbone.get('0.weight')).toBe(full.get('backbone.0.weight'));
    expect([...stripPrefix(full, 'backbone.', { keepOthers: true }).keys()]).toContain('neck.weight');
    const clash: StateDict = new Map([['module.a', t([1])], ['a', t([1])]]);
    expect(() => stripPrefix(clash, 'module.', { keepOthers: true })).toThrow(/stripping 'module\.' makes two checkpoint keys 'a'/);
    expect(() => stripPrefix(full, 'module.')).toThrow(/no checkpoint key starts with 'module\.' \(keys look like: backbone\.0\.weight, backbone\.0\.bias, backbone\.1\.weight, \.\.\. 6 more\)/);
  });
});
