import { describe, expect, it, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { StateDict } from '../core/tensor.ts';
import { syntheticStateDict } from '../backbones/synthetic.ts';
import { fasternetParamSpecs } from '../backbones/fasternet.ts';
import { convertCheckpoint } from '../convert/index.ts';
import { classifyImages, imagenetClassNames, topkSoftmax } from '../api/classify.ts';
import { readModelMetadata } from '../runtime/metadata.ts';

const root = new URL('..', import.meta.url).pathname;
const imgDir = join(root, 'test/fixtures/images');
const index = JSON.parse(readFileSync(join(root, 'test/fixtures/backbones/index.json'), 'utf8'));

/** float32 -> IEEE half bits, round to nearest even. */
function f16bits(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** A safetensors file (the format loadCheckpoint reads besides torch zips), floats as F32 or F16. */
function writeSafetensors(path: string, sd: StateDict, floatDtype: 'F32' | 'F16'): void {
  const header: Record<string, unknown> = {};
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [k, t] of sd) {
    let bytes: Uint8Array, dtype: string;
    if (t.data instanceof Float32Array && floatDtype === 'F16') {
      const h = new Uint16Array(t.data.length);
      for (let i = 0; i < h.length; i++) h[i] = f16bits(t.data[i]);
      bytes = new Uint8Array(h.buffer); dtype = 'F16';
    } else {
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      dtype = t.data instanceof Float32Array ? 'F32' : 'I64';
    }
    header[k] = { dtype, shape: t.shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, ...parts]));
}

describe('convert --flavor imagenet + classify against PyTorch (official T0, torchvision transform)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fasternet-classify-'));
  const sd = syntheticStateDict(fasternetParamSpecs('t0'), 1000);

  beforeAll(async () => {
    writeSafetensors(join(dir, 't0.safetensors'), sd, 'F32');
    writeSafetensors(join(dir, 't0_fp16.safetensors'), sd, 'F16');
    await convertCheckpoint(join(dir, 't0.safetensors'), 'imagenet', join(dir, 't0.onnx'));
    await convertCheckpoint(join(dir, 't0_fp16.safetensors'), 'imagenet', join(dir, 't0_fp16.onnx'));
  });

  it('writes the metadata classify needs', async () => {
    const m = await readModelMetadata(join(dir, 't0.onnx'));
    expect(m).toMatchObject({ arch: 'fasternet_t0', flavor: 'imagenet', numClasses: 1000, input: 'input', outputs: ['logits'] });
    expect(m.preprocess).toMatchObject({ kind: 'resize_center_crop', resize: 248, crop: 224, interpolation: 'bicubic' });
  });

  for (const weights of ['float32', 'float16']) {
    it(`top-5 softmax matches PyTorch with ${weights} weights`, async () => {
      const refs = index.classify.filter((c: { weights: string }) => c.weights === weights);
      const model = join(dir, weights === 'float16' ? 't0_fp16.onnx' : 't0.onnx');
      const res = await classifyImages(model, refs.map((r: { file: string }) => join(imgDir, r.file)), { topk: 5 });
      refs.forEach((r: { top: Array<{ index: number; score: number }> }, i: number) => {
        expect(res[i].top.map((t) => t.index)).toEqual(r.top.map((t) => t.index));
        res[i].top.forEach((t, j) => expect(Math.abs(t.score - r.top[j].score)).toBeLessThan(2e-5));
      });
    });
  }

  it('CLI writes the JSON report', () => {
    const out = join(dir, 'top.json');
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'classify', join(imgDir, 'chelsea.jpg'),
      '--model', join(dir, 't0.onnx'), '--topk', '3', '--json', out], { stdio: 'pipe' }).toString();
    const r = JSON.parse(readFileSync(out, 'utf8'));
    const ref = index.classify.find((c: { weights: string; file: string }) => c.weights === 'float32' && c.file === 'chelsea.jpg');
    expect(r).toHaveLength(1);
    expect(r[0].file).toBe(join(imgDir, 'chelsea.jpg'));
    expect(r[0].top.map((t: { index: number }) => t.index)).toEqual(ref.top.slice(0, 3).map((t: { index: number }) => t.index));
    expect(Object.keys(r[0].top[0]).sort()).toEqual(['index', 'name', 'score']);
    // The names are torchvision's ImageNet-1k list (a few spot checks of well-known indices).
    const names = imagenetClassNames();
    expect([names.length, names[0], names[285], names[999]]).toEqual([1000, 'tench', 'Egyptian cat', 'toilet tissue']);
    for (const t of r[0].top) expect(t.name).toBe(names[t.index]);
    const t0 = r[0].top[0];
    expect(stdout).toContain(`${join(imgDir, 'chelsea.jpg')}: ${t0.name} [${t0.index}] (${t0.score.toFixed(4)})`);
  });

  it('names missing and unexpected keys', async () => {
    const bad = new Map(sd);
    bad.delete('stages.2.blocks.0.mlp.3.weight');
    bad.set('extra.weight', { shape: [1], data: new Float32Array(1) });
    writeSafetensors(join(dir, 'bad.safetensors'), bad, 'F32');
    await expect(convertCheckpoint(join(dir, 'bad.safetensors'), 'imagenet', join(dir, 'bad.onnx'), { arch: 't0' }))
      .rejects.toThrow(/1 missing key \(stages\.2\.blocks\.0\.mlp\.3\.weight\), 1 unexpected key \(extra\.weight\)/);
  });

  it('rejects unknown flavors and non-fasternet models', async () => {
    await expect(convertCheckpoint(join(dir, 't0.safetensors'), 'coco', join(dir, 'x.onnx'))).rejects.toThrow(/unknown flavor coco/);
    await expect(classifyImages(join(imgDir, 'chelsea.jpg'), [])).rejects.toThrow(/not an ONNX model|not written by fasternet/);
  });
});

describe('topkSoftmax', () => {
  it('is a softmax sorted by score, ties by index', () => {
    const t = topkSoftmax(new Float32Array([1, 3, 3, 0]), 3);
    const z = Math.exp(1) + 2 * Math.exp(3) + 1;
    expect(t.map((x) => x.index)).toEqual([1, 2, 0]);
    expect(t[0].score).toBeCloseTo(Math.exp(3) / z, 12);
    expect(t[2].score).toBeCloseTo(Math.exp(1) / z, 12);
  });
});
