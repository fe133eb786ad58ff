/**
 * detect() API, `fasternet detect` CLI and the torchvision key mapping, on the seeded FasterNet-T0
 * torchvision-flavor model of test/fixtures/detect_tv (its detections are checked against torchvision in
 * detect_tv_fasternet.test.ts; here every entry point must give those same detections).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { closeDetectWorkers, detect, releaseDetectModels, type DetectResult } from '../api/detect.ts';
import { convertTorchvisionDetector, torchvisionDetectorWeights } from '../convert/detection.ts';
import { decodeImage } from '../image/decode.ts';
import { encode, toCocoRle } from '../postprocess/mask.ts';
import type { StateDict } from '../core/tensor.ts';
import { TORCHVISION_COCO_CATEGORIES } from '../heads/config.ts';
import { DIR, loadCase, seededStateDict } from './helpers/detect_tv_fixtures.ts';

const run = promisify(execFile);
const IMAGE = join(DIR, 'chelsea.png');

/** 0.14 names -> the released maskrcnn_resnet50_fpn_coco file's names. */
function toOldNames(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of sd) {
    const m = k
      .replace(/^rpn\.head\.conv\.0\.0\./, 'rpn.head.conv.')
      .replace(/^roi_heads\.mask_head\.(\d)\.0\./, (_, i) => `roi_heads.mask_head.mask_fcn${Number(i) + 1}.`)
      .replace(/^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.0\./, 'backbone.fpn.$1_blocks.$2.');
    out.set(m, v);
  }
  return out;
}

describe('torchvision-flavor detect API and CLI', () => {
  let dir: string;
  let model: string;
  let base: DetectResult;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'detect-tv-'));
    model = join(dir, 'fasternet_t0_tv.onnx');
    writeFileSync(model, convertTorchvisionDetector(seededStateDict('fasternet')).bytes);
    base = await detect(IMAGE, { model });
  });
  afterAll(async () => {
    await closeDetectWorkers();
    await releaseDetectModels();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads widths, levels and classes from shapes; old and new key names give the same model', () => {
    const sd = seededStateDict('fasternet');
    const d = torchvisionDetectorWeights(sd);
    expect(d.arch).toBe('fasternet_t0');
    expect(d.config.numClasses).toBe(90);
    expect(d.config.classNames[1]).toBe('person');
    expect(d.weights.fpn.lateral.map((l) => l.weight.shape[1])).toEqual([40, 80, 160, 320]);
    const old = torchvisionDetectorWeights(toOldNames(sd));
    expect(old.weights.rpn.conv.weight).toBe(d.weights.rpn.conv.weight);
    expect(old.weights.maskHead.convs.map((c) => c.weight)).toEqual(d.weights.maskHead.convs.map((c) => c.weight));
    expect(old.weights.fpn.output.map((c) => c.bias)).toEqual(d.weights.fpn.output.map((c) => c.bias));
    const missing = new Map(sd);
    missing.delete('roi_heads.box_head.fc7.bias');
    expect(() => torchvisionDetectorWeights(missing)).toThrow(/roi_heads\.box_head\.fc7\.bias/);
    const extra = new Map(sd);
    extra.set('roi_heads.keypoint_head.0.weight', sd.get('roi_heads.box_head.fc7.bias')!);
    expect(() => torchvisionDetectorWeights(extra)).toThrow(/unexpected key.*keypoint_head/);
  });

  it('returns the reference detections with names, COCO boxes and RLE masks', () => {
    const c = loadCase('fasternet_chelsea');
    const ref = c.get('det_scores').data;
    expect(base.width).toBe(451);
    expect(base.height).toBe(300);
    expect(base.detections.length).toBe(ref.length);
    const labels = c.getInt('det_labels');
    base.detections.forEach((d, i) => {
      expect(d.label).toBe(labels[i]);
      expect(d.categoryId).toBe(labels[i]);
      expect(d.score).toBeCloseTo(ref[i], 5);
      expect(d.bbox[2]).toBeCloseTo(d.box[2] - d.box[0], 4);
      expect(d.mask.size).toEqual([300, 451]);
      expect(d.labelName).toBe(TORCHVISION_COCO_CATEGORIES[labels[i]]);
    });
  });

  it('raw RGB in-process and a Buffer in the worker (threshold, classes, bitmaps) agree with the path result, concurrently', async () => {
    const bytes = readFileSync(IMAGE);
    const img = await decodeImage(IMAGE);
    const label = base.detections[0].label;
    const [fromRaw, inWorker] = await Promise.all([
      detect({ data: img.data, width: img.width, height: img.height }, { model }),
      detect(bytes, { model, worker: true, scoreThreshold: 0.06, classes: [label], bitmaps: true }),
    ]);
    expect(fromRaw).toEqual(base);
    const want = base.detections.filter((d) => d.score >= 0.06 && d.label === label);
    expect(want.length).toBeGreaterThan(0);
    expect(inWorker.detections.map((d) => d.score)).toEqual(want.map((d) => d.score));
    expect(inWorker.detections.map((d) => d.mask)).toEqual(want.map((d) => d.mask));
    for (const d of inWorker.detections) expect(toCocoRle(encode(d.bitmap!, inWorker.height, inWorker.width))).toEqual(d.mask);
    await expect(detect(IMAGE, { model, classes: ['no such class'] })).rejects.toThrow(/unknown class/);
    await expect(detect({ data: new Uint8Array(5), width: 2, height: 2 }, { model })).rejects.toThrow('image.data must be 12 bytes (2x2 RGB), got "5 bytes"');
  });

  it('fasternet detect writes COCO results entries', async () => {
    const out = join(dir, 'dets.json');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'detect', IMAGE, '--model', model, '--json', out, '--score-thr', '0.06'],
      { cwd: join(import.meta.dirname, '..') });
    const want = base.detections.filter((d) => d.score >= 0.06);
    expect(stdout).toContain(`${IMAGE}: ${want.length} instances`);
    const res = JSON.parse(readFileSync(out, 'utf8'));
    expect(res.length).toBe(want.length);
    res.forEach((e: Record<string, unknown>, i: number) => {
      expect(Object.keys(e).sort()).toEqual(['bbox', 'category_id', 'file', 'score', 'segmentation']);
      expect(e.file).toBe(IMAGE);
      expect(e.category_id).toBe(want[i].categoryId);
      expect(e.bbox).toEqual(want[i].bbox);
      expect(e.score).toBe(want[i].score);
      expect(e.segmentation).toEqual(want[i].mask);
    });
    await expect(run(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'detect', IMAGE, '--model', join(dir, 'nope.onnx')],
      { cwd: join(import.meta.dirname, '..') })).rejects.toThrow(/cannot read model/);
  });
});
