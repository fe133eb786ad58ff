/**
 * `fasternet eval --model`: running a detector over the GT's images, streaming, --resume, --limit, refusals.
 * The model is the seeded FasterNet-T0 torchvision-flavor detector of test/fixtures/detect_tv (its outputs are
 * checked against torchvision in detect_tv_fasternet.test.ts), resized for 256 px so that it runs quickly on
 * the first canvases of data/canvases_val. The reference for a run is detect() on each image on its own, and
 * for an interrupted + resumed run the uninterrupted one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEval } from '../cli/eval.ts';
import { UserError } from '../core/errors.ts';
import { detect, releaseDetectModels } from '../api/detect.ts';
import { buildDetectorModel } from '../heads/mask_rcnn.ts';
import { torchvisionDetectorWeights } from '../convert/detection.ts';
import { evaluateAll } from '../eval/index.ts';
import { runModelOverImages, selectImages, streamPathFor } from '../api/run_model.ts';
import type { CocoResult } from '../eval/index.ts';
import { seededStateDict } from './helpers/detect_tv_fixtures.ts';

const DATA = join(import.meta.dirname, '..', 'data', 'canvases_val');
const GT = join(DATA, 'annotations.json');
const IMAGES = join(DATA, 'images');

function makeModel(path: string, scale = 1): void {
  const sd = seededStateDict('fasternet');
  // Keep the first 11 classes (background + the canvases' 10 categories, category_id = label).
  for (const [key, rows] of [['roi_heads.box_predictor.cls_score', 11], ['roi_heads.box_predictor.bbox_pred', 44], ['roi_heads.mask_predictor.mask_fcn_logits', 11]] as const) {
    for (const part of ['weight', 'bias']) {
      const t = sd.get(`${key}.${part}`)!;
      const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
      sd.set(`${key}.${part}`, { shape: [rows, ...t.shape.slice(1)], data: (t.data as Float32Array).slice(0, rows * per) });
    }
  }
  if (scale !== 1) {
    const b = sd.get('roi_heads.box_predictor.cls_score.bias')!.data as Float32Array;
    b.forEach((v, i) => { b[i] = v * scale; });
  }
  const d = torchvisionDetectorWeights(sd);
  // The canvases are 256 px: evaluate at that size (torchvision's 800 would only make the test slow).
  Object.assign(d.config.preprocess, { minSize: 256, maxSize: 256 });
  writeFileSync(path, buildDetectorModel(d.weights, d.config, d.arch).bytes);
}

describe('fasternet eval --model', () => {
  let dir: string;
  let model: string;
  let other: string;
  let full: string;
  let fullText: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eval-model-'));
    model = join(dir, 'tv_t0.onnx');
    other = join(dir, 'tv_t0_b.onnx');
    makeModel(model);
    makeModel(other, 2);
    full = join(dir, 'full.json');
    const r = await runModelOverImages({ gt: GT, images: IMAGES, model, out: full, limit: 4 });
    expect(r.complete).toBe(true);
    fullText = readFileSync(full, 'utf8');
  }, 60_000);
  afterAll(async () => {
    await releaseDetectModels();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes what detect() gives image by image, with the GT image ids, first N images by id', async () => {
    const results = JSON.parse(fullText) as CocoResult[];
    const gt = JSON.parse(readFileSync(GT, 'utf8'));
    const { images } = selectImages(gt, 4);
    expect(images.map((im) => im.id)).toEqual([1, 2, 3, 4]);
    const expected: CocoResult[] = [];
    for (const im of images) {
      const { detections } = await detect(join(IMAGES, im.file_name as string), { model });
      for (const d of detections) expected.push({ image_id: im.id, category_id: d.categoryId, bbox: d.bbox, score: d.score, segmentation: d.mask });
    }
    expect(expected.length).toBeGreaterThan(0);
    expect(results).toEqual(expected);
  });

  it('an interrupted run with a torn last line, resumed, ends with the same results file', async () => {
    const out = join(dir, 'resumed.json');
    let n = 0;
    const first = await runModelOverImages({ gt: GT, images: IMAGES, model, out, limit: 4, shouldStop: () => n++ >= 2 });
    expect(first).toMatchObject({ complete: false, done: 2, total: 4 });
    expect(existsSync(out)).toBe(false);
    const stream = streamPathFor(out);
    // A kill in the middle of the third image's write.
    appendFileSync(stream, '{"image_id":3,"ms":12.5,"warm":true,"results":[{"image_id":3,"categ');
    const progress: number[][] = [];
    const second = await runModelOverImages({
      gt: GT, images: IMAGES, model, out, limit: 4, resume: true, onProgress: (d, t, s) => progress.push([d, t, s]),
    });
    expect(second).toMatchObject({ complete: true, done: 4, total: 4 });
    expect(progress).toEqual([[2, 4, 2], [3, 4, 2], [4, 4, 2]]);
    expect(readFileSync(out, 'utf8')).toBe(fullText);
    // Warm-up images (the first each process ran) are left out of the latency.
    expect(second.latency.images).toBe(2);
    const lines = readFileSync(stream, 'utf8').split('\n');
    expect(lines.length).toBe(6); // header, 4 images, trailing ''
    // Resuming a finished run runs nothing and writes the same file.
    const again = await runModelOverImages({ gt: GT, images: IMAGES, model, out, limit: 4, resume: true });
    expect(again.done).toBe(4);
    expect(readFileSync(out, 'utf8')).toBe(fullText);
  });

  it('refuses to overwrite a stream without --resume and to resume a run made with other settings', async () => {
    const o = { gt: GT, images: IMAGES, model, out: full, limit: 4 };
    await expect(runModelOverImages(o)).rejects.toThrow(/full\.jsonl holds an earlier run: rerun with --resume/);
    await expect(runModelOverImages({ ...o, resume: true, limit: 3 })).rejects.toThrow(/other settings \(limit was 4, now 3\)/);
    await expect(runModelOverImages({ ...o, resume: true, model: other })).rejects.toThrow(/other settings \(model was .*tv_t0\.onnx", now .*tv_t0_b\.onnx"\)/);
    await expect(runModelOverImages({ ...o, resume: true, scoreThreshold: 0.5 })).rejects.toThrow(/score_thr was null, now 0\.5/);
    await expect(runModelOverImages({ ...o, limit: 0 })).rejects.toThrow('--limit must be a positive integer, got 0');
  });

  it('a missing image fails before any work, naming it', async () => {
    const gt = JSON.parse(readFileSync(GT, 'utf8'));
    gt.images[1].file_name = 'nope.png';
    const gtPath = join(dir, 'gt_missing.json');
    writeFileSync(gtPath, JSON.stringify(gt));
    const out = join(dir, 'missing.json');
    await expect(runModelOverImages({ gt: gtPath, images: IMAGES, model, out, limit: 4 }))
      .rejects.toThrow(`image ${join(IMAGES, 'nope.png')} not found; check --images`);
    expect(existsSync(streamPathFor(out))).toBe(false);
  });

  it('CLI: model vs --baseline-model table over bbox and segm, same stats as evaluating the files, resumable', async () => {
    const out = join(dir, 'cli.json');
    const opts = {
      gt: GT, images: IMAGES, model, baselineModel: other, out, limit: '3', progressStream: process.stderr,
    };
    let n = 0;
    await expect(runEval({ ...opts, shouldStop: () => n++ >= 1 }, () => undefined))
      .rejects.toThrow(/interrupted after 1\/3 images; rerun the same command with --resume/);
    const lines: string[] = [];
    const json = await runEval({ ...opts, resume: true }, (l) => lines.push(l));
    const gt = selectImages(JSON.parse(readFileSync(GT, 'utf8')), 3).dataset;
    const ref = evaluateAll(gt, out, ['bbox', 'segm']);
    const refBase = evaluateAll(gt, join(dir, 'cli.baseline.json'), ['bbox', 'segm']);
    expect(json.bbox!.statsArray).toEqual(ref.bbox!.stats);
    expect(json.segm!.statsArray).toEqual(ref.segm!.stats);
    expect(json.baseline!.segm!.statsArray).toEqual(refBase.segm!.stats);
    expect(json.baseline!.bbox!.differenceArray).toEqual(ref.bbox!.stats.map((v, i) => (v === -1 || refBase.bbox!.stats[i] === -1 ? null : v - refBase.bbox!.stats[i])));
    expect(lines.filter((l) => /^\s+model\s+baseline\s+diff$/.test(l))).toHaveLength(2);
    expect(lines.filter((l) => / = |Average (Precision|Recall)/.test(l))).toHaveLength(24);
    expect(lines.some((l) => /^ {2}model {3}: \d+\.\d ms\/image \(mean over 1 images/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {2}baseline: \d+\.\d ms\/image \(mean over 2 images/.test(l))).toBe(true);
    expect(json.latency_ms).toBeGreaterThan(0);
  }, 60_000);

  it('CLI: an earlier baseline stream is refused before the model runs, not after', async () => {
    const out = join(dir, 'early.json');
    writeFileSync(join(dir, 'early.baseline.jsonl'), '{"fasternet_eval_stream":1}\n');
    let images = 0;
    await expect(runEval({ gt: GT, images: IMAGES, model, baselineModel: other, out, limit: '2', shouldStop: () => { images++; return false; } }, () => undefined))
      .rejects.toThrow(new UserError(`${join(dir, 'early.baseline.jsonl')} holds an earlier run: rerun with --resume to continue it, or delete it to start over`));
    expect(images).toBe(0);
    expect(existsSync(join(dir, 'early.jsonl'))).toBe(false);
  });
});
