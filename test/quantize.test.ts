/**
 * `fasternet quantize` on the bundled model: the QDQ graphs (main, box head, mask head) pass the TypeScript
 * structural check and, where Debian's python3-onnx is installed, onnx.checker (full_check, with shape
 * inference); ONNX Runtime fuses them into integer kernels; int8 detections on val images agree with the float
 * ones; the refusals. Calibration uses 4 val images to keep the test short (the bundled int8 model is
 * calibrated on a separate split, see models/README.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { quantizeModel, QUANTIZED_KEY } from '../api/quantize.ts';
import { runQuantize } from '../cli/quantize.ts';
import { UserError } from '../core/errors.ts';
import { qdqProblems, activationParams, quantizeWeights, decodeModel, encodeModel, foldBatchNorms } from '../runtime/quantize.ts';
import { entropyRange, emptyHistogram, addToHistogram, percentileRange } from '../runtime/calibrate.ts';
import { readModelParts } from '../runtime/metadata.ts';
import { createSession, runSession } from '../runtime/session.ts';
import { addInput, addNode, addOutput, attr, constFloat, conv, createGraph, relu, serializeModel } from '../runtime/graph.ts';
import { loadDetector, releaseDetector, runDetector, type RawDetections } from '../heads/mask_rcnn.ts';
import { centerCropTransform, decodeImage } from '../image/decode.ts';
import { syntheticStateDict } from '../backbones/synthetic.ts';
import { fasternetParamSpecs } from '../backbones/fasternet.ts';
import { convertCheckpoint } from '../convert/index.ts';
import { classifyImages } from '../api/classify.ts';
import { imagenetPreprocess } from '../runtime/metadata.ts';
import { safetensorsBytes } from './helpers/safetensors.ts';

const MODEL = 'models/fasternet_t0_canvases.onnx';
const VAL = 'data/canvases_val/images';
const run = promisify(execFile);

function hasPythonOnnx(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import onnx'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function iou(a: Float32Array, i: number, b: Float32Array, j: number): number {
  const x1 = Math.max(a[4 * i], b[4 * j]);
  const y1 = Math.max(a[4 * i + 1], b[4 * j + 1]);
  const x2 = Math.min(a[4 * i + 2], b[4 * j + 2]);
  const y2 = Math.min(a[4 * i + 3], b[4 * j + 3]);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const area = (d: Float32Array, k: number) => (d[4 * k + 2] - d[4 * k]) * (d[4 * k + 3] - d[4 * k + 1]);
  return inter / (area(a, i) + area(b, j) - inter);
}

/** Float detections scoring >= 0.5, and how many of them an int8 detection matches one to one. */
function agreement(f: RawDetections, q: RawDetections): { confident: number; matched: number } {
  const used = new Set<number>();
  let confident = 0;
  let matched = 0;
  for (let i = 0; i < f.scores.length; i++) {
    if (f.scores[i] < 0.5) continue;
    confident++;
    let best = -1;
    let bestIou = 0.8;
    for (let j = 0; j < q.scores.length; j++) {
      if (used.has(j) || q.labels[j] !== f.labels[i]) continue;
      const v = iou(f.boxes, i, q.boxes, j);
      if (v >= bestIou) { bestIou = v; best = j; }
    }
    if (best >= 0) { used.add(best); matched++; }
  }
  return { confident, matched };
}

