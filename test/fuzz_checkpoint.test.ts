/**
 * Hostile checkpoints, generated here: memory budgets tied to what the tensors reference (issue 13, "memory
 * set by the attacker"), and refusals that stay one line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../core/errors.ts';
import { loadCheckpoint, parseCheckpoint } from '../checkpoint/load.ts';
import { cliWithRss, deflatedZeros, gigabyteViewsCheckpoint, stateDictPickle, writeZip } from './helpers/hostile.ts';
import { deflateRawSync } from 'node:zlib';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { torchvisionHeadSpecs } from '../convert/detection.ts';

const GB = 1e9;

describe('checkpoint reader budgets', () => {
  let dir: string;
  let bomb: Uint8Array;
  let bombPath: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fuzz-ckpt-'));
    bomb = gigabyteViewsCheckpoint(4);
    bombPath = join(dir, 'bomb.pth');
    writeFileSync(bombPath, bomb);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds the issue\'s file: four deflated 1 GiB records in about 4 MB', () => {
    expect(bomb.length).toBeGreaterThan(3e6);
    expect(bomb.length).toBeLessThan(10e6);
  });

  it('reads only the bytes the 1-element views reach: four zeros, not 4 GiB', async () => {
    const before = process.memoryUsage().rss;
    const ck = await loadCheckpoint(bombPath);
    expect([...ck.stateDict.keys()]).toEqual(['w0', 'w1', 'w2', 'w3']);
    for (const t of ck.stateDict.values()) {
      expect(t.shape).toEqual([1]);
      expect(Array.from(t.data as Float32Array)).toEqual([0]);
    }
    expect(process.memoryUsage().rss - before).toBeLessThan(0.5 * GB);
  });

  it('the in-memory reader, which can only inflate whole records, refuses before inflating', () => {
    expect(() => parseCheckpoint(bomb)).toThrow(UserError);
    expect(() => parseCheckpoint(bomb)).toThrow(/deflated storage records would inflate past 67108864 bytes \(at data\/0\)/);
  });

  it('a view that reaches the end of a deflated gigabyte is refused by the total budget, before allocating', async () => {
    const numel = 2 ** 28;
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel, shape: [2], stride: [numel - 1] }]);
    const path = join(dir, 'reach.pth');
    writeFileSync(path, writeZip([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/data/0', data: deflatedZeros(16), deflatedSize: numel * 4 },
    ]));
    await expect(loadCheckpoint(path)).rejects.toThrow(new UserError(
      `${path}: deflated storage records would inflate past 67108864 bytes (at data/0); torch.save writes them uncompressed: re-save the checkpoint with torch.save`,
    ));
  });

  it('a view inside a deflated record is read exactly (prefix inflation keeps values)', async () => {
    const values = new Float32Array([1.5, -2, 3.25, 7, 8, 9]);
    const pkl = stateDictPickle([
      { name: 'a', key: '0', numel: 6, offset: 1, shape: [2], stride: [2] },
      { name: 'b', key: '0', numel: 6, shape: [1], stride: [1] },
    ]);
    const path = join(dir, 'prefix.pth');
    writeFileSync(path, writeZip([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/data/0', data: deflateRawSync(Buffer.from(values.buffer)), deflatedSize: 24 },
    ]));
    const ck = await loadCheckpoint(path);
    expect(Array.from(ck.stateDict.get('a')?.data as Float32Array)).toEqual([-2, 7]);
    expect(Array.from(ck.stateDict.get('b')?.data as Float32Array)).toEqual([1.5]);
    // The in-memory reader agrees.
    expect(parseCheckpoint(new Uint8Array(readFileSync(path))).stateDict).toEqual(ck.stateDict);
  });

  it('convert on the 4 MB file stays under 1 GB of RSS and refuses in one line', async () => {
    const r = await cliWithRss(['convert', bombPath, '--flavor', 'torchvision', '--out', join(dir, 'm.onnx')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^fasternet: /);
    expect(r.maxRss).toBeLessThan(1 * GB);
  });

  it('a full-size ResNet50 Mask R-CNN of deflated zeros (a few MB) is bounded: convert refuses under 1 GB of RSS', async () => {
    const specs = [...resnet50ParamSpecs(0).filter((t) => !t.key.endsWith('num_batches_tracked')).map((t) => ({ ...t, key: `backbone.body.${t.key}` })),
      ...torchvisionHeadSpecs([256, 512, 1024, 2048], 91, 256)];
    const tensors = specs.map((t, i) => {
      const numel = t.shape.reduce((a, b) => a * b, 1);
      const stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
      return { name: t.key, key: String(i), numel, shape: t.shape, stride };
    });
    const bytes = writeZip([
      { name: 'archive/data.pkl', data: stateDictPickle(tensors) },
      ...tensors.map((t) => ({ name: `archive/data/${t.key}`, data: deflateRawSync(Buffer.alloc(t.numel * 4)), deflatedSize: t.numel * 4 })),
    ]);
    expect(bytes.length).toBeLessThan(10e6);
    const path = join(dir, 'zeros_r50.pth');
    writeFileSync(path, bytes);
    const r = await cliWithRss(['convert', path, '--flavor', 'torchvision', '--out', join(dir, 'z.onnx')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^fasternet: .*(deflated storage records would inflate past|takes the load past) \d+ bytes/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.maxRss).toBeLessThan(1 * GB);
  }, 60_000);
});
