/**
 * The product path end to end on a small synthetic torchvision-flavor FasterNet-T0 detector (64-wide heads,
 * 11 classes, written as a .safetensors checkpoint): `fasternet convert --min-size --max-size --classes FILE
 * --half`, then `fasternet detect --out DIR --json` over good and bad inputs. Checks the metadata the overrides
 * wrote, annotated files (names, formats, displayed sizes), one stderr line per bad input naming it, exit 1,
 * the good inputs still processed; and the default-model resolution.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { syntheticStateDict } from '../backbones/synthetic.ts';
import { fasternetParamSpecs } from '../backbones/fasternet.ts';
import { torchvisionHeadSpecs } from '../convert/detection.ts';
import { readModelMetadata } from '../runtime/metadata.ts';
import { DEFAULT_MODEL_PATH, detect, releaseDetectModels, resolveModel } from '../api/detect.ts';
import { annotate } from '../api/annotate.ts';
import { decodeImage } from '../image/decode.ts';
import { annotatedName } from '../cli/detect.ts';
import type { StateDict } from '../core/tensor.ts';

import { safetensorsBytes } from './helpers/safetensors.ts';
import { cli } from './helpers/cli.ts';

const NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

describe('fasternet convert overrides + fasternet detect --out', () => {
  let dir: string;
  let model: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'detect-cli-'));
    const sd: StateDict = new Map([
      ...syntheticStateDict(fasternetParamSpecs('fasternet_t0', { forkFeat: true }), 1, 'backbone.body.'),
      ...syntheticStateDict(torchvisionHeadSpecs([40, 80, 160, 320], 11, 64), 1),
    ]);
    // Sharper class scores so that instances pass the drawing threshold.
    const cls = sd.get('roi_heads.box_predictor.cls_score.weight')!.data as Float32Array;
    for (let i = 0; i < cls.length; i++) cls[i] *= 4;
    writeFileSync(join(dir, 'ckpt.safetensors'), safetensorsBytes(sd));
    writeFileSync(join(dir, 'classes.txt'), `${NAMES.join('\n')}\n`);
    model = join(dir, 'm.onnx');
    const r = await cli(['convert', join(dir, 'ckpt.safetensors'), '--flavor', 'torchvision', '--min-size', '256', '--max-size', '256',
      '--classes', join(dir, 'classes.txt'), '--half', '--out', model]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 60_000);
  afterAll(async () => {
    await releaseDetectModels();
    rmSync(dir, { recursive: true, force: true });
  });

  it('convert writes the overrides into the metadata', async () => {
    const meta = await readModelMetadata(model);
    const det = (meta.extra as { detector: { preprocess: { minSize: number; maxSize: number }; classNames: string[]; categoryIds: number[] } }).detector;
    expect(det.preprocess).toMatchObject({ minSize: 256, maxSize: 256 });
    expect(det.classNames).toEqual(['__background__', ...NAMES]);
    expect(det.categoryIds).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const bad = await cli(['convert', join(dir, 'ckpt.safetensors'), '--flavor', 'torchvision', '--classes', 'a,b', '--out', join(dir, 'x.onnx')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('fasternet: --classes has 2 names; the checkpoint has 10 foreground classes + background: give 10 names, or 11 with __background__ first');
  });

  it('bad inputs: one line each naming the file, exit 1, good inputs still annotated', async () => {
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    const png = readFileSync('examples/canvas_000001.png');
    writeFileSync(join(bad, 'truncated.png'), png.subarray(0, 3000));
    writeFileSync(join(bad, 'notes.png'), 'not an image\n');
    writeFileSync(join(bad, 'bomb.png'), await sharp({ create: { width: 10000, height: 9000, channels: 3, background: '#000' } }).png().toBuffer());
    const out = join(dir, 'out');
    const json = join(dir, 'r.json');
    const inputs = ['examples/canvas_000001.png', join(bad, 'truncated.png'), join(bad, 'notes.png'), join(bad, 'bomb.png'),
      join(bad, 'missing.jpg'), 'examples/canvas_000007_exif6.jpg'];
    const r = await cli(['detect', ...inputs, '--model', model, '--out', out, '--json', json]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^fasternet detect: cannot decode .*truncated\.png: /);
    expect(lines[1]).toMatch(/^fasternet detect: .*notes\.png is not a decodable image$/);
    expect(lines[2]).toMatch(/^fasternet detect: .*bomb\.png is 10000x9000 = 90000000 pixels, over the limit of 89478485 \(possible decompression bomb\)$/);
    expect(lines[3]).toBe(`fasternet detect: cannot read image ${join(bad, 'missing.jpg')}: no such file`);
    expect(lines[4]).toBe('fasternet detect: 4 of 6 inputs failed');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toMatch(/examples\/canvas_000001\.png: \d+ instances -> .*canvas_000001\.png/);
    const a = await sharp(join(out, 'canvas_000001.png')).metadata();
    expect([a.format, a.width, a.height]).toEqual(['png', 256, 256]);
    const b = await sharp(join(out, 'canvas_000007_exif6.jpg')).metadata();
    expect([b.format, b.width, b.height, b.orientation ?? 1]).toEqual(['jpeg', 256, 256, 1]);
    const results = JSON.parse(readFileSync(json, 'utf8')) as Array<{ file: string; category_id: number }>;
    expect(new Set(results.map((x) => x.file))).toEqual(new Set(['examples/canvas_000001.png', 'examples/canvas_000007_exif6.jpg']));
    for (const x of results) expect(x.category_id >= 1 && x.category_id <= 10).toBe(true);
  }, 60_000);

  it('library: torchvision detect() on an EXIF file reports the unapplied orientation and annotate() refuses it', async () => {
    const exif = 'examples/canvas_000007_exif6.jpg';
    const stored = await detect(exif, { model });
    expect(stored.unappliedOrientation).toBe(6);
    await expect(annotate(exif, stored)).rejects.toThrow(/EXIF orientation 6/);
    const shown = await detect(await decodeImage(exif, { autoOrient: true }), { model });
    expect(shown.unappliedOrientation).toBeUndefined();
    const png = await annotate(exif, shown);
    expect((await sharp(png).metadata()).width).toBe(256);
    expect((await detect('examples/canvas_000001.png', { model })).unappliedOrientation).toBeUndefined();
  }, 30_000);

  it('annotated names keep the base name; JPEG stays JPEG, anything else becomes PNG', () => {
    const taken = new Set<string>();
    expect(annotatedName('a/b/photo.JPG', 'o', taken)).toEqual({ path: join('o', 'photo.JPG'), format: 'jpeg' });
    expect(annotatedName('x/pic.webp', 'o', taken)).toEqual({ path: join('o', 'pic.png'), format: 'png' });
    expect(annotatedName('y/pic.png', 'o', taken)).toEqual({ path: join('o', 'pic_1.png'), format: 'png' });
  });

  it('no model named: the bundled default, resolved next to the package (or a clear error when absent)', () => {
    expect(DEFAULT_MODEL_PATH).toBe(join(process.cwd(), 'models', 'fasternet_t0_canvases.int8.onnx'));
    if (existsSync(DEFAULT_MODEL_PATH)) expect(resolveModel(undefined)).toBe(DEFAULT_MODEL_PATH);
    else expect(() => resolveModel(undefined)).toThrow(/no model given and the bundled default model is missing/);
    expect(resolveModel('other.onnx')).toBe('other.onnx');
  });
});