describe('foldBatchNorms', () => {
  // Conv 3x3 -> BN -> {1x1 conv, 1x1 conv}: the BN folds into both readers and the outputs stay the same; a BN
  // that a 3x3 conv also reads (its zero padding is not the BN's zero) must stay.
  const build = (thirdReader: boolean): Uint8Array => {
    let seed = 5;
    const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
    const t = (shape: number[]) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rnd) });
    const g = createGraph('bn');
    const x = addInput(g, 'x', [1, 4, 6, 6]);
    const c = conv(g, x, t([8, 4, 3, 3]), t([8]), { pad: 1, name: 'c0' });
    const pos = (n: number) => ({ shape: [n], data: Float32Array.from({ length: n }, () => 0.5 + Math.abs(rnd())) });
    const [y] = addNode(g, 'BatchNormalization', [c, constFloat(g, 's', [...pos(8).data]), constFloat(g, 'b', [...t([8]).data]),
      constFloat(g, 'm', [...t([8]).data]), constFloat(g, 'v', [...pos(8).data])], { epsilon: attr.float(1e-5) }, { name: 'bn' });
    addOutput(g, conv(g, y, t([5, 8, 1, 1]), t([5]), { name: 'l0' }), 'out0');
    addOutput(g, conv(g, y, t([3, 8, 1, 1]), undefined, { name: 'l1' }), 'out1');
    if (thirdReader) addOutput(g, conv(g, y, t([2, 8, 3, 3]), t([2]), { pad: 1, name: 'l2' }), 'out2');
    return serializeModel(g);
  };
  it('folds a BN read only by 1x1 convs, with the same outputs', async () => {
    const bytes = build(false);
    const m = decodeModel(bytes);
    expect(foldBatchNorms(m)).toEqual(['bn']);
    expect(m.graph.node.some((n) => n.opType === 'BatchNormalization')).toBe(false);
    const x = { shape: [1, 4, 6, 6], data: Float32Array.from({ length: 144 }, (_, i) => Math.sin(i)) };
    const [a, b] = [await createSession(bytes, { optimization: 'disabled' }), await createSession(encodeModel(m), { optimization: 'disabled' })];
    try {
      const [ra, rb] = [await runSession(a, { x }), await runSession(b, { x })];
      for (const k of ['out0', 'out1']) {
        const scale = Math.max(...ra[k].data.map(Math.abs));
        expect(Math.max(...ra[k].data.map((v, i) => Math.abs(v - rb[k].data[i])))).toBeLessThan(1e-5 * scale);
      }
    } finally {
      await a.release();
      await b.release();
    }
  });
  it('keeps a BN that a padded 3x3 conv also reads', () => {
    const m = decodeModel(build(true));
    expect(foldBatchNorms(m)).toEqual([]);
    expect(m.graph.node.filter((n) => n.opType === 'BatchNormalization')).toHaveLength(1);
  });
});

describe('quantization arithmetic', () => {
  it('uint8 activation parameters contain zero exactly and cover the range', () => {
    const p = activationParams({ min: -1, max: 3 });
    expect(p.scale).toBeCloseTo(4 / 255, 7);
    expect(p.zeroPoint).toBe(64); // round(1 / (4/255)) = round(63.75)
    expect(activationParams({ min: 0.5, max: 2 })).toEqual({ scale: Math.fround(2 / 255), zeroPoint: 0 });
  });

  it('int8 weights are symmetric per output channel with max |w| at 127', () => {
    const w = Float32Array.from([0.5, -1, 0.25, 0.1, 0.2, -0.05]);
    const { q, scales } = quantizeWeights(w, [2, 3], 0);
    expect([...scales]).toEqual([Math.fround(1 / 127), Math.fround(0.2 / 127)]);
    expect([...q]).toEqual([64, -127, 32, 64, 127, -32]);
  });

  it('entropy clips a long tail that percentile keeps, and keeps a uniform range', () => {
    // 10^5 values of |N(0,1)| plus 10 outliers at 40: entropy's threshold lands near the bulk, not at 40.
    let seed = 1;
    const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
    const d = new Float32Array(100_010);
    for (let i = 0; i < 100_000; i++) d[i] = Math.abs(Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand()));
    d.fill(40, 100_000);
    const h = emptyHistogram({ min: 0, max: 40 });
    addToHistogram(h, d);
    const e = entropyRange(h, { min: 0, max: 40 });
    expect(e.min).toBe(0);
    expect(e.max).toBeGreaterThan(2.5);
    expect(e.max).toBeLessThan(8);
    expect(percentileRange(h, { min: 0, max: 40 }, 0.99999).max).toBeGreaterThan(30);
    // ReLU outputs: a spike of exact zeros (any uint8 range with zero point 0 holds them) moves nothing.
    const hz = emptyHistogram({ min: 0, max: 40 });
    addToHistogram(hz, d);
    addToHistogram(hz, new Float32Array(150_000));
    expect(entropyRange(hz, { min: 0, max: 40 }).max).toBeCloseTo(e.max, 6);
    const u = emptyHistogram({ min: 0, max: 1 });
    addToHistogram(u, Float32Array.from({ length: 100_000 }, (_, i) => i / 100_000));
    expect(entropyRange(u, { min: 0, max: 1 }).max).toBeGreaterThan(0.95);
  });
});

