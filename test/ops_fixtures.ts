/** Loader for test/fixtures/ops (made by scripts/fixtures/make_ops_fixtures.py). */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'ops');

interface ArrayMeta {
  dtype: 'float32' | 'int32' | 'uint8';
  shape: number[];
  offset: number;
  bytes: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Case = Record<string, any>;

export interface Topic {
  cases: Case[];
  f32(key: string): Float32Array;
  i32(key: string): Int32Array;
  shape(key: string): number[];
}

const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8'));

export function loadTopic(name: string): Topic {
  const t = manifest.topics[name];
  if (!t) throw new Error(`no fixture topic ${name}`);
  const buf = gunzipSync(readFileSync(join(DIR, t.file)));
  const meta = (key: string): ArrayMeta => {
    const m = t.arrays[key];
    if (!m) throw new Error(`fixture ${name} has no array ${key}`);
    return m;
  };
  // Copy into an aligned buffer: offsets inside the file need not be 4-byte aligned relative to the Buffer pool.
  const slice = (m: ArrayMeta): ArrayBuffer => buf.buffer.slice(buf.byteOffset + m.offset, buf.byteOffset + m.offset + m.bytes) as ArrayBuffer;
  return {
    cases: t.cases,
    f32(key) {
      const m = meta(key);
      if (m.dtype !== 'float32') throw new Error(`${key} is ${m.dtype}`);
      return new Float32Array(slice(m));
    },
    i32(key) {
      const m = meta(key);
      if (m.dtype === 'int32') return new Int32Array(slice(m));
      if (m.dtype === 'uint8') return Int32Array.from(new Uint8Array(slice(m)));
      throw new Error(`${key} is ${m.dtype}`);
    },
    shape(key) {
      return meta(key).shape;
    },
  };
}

/** The seeded feature maps of the RoIAlign fixtures (same integer hash as feature_hash in the generator). */
export function featureHash(level: number, C: number, H: number, W: number): Float32Array {
  const out = new Float32Array(C * H * W);
  let k = 0;
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let h = (Math.imul(x, 0x9e3779b1) + Math.imul(y, 0x85ebca77) + Math.imul(c, 0xc2b2ae3d) + Math.imul(level, 0x27d4eb2f)) >>> 0;
        h = (h ^ (h >>> 15)) >>> 0;
        h = Math.imul(h, 0x2c1b3c6d) >>> 0;
        h = (h ^ (h >>> 12)) >>> 0;
        out[k++] = (h >>> 8) / (1 << 24) - 0.5;
      }
    }
  }
  return out;
}

/** Row-major run lengths (zeros first) -> full 0/1 mask. */
export function decodeRuns(runs: Int32Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let p = 0;
  for (let r = 0; r < runs.length; r++) {
    if (r & 1) out.fill(1, p, p + runs[r]);
    p += runs[r];
  }
  if (p !== size) throw new Error(`runs cover ${p} pixels, expected ${size}`);
  return out;
}
