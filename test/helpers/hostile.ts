/**
 * Builders for hostile inputs, generated in the test (nothing big is committed): torch-zip checkpoints whose
 * records are written by hand (so a record can be pre-deflated and claim any size), and a CLI runner that
 * reports the child's peak RSS.
 */
import { execFile } from 'node:child_process';
import { constants, deflateRawSync } from 'node:zlib';

const enc = (s: string): number[] => Array.from(new TextEncoder().encode(s));
const binunicode = (s: string): number[] => {
  const b = enc(s);
  return [0x58, b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, 0, ...b];
};
const binint = (v: number): number[] => [0x4a, v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255];

export interface PickledTensor {
  name: string;
  /** Storage key (record archive/data/<key>). */
  key: string;
  /** Element count the storage claims (FloatStorage). */
  numel: number;
  offset?: number;
  shape: number[];
  stride: number[];
}

/** data.pkl of {name: _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, shape, stride, False, OrderedDict())}. */
export function stateDictPickle(tensors: PickledTensor[]): Uint8Array {
  const out: number[] = [0x80, 2, 0x7d, 0x28]; // PROTO 2, EMPTY_DICT, MARK
  for (const t of tensors) {
    out.push(...binunicode(t.name), ...enc('ctorch._utils\n_rebuild_tensor_v2\n'), 0x28); // GLOBAL, MARK
    out.push(0x28, ...binunicode('storage'), ...enc('ctorch\nFloatStorage\n'), ...binunicode(t.key), ...binunicode('cpu'), ...binint(t.numel), 0x74, 0x51);
    out.push(...binint(t.offset ?? 0), 0x28, ...t.shape.flatMap(binint), 0x74, 0x28, ...t.stride.flatMap(binint), 0x74);
    out.push(0x89, ...enc('ccollections\nOrderedDict\n'), 0x29, 0x52, 0x74, 0x52); // False, OrderedDict(), TUPLE, REDUCE
  }
  out.push(0x75, 0x2e); // SETITEMS, STOP
  return new Uint8Array(out);
}

export interface ZipRecord {
  name: string;
  /** Bytes as stored in the zip (already deflated when `deflatedSize` is given). */
  data: Uint8Array;
  /** Uncompressed size of a pre-deflated record. */
  deflatedSize?: number;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A zip (no ZIP64) of the records. Pre-deflated records get CRC 0: neither reader (yauzl, fflate) checks CRCs,
 * and computing the CRC of a gigabyte of zeros would cost the test seconds.
 */
export function writeZip(records: ZipRecord[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const r of records) {
    const name = new TextEncoder().encode(r.name);
    const method = r.deflatedSize === undefined ? 0 : 8;
    const usize = r.deflatedSize ?? r.data.length;
    const crc = method === 0 ? crc32(r.data) : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(r.data.length, 18);
    local.writeUInt32LE(usize, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(r.data.length, 20);
    cd.writeUInt32LE(usize, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    parts.push(local, name, r.data);
    central.push(cd, name);
    offset += 30 + name.length + r.data.length;
  }
  const cdSize = central.reduce((s, b) => s + b.length, 0);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(records.length, 8);
  eocd.writeUInt16LE(records.length, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, ...central, eocd]);
}

/**
 * A raw deflate stream of `chunks` x 64 MiB of zeros, ~1 KB per MiB: one 64 MiB chunk compressed with a
 * full flush (byte-aligned, no back-references across it), repeated, then an empty final block.
 */
export function deflatedZeros(chunks: number): Uint8Array {
  const one = deflateRawSync(Buffer.alloc(64 * 2 ** 20), { level: 9, finishFlush: constants.Z_FULL_FLUSH });
  return Buffer.concat([...new Array<Buffer>(chunks).fill(one), Buffer.from([0x03, 0x00])]);
}

/** The checkpoint: `n` deflated 1 GiB records, each behind a 1-element tensor view (about 1 MB each). */
export function gigabyteViewsCheckpoint(n: number): Uint8Array {
  const zeros = deflatedZeros(16);
  const numel = 2 ** 28; // 1 GiB of float32
  const tensors = Array.from({ length: n }, (_, i) => ({ name: `w${i}`, key: String(i), numel, shape: [1], stride: [1] }));
  return writeZip([
    { name: 'archive/data.pkl', data: stateDictPickle(tensors) },
    ...tensors.map((t) => ({ name: `archive/data/${t.key}`, data: zeros, deflatedSize: numel * 4 })),
    { name: 'archive/version', data: new Uint8Array([0x33, 0x0a]) },
  ]);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak resident set of the child, in bytes (GNU time's %M), or NaN where /usr/bin/time is missing. */
  maxRss: number;
}

/** Runs `fasternet ...args` (cli/main.ts through tsx) and measures its peak RSS with GNU time. */
export function cliWithRss(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const marker = 'FASTERNET_MAXRSS_KB=';
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/time',
      ['-f', `${marker}%M`, process.execPath, '--import', 'tsx', 'cli/main.ts', ...args],
      { maxBuffer: 1 << 26, timeout: opts.timeoutMs ?? 120_000, cwd: opts.cwd },
      (err, stdout, stderr) => {
        const m = new RegExp(`${marker}(\\d+)\\n?$`).exec(stderr);
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        const own = (m ? stderr.slice(0, m.index) : stderr).replace(/^Command (exited with non-zero status \d+|terminated by signal \d+)\n/m, '');
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr: own, maxRss: m ? Number(m[1]) * 1024 : NaN });
      },
    );
  });
}

/** A PNG whose header claims width x height (no real pixel data): decoders must refuse it from the header. */
export function hugePngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), chunk('IEND', Buffer.alloc(0))]);
}