describe('fasternet quantize on the bundled model', () => {
  let dir: string;
  let out: string;
  let bytes: Uint8Array;
  let report: Awaited<ReturnType<typeof quantizeModel>>['report'];
  let heads: Record<string, Uint8Array>;
  let mainBytes: Uint8Array;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'quantize-'));
    const calib = join(dir, 'calib');
    mkdirSync(calib);
    for (const f of readdirSync(VAL).sort().slice(0, 4)) copyFileSync(join(VAL, f), join(calib, f));
    const r = await quantizeModel(MODEL, { calibDir: calib, method: 'minmax' });
    bytes = r.bytes;
    out = join(dir, 'int8.onnx');
    writeFileSync(out, bytes);
    const parts = await readModelParts(out);
    mainBytes = parts.graphBytes;
    heads = {
      box: Buffer.from(parts.props['fasternet.box_head_onnx'], 'base64'),
      mask: Buffer.from(parts.props['fasternet.mask_head_onnx'], 'base64'),
    };
    // The report names what stayed float: the stem, the RPN and box predictors (the mask logits are int8).
    expect(r.report.graphs.main.kept.map((k) => k.name)).toContain('backbone.body.patch_embed.proj');
    expect(r.report.graphs.box.kept.map((k) => k.name).sort()).toEqual(['bbox_pred', 'cls_score']);
    expect(r.report.graphs.mask.kept).toEqual([]);
    expect(r.report.graphs.mask.quantized.map((k) => k.name)).toContain('mask_fcn_logits');
    report = r.report;
    expect(r.report.graphs.box.quantized.map((k) => k.name)).toEqual(['fc6', 'fc7']);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the metadata and marks the model quantized', async () => {
    const { props } = await readModelParts(out);
    const { props: orig } = await readModelParts(MODEL);
    for (const k of Object.keys(orig)) if (!k.endsWith('_head_onnx')) expect(props[k]).toBe(orig[k]);
    expect(JSON.parse(props[QUANTIZED_KEY]).method).toBe('minmax');
  });

  it('the three QDQ graphs pass the structural check and ORT fuses them into integer kernels', async () => {
    for (const b of [mainBytes, heads.box, heads.mask]) expect(qdqProblems(b)).toEqual([]);
    const fused: Record<string, number> = {};
    for (const [k, b] of Object.entries({ main: mainBytes, ...heads })) {
      const path = join(dir, `${k}.opt.onnx`);
      await (await createSession(b, { optimizedModelPath: path })).release();
      const m = decodeModel(readFileSync(path));
      for (const n of m.graph.node) fused[`${k}:${n.opType}`] = (fused[`${k}:${n.opType}`] ?? 0) + 1;
    }
    expect(fused['main:QLinearConv']).toBeGreaterThanOrEqual(50);
    expect(fused['box:QGemm']).toBe(2);
    expect(fused['mask:QLinearConv']).toBe(6);
    // The FPN's top-down sums run as QLinearAdd (the nearest upsampling shares its input's parameters), and the
    // backbone's output BatchNorms were folded into the lateral 1x1 convs: no float island is left there.
    expect(fused['main:QLinearAdd']).toBeGreaterThanOrEqual(3);
    expect(fused['main:BatchNormalization'] ?? 0).toBe(0);
    expect(report.graphs.main.foldedBatchNorms?.length).toBe(4);
  });

  it('leaves the FPN levels uint8 (RoIAlign reads the bytes) with their parameters in the metadata', async () => {
    const { props } = await readModelParts(out);
    const u8 = JSON.parse(props[QUANTIZED_KEY]).uint8Outputs as Record<string, { scale: number; zeroPoint: number }>;
    expect(Object.keys(u8).sort()).toEqual(['fpn_0', 'fpn_1', 'fpn_2', 'fpn_3']);
    const s = await createSession(mainBytes);
    try {
      const res = await s.run({ image: new ort.Tensor('float32', new Float32Array(3 * 64 * 96).fill(0.5), [1, 3, 64, 96]) });
      for (const [k, p] of Object.entries(u8)) {
        expect(res[k].type).toBe('uint8');
        const t = report.graphs.main.tensors.find((x) => x.tensor === `${k}.nhwc`)!;
        expect(p).toEqual({ scale: t.scale, zeroPoint: t.zeroPoint });
      }
      expect(res.rpn_objectness_0.type).toBe('float32');
    } finally {
      await s.release();
    }
  });

  it('a broken QDQ graph fails the structural check', () => {
    const m = decodeModel(heads.mask);
    const q = m.graph.node.find((n) => n.opType === 'DequantizeLinear' && n.attribute?.length)!;
    const s = m.graph.initializer.find((t) => t.name === q.input[1])!;
    s.dims = [Number(s.dims[0]) - 1];
    s.rawData = s.rawData!.subarray(0, s.rawData!.length - 4);
    const bad = encodeModel(m);
    expect(qdqProblems(bad).join('\n')).toMatch(/scale has|must be 1-D of equal size/);
  });

  // The project's graphs declare outputs without shapes, which onnx 1.12's checker rejects (float models too);
  // shape inference fills them first (strict: an op it cannot type fails the test).
  it.skipIf(!hasPythonOnnx())('onnx.checker accepts the three graphs (full check)', async () => {
    const files = Object.entries({ main: mainBytes, ...heads }).map(([k, b]) => {
      const f = join(dir, `${k}.check.onnx`);
      writeFileSync(f, b);
      return f;
    });
    const { stdout } = await run('/usr/bin/python3', ['-c',
      'import sys, onnx\nfor f in sys.argv[1:]:\n  m = onnx.shape_inference.infer_shapes(onnx.load(f), strict_mode=True)\n  onnx.checker.check_model(m, full_check=True)\nprint("ok", len(sys.argv) - 1)', ...files]);
    expect(stdout.trim()).toBe('ok 3');
  });

  it('int8 detections agree with float ones on val images', async () => {
    const f = await loadDetector(MODEL);
    const q = await loadDetector(out);
    let confident = 0;
    let matched = 0;
    try {
      for (const name of readdirSync(VAL).sort().slice(4, 10)) {
        const img = await decodeImage(join(VAL, name));
        const a = agreement(await runDetector(f, img), await runDetector(q, img));
        confident += a.confident;
        matched += a.matched;
      }
    } finally {
      await releaseDetector(f);
      await releaseDetector(q);
    }
    expect(confident).toBeGreaterThan(10);
    expect(matched / confident).toBeGreaterThanOrEqual(0.9);
  });

  it('refuses an already quantized model, a non-fasternet ONNX, an empty or unreadable calib folder', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'notes.txt'), 'no images here');
    const g = createGraph('plain');
    addOutput(g, relu(g, addInput(g, 'x', [1, 4]), 'r'), 'y');
    const plain = join(dir, 'plain.onnx');
    writeFileSync(plain, serializeModel(g));
    const o = { calib: VAL, out: join(dir, 'x.onnx') };
    await expect(runQuantize(out, o)).rejects.toThrow(new UserError(`${out} is already quantized (int8); quantize its float model instead`));
    await expect(runQuantize(plain, o)).rejects.toThrow(/was not written by fasternet convert/);
    await expect(runQuantize(MODEL, { ...o, calib: empty })).rejects.toThrow(new UserError(`--calib ${empty} holds no images (.jpg .jpeg .png .webp .bmp .tif .tiff .gif)`));
    await expect(runQuantize(MODEL, { ...o, calib: join(dir, 'missing') })).rejects.toThrow(/--calib .*missing: cannot read the folder/);
    // The command line: one line on stderr, exit code 2, no output file.
    let err: { code: number; stderr: string } | undefined;
    try {
      await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'quantize', out, '--calib', VAL, '--out', join(dir, 'y.onnx')]);
    } catch (e) {
      err = e as { code: number; stderr: string };
    }
    expect(err?.code).toBe(2);
    expect(err?.stderr).toBe(`fasternet: ${out} is already quantized (int8); quantize its float model instead\n`);
    expect(readdirSync(dir)).not.toContain('y.onnx');
  });
});

