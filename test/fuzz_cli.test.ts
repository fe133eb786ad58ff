/**
 * The commands under hostile inputs and I/O faults (issue 13, items 2 and 3): per-input isolation in detect
 * (elongated images that the frameworks cannot resize, a non-image, a missing file: one line each, exit 1,
 * the good input's result unchanged), outputs checked for writability before any work, atomic outputs (a
 * full disk or kill -9 leaves the old file or none at the final path, never a torn one). Read-only and
 * full disks are tiny tmpfs mounts, so those cases run only where the test may mount (root); inputs are
 * generated here.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../core/errors.ts';
import { checkWritable, writeFileAtomicSync } from '../core/fs.ts';
import { readMetadataProps, readModelMetadata } from '../runtime/metadata.ts';
import { QUANTIZED_KEY } from '../api/quantize.ts';
import { cliWithRss } from './helpers/hostile.ts';
import { safetensorsBytes } from './helpers/safetensors.ts';
import { tvStateDict } from './helpers/synthetic_detectors.ts';

const MODEL = 'models/fasternet_t0_canvases.onnx';

function tryMount(dir: string, opts: string): boolean {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
}

/** Lines of stderr, without the trailing newline. */
const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

/** Runs `fasternet args` and SIGKILLs it after `ms`; resolves when it is gone. */
function killAfter(args: string[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('fasternet detect and convert: isolation, writability, atomic outputs', () => {
  let dir: string;
  let ro: string | undefined;
  let full: string | undefined;
  let ckpt: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fuzz-cli-'));
    await sharp({ create: { width: 1000, height: 3, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toFile(join(dir, 'wide.png'));
    await sharp({ create: { width: 5000, height: 1, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toFile(join(dir, 'line.png'));
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 20, g: 100, b: 10 } } }).png().toFile(join(dir, 'ok.png'));
    writeFileSync(join(dir, 'notimage.png'), 'hello');
    ckpt = join(dir, 'tv.safetensors');
    writeFileSync(ckpt, safetensorsBytes(tvStateDict()));
    if (tryMount(join(dir, 'ro'), 'ro,size=64k')) ro = join(dir, 'ro');
    if (tryMount(join(dir, 'full'), 'size=64k')) full = join(dir, 'full');
  }, 60_000);
  afterAll(() => {
    for (const m of [ro, full]) if (m) unmount(m);
    rmSync(dir, { recursive: true, force: true });
  });

  it('one bad input is one line; the others go on; exit 1; the good result is the one it gives alone', async () => {
    const alone = join(dir, 'alone.json');
    const r0 = await cliWithRss(['detect', join(dir, 'ok.png'), '--model', MODEL, '--json', alone]);
    expect(r0.code).toBe(0);
    const batch = join(dir, 'batch.json');
    const inputs = ['wide.png', 'ok.png', 'line.png', 'notimage.png', 'missing.png'].map((f) => join(dir, f));
    const r = await cliWithRss(['detect', ...inputs, '--model', MODEL, '--json', batch]);
    expect(r.code).toBe(1);
    const err = lines(r.stderr);
    expect(err).toHaveLength(5); // four bad inputs + the summary
    expect(err[0]).toBe(`fasternet detect: ${inputs[0]}: image 1000x3 resizes to 256x0 under min_size 256 / max_size 256 (too elongated; torchvision fails on it too)`);
    expect(err[1]).toMatch(new RegExp(`^fasternet detect: ${inputs[2]}: image 5000x1 resizes to \\d+x0 under`));
    expect(err[2]).toMatch(new RegExp(`^fasternet detect: .*${inputs[3]}`));
    expect(err[3]).toMatch(new RegExp(`^fasternet detect: .*${inputs[4]}`));
    expect(err[4]).toBe('fasternet detect: 4 of 5 inputs failed');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const want = JSON.parse(readFileSync(alone, 'utf8'));
    expect(JSON.parse(readFileSync(batch, 'utf8'))).toEqual(want);
  }, 60_000);

  it('--json into a folder that does not exist fails at once, before any image', async () => {
    const r = await cliWithRss(['detect', join(dir, 'ok.png'), '--model', MODEL, '--json', join(dir, 'nope', 'r.json')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([`fasternet: --json ${join(dir, 'nope', 'r.json')}: folder ${join(dir, 'nope')} does not exist`]);
  });

  it('--json into a read-only file system fails at once (tmpfs mounted ro)', async (ctx) => {
    if (!ro) ctx.skip();
    const r = await cliWithRss(['detect', join(dir, 'ok.png'), '--model', MODEL, '--json', join(ro!, 'r.json')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([`fasternet: cannot write ${join(ro!, 'r.json')}: EROFS (read-only file system)`]);
  });

  it('a disk that fills on the final write leaves the old file whole and no temporary file (tmpfs of 64 KiB)', async (ctx) => {
    if (!full) ctx.skip();
    const out = join(full!, 'm.onnx');
    writeFileSync(out, 'OLD');
    const r = await cliWithRss(['convert', ckpt, '--flavor', 'torchvision', '--out', out]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`fasternet: cannot write ${out}: ENOSPC (disk full)`]);
    expect(readFileSync(out, 'utf8')).toBe('OLD');
    expect(readdirSync(full!)).toEqual(['m.onnx']);
    // The library helper: same guarantees.
    expect(() => writeFileAtomicSync(out, new Uint8Array(1 << 20))).toThrow(new UserError(`cannot write ${out}: ENOSPC (disk full)`));
    expect(readFileSync(out, 'utf8')).toBe('OLD');
    expect(readdirSync(full!)).toEqual(['m.onnx']);
  }, 60_000);

  it('checkWritable refuses a folder given as a file, passes "-"', () => {
    expect(() => checkWritable(dir)).toThrow(new UserError(`cannot write output ${dir}: it is a folder`));
    expect(() => checkWritable('-')).not.toThrow();
  });

  it('kill -9 during convert and detect --json leaves the old file or a whole new one, never a torn one', async () => {
    const onnx = join(dir, 'killed.onnx');
    const json = join(dir, 'killed.json');
    for (const ms of [1500, 2500, 3500]) {
      writeFileSync(onnx, 'OLD');
      await killAfter(['convert', ckpt, '--flavor', 'torchvision', '--out', onnx], ms);
      const now = readFileSync(onnx);
      if (now.toString() !== 'OLD') expect((await readModelMetadata(onnx)).flavor).toBe('torchvision');
    }
    for (const ms of [1500, 3000]) {
      writeFileSync(json, 'OLD');
      await killAfter(['detect', join(dir, 'ok.png'), join(dir, 'ok.png'), '--model', MODEL, '--json', json], ms);
      const now = readFileSync(json, 'utf8');
      if (now !== 'OLD') expect(Array.isArray(JSON.parse(now))).toBe(true);
    }
    expect(existsSync(onnx) && existsSync(json)).toBe(true);
  }, 90_000);

  it('kill -9 during quantize leaves the old file or a whole int8 model, never a torn one', async () => {
    const out = join(dir, 'killed.int8.onnx');
    const calib = join(dir, 'calib');
    mkdirSync(calib, { recursive: true });
    for (const f of readdirSync('data/canvases_val/images').slice(0, 2)) writeFileSync(join(calib, f), readFileSync(join('data/canvases_val/images', f)));
    for (const ms of [2000, 4000, 6000, 30_000]) {
      writeFileSync(out, 'OLD');
      await killAfter(['quantize', MODEL, '--calib', calib, '--calib-images', '2', '--method', 'minmax', '--out', out], ms);
      if (readFileSync(out).toString() !== 'OLD') expect((await readMetadataProps(out))[QUANTIZED_KEY]).toBeDefined();
    }
    // The last run had time to finish: the whole model is there.
    expect((await readMetadataProps(out))[QUANTIZED_KEY]).toBeDefined();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 120_000);

  describe('eval --model: streams and final files', () => {
    let gt: string;
    let imgs: string;
    beforeAll(async () => {
      imgs = join(dir, 'evalimgs');
      mkdirSync(imgs, { recursive: true });
      const images = [];
      for (let i = 1; i <= 3; i++) {
        await sharp({ create: { width: 48 + 8 * i, height: 40, channels: 3, background: { r: 30 * i, g: 90, b: 10 } } }).png().toFile(join(imgs, `${i}.png`));
        images.push({ id: i, file_name: `${i}.png`, width: 48 + 8 * i, height: 40 });
      }
      await sharp({ create: { width: 1000, height: 3, channels: 3, background: { r: 9, g: 9, b: 9 } } }).png().toFile(join(imgs, '4.png'));
      images.push({ id: 4, file_name: '4.png', width: 1000, height: 3 });
      gt = join(dir, 'evalgt.json');
      writeFileSync(gt, JSON.stringify({
        images, categories: Array.from({ length: 10 }, (_, i) => ({ id: i + 1, name: `c${i + 1}` })),
        annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [2, 2, 20, 20], area: 400, iscrowd: 0, segmentation: [[2, 2, 22, 2, 22, 22, 2, 22]] }],
      }));
    });

    it('an image the framework cannot resize fails alone (one line, exit 1); the others are evaluated', async () => {
      const out = join(dir, 'ev1.json');
      const r = await cliWithRss(['eval', '--gt', gt, '--images', imgs, '--model', MODEL, '--out', out, '--iou-type', 'bbox']);
      expect(r.code).toBe(1);
      const err = lines(r.stderr).filter((l) => l.startsWith('fasternet'));
      expect(err).toEqual([
        `fasternet eval: ${join(imgs, '4.png')}: image 1000x3 resizes to 256x0 under min_size 256 / max_size 256 (too elongated; torchvision fails on it too)`,
        'fasternet eval: 1 of 4 images failed; they are evaluated as images without detections',
      ]);
      expect(Array.isArray(JSON.parse(readFileSync(out, 'utf8')))).toBe(true);
      expect(r.stdout).toMatch(/Average Precision/);
    }, 60_000);

    it('a stream line that is not an image record is refused on --resume in one line', async () => {
      const out = join(dir, 'ev2.json');
      await cliWithRss(['eval', '--gt', gt, '--images', imgs, '--model', MODEL, '--out', out, '--iou-type', 'bbox', '--limit', '2']);
      const stream = `${out}l`;
      const text = readFileSync(stream, 'utf8').split('\n');
      text.splice(1, 0, 'null');
      writeFileSync(stream, text.join('\n'));
      const r = await cliWithRss(['eval', '--gt', gt, '--images', imgs, '--model', MODEL, '--out', out, '--iou-type', 'bbox', '--limit', '2', '--resume']);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([`fasternet: ${stream}: line 2 is not an image record (null); delete the stream to start over`]);
    }, 60_000);

    it('--out on a read-only file system fails before any image, naming the path', async (ctx) => {
      if (!ro) ctx.skip();
      const out = join(ro!, 'ev.json');
      const r = await cliWithRss(['eval', '--gt', gt, '--images', imgs, '--model', MODEL, '--out', out, '--iou-type', 'bbox']);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([`fasternet: cannot write ${out}: EROFS (read-only file system)`]);
    }, 60_000);

    it('kill -9 during eval --out leaves the old file or a whole new one', async () => {
      const out = join(dir, 'ev3.json');
      for (const ms of [2000, 3500]) {
        writeFileSync(out, 'OLD');
        rmSync(`${out}l`, { force: true });
        await killAfter(['eval', '--gt', gt, '--images', imgs, '--model', MODEL, '--out', out, '--iou-type', 'bbox', '--limit', '3'], ms);
        const now = readFileSync(out, 'utf8');
        if (now !== 'OLD') expect(Array.isArray(JSON.parse(now))).toBe(true);
      }
    }, 60_000);
  });
});