describe('fasternet quantize on an imagenet classifier (convert --flavor imagenet)', () => {
  it('quantizes every layer but stem and classifier; logits follow the float model; classify runs it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quantize-cls-'));
    try {
      const sd = syntheticStateDict(fasternetParamSpecs('t0'), 1000);
      writeFileSync(join(dir, 't0.safetensors'), safetensorsBytes(sd));
      const float = join(dir, 't0.onnx');
      await convertCheckpoint(join(dir, 't0.safetensors'), 'imagenet', float);
      const images = ['chelsea.jpg', 'coffee_crop.png', 'camera_gray.png'].map((f) => join('test/fixtures/images', f));
      const calib = join(dir, 'calib');
      mkdirSync(calib);
      for (const f of images.slice(0, 2)) copyFileSync(f, join(calib, f.split('/').pop()!));
      // minmax: two calibration images are too few for the histogram methods' tails.
      const { bytes, report } = await quantizeModel(float, { calibDir: calib, method: 'minmax' });
      const int8 = join(dir, 't0.int8.onnx');
      writeFileSync(int8, bytes);
      expect(Object.keys(report.graphs)).toEqual(['main']);
      expect(report.graphs.main.kept.map((k) => k.reason.split(' ')[0]).sort()).toEqual(['predictor', 'stem']);
      expect(qdqProblems(bytes)).toEqual([]);
      const [f, q] = [await createSession(float), await createSession(int8)];
      for (const file of images) {
        const x = centerCropTransform(await decodeImage(file), imagenetPreprocess());
        const feeds = { input: { shape: [1, ...x.shape], data: x.data } };
        const a = (await runSession(f, feeds)).logits.data;
        const b = (await runSession(q, feeds)).logits.data;
        let dot = 0, na = 0, nb = 0;
        for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        expect(dot / Math.sqrt(na * nb)).toBeGreaterThan(0.98);
      }
      await f.release();
      await q.release();
      const res = await classifyImages(int8, images.slice(2), { topk: 3 });
      expect(res[0].top).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

