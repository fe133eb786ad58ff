/**
 * Speed of the post-processing primitives (not part of the tests):
 *   npx tsx bench/stages.ts [nms] [roialign] [paste]
 * NMS on 5000 boxes, RoIAlign 1000 RoIs x 256 channels (7x7 and 14x14) against ONNX Runtime's RoiAlign op
 * in a one-node graph, and pasting 100 masks into an 800x1333 image. Median of several runs, single thread
 * for our code; ORT is run with 1 and 2 intra-op threads.
 */
import { mulberry32 } from '../core/random.ts';
import * as ort from 'onnxruntime-node';
import { batchedNms, nms, nmsMmcv } from '../postprocess/nms.ts';
import { roiAlign, toNHWC, type FeatureMap } from '../heads/roi_align.ts';
import { blitMask, clearMask, pasteMasks } from '../postprocess/paste_masks.ts';
import { addInput, addNode, addOutput, attr, createGraph, serializeModel } from '../runtime/graph.ts';
import { DataType } from '../runtime/onnx_proto.ts';
import { createSession } from '../runtime/session.ts';

const rng = mulberry32;

async function time(label: string, fn: () => unknown | Promise<unknown>, runs = 15): Promise<number> {
  for (let i = 0; i < 3; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  const med = ts[ts.length >> 1];
  console.log(`${label.padEnd(58)} ${med.toFixed(3).padStart(9)} ms  (min ${ts[0].toFixed(3)})`);
  return med;
}

/** n boxes around nObj objects in a W x H image, jittered like RPN proposals; scores uniform. */
function clusteredBoxes(n: number, nObj: number, W: number, H: number, r: () => number): { boxes: Float32Array; scores: Float32Array } {
  const obj = Array.from({ length: nObj }, () => [r() * W, r() * H, 8 * Math.exp(r() * Math.log(50)), 8 * Math.exp(r() * Math.log(50))]);
  const boxes = new Float32Array(n * 4);
  const scores = new Float32Array(n);
  const g = () => (r() + r() + r() - 1.5) * 0.3;
  for (let i = 0; i < n; i++) {
    const [cx, cy, w, h] = obj[Math.floor(r() * nObj)];
    const x = cx + g() * w, y = cy + g() * h, ww = w * Math.exp(g()), hh = h * Math.exp(g());
    boxes.set([x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2], i * 4);
    scores[i] = r();
  }
  return { boxes, scores };
}

async function benchNms(): Promise<void> {
  console.log('\n# NMS, 5000 boxes (800x1216 image)');
  const r = rng(1);
  const { boxes, scores } = clusteredBoxes(5000, 300, 1216, 800, r);
  const idxs = Int32Array.from({ length: 5000 }, () => Math.floor(r() * 5));
  console.log(`clustered (300 objects): torchvision keeps ${nms(boxes, scores, 0.7).length}`);
  await time('nms (torchvision) iou 0.7, clustered', () => nms(boxes, scores, 0.7), 50);
  await time('nmsMmcv iou 0.7, clustered', () => nmsMmcv(boxes, scores, 0.7), 50);
  await time('batchedNms torchvision (per-class path), 5 levels', () => batchedNms(boxes, scores, idxs, 0.7), 50);
  await time('batchedNms mmcv (offset trick), 5 levels', () => batchedNms(boxes, scores, idxs, 0.7, { flavor: 'mmcv' }), 50);
  const u = clusteredBoxes(5000, 5000, 1216, 800, r);
  console.log(`spread (5000 objects): torchvision keeps ${nms(u.boxes, u.scores, 0.7).length}`);
  await time('nms (torchvision) iou 0.7, spread boxes', () => nms(u.boxes, u.scores, 0.7), 50);
}

function oneNodeRoiAlign(C: number, H: number, W: number, out: number, scale: number, sr: number, aligned: boolean): Uint8Array {
  const g = createGraph('roialign', 16);
  const x = addInput(g, 'X', [1, C, H, W]);
  const rois = addInput(g, 'rois', ['R', 4]);
  const bi = addInput(g, 'batch_indices', ['R'], DataType.INT64);
  const [y] = addNode(g, 'RoiAlign', [x, rois, bi], {
    mode: attr.string('avg'),
    output_height: attr.int(out),
    output_width: attr.int(out),
    sampling_ratio: attr.int(sr),
    spatial_scale: attr.float(scale),
    coordinate_transformation_mode: attr.string(aligned ? 'half_pixel' : 'output_half_pixel'),
  });
  addOutput(g, y, 'Y', ['R', C, out, out]);
  return serializeModel(g);
}

async function benchRoiAlign(): Promise<void> {
  const C = 256, H = 100, W = 152, scale = 1 / 8; // P3 of an 800x1216 input
  const r = rng(2);
  const data = new Float32Array(C * H * W);
  for (let i = 0; i < data.length; i++) data[i] = r() - 0.5;
  const nchw: FeatureMap = { data, channels: C, height: H, width: W };
  let nhwcData: Float32Array = new Float32Array(0);
  const tT = await time('toNHWC 256x100x152 (once per level)', () => { nhwcData = toNHWC(data, C, H, W); }, 10);
  const nhwc: FeatureMap = { data: nhwcData, channels: C, height: H, width: W, layout: 'nhwc' };
  const n = 1000;
  const boxes = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    // RoIs of the sizes this level gets: 64..256 px boxes in input coordinates
    const w = 64 + r() * 192, h = 64 + r() * 192, x = r() * (1216 - w), y = r() * (800 - h);
    boxes.set([x, y, x + w, y + h], i * 4);
  }
  for (const [out, sr, aligned] of [[7, 2, false], [7, 0, true], [14, 2, false], [14, 0, true]] as const) {
    console.log(`\n# RoIAlign ${n} RoIs x ${C} ch, ${out}x${out}, sampling_ratio ${sr}, aligned ${aligned}, feature ${H}x${W}`);
    const opts = { outputSize: out, spatialScale: scale, samplingRatio: sr, aligned };
    const a = await time('ours, NHWC features', () => roiAlign(nhwc, boxes, opts), 5);
    await time('ours, NCHW features', () => roiAlign(nchw, boxes, opts), 5);
    console.log(`ours NHWC + one toNHWC: ${(a + tT).toFixed(1)} ms`);
    const model = oneNodeRoiAlign(C, H, W, out, scale, sr, aligned);
    const feeds = {
      X: new ort.Tensor('float32', data, [1, C, H, W]),
      rois: new ort.Tensor('float32', boxes, [n, 4]),
      batch_indices: new ort.Tensor('int64', new BigInt64Array(n), [n]),
    };
    let ortOut: Float32Array = new Float32Array(0);
    for (const threads of [1, 2]) {
      const s = await createSession(model, { threads });
      await time(`ORT RoiAlign op, ${threads} thread(s)`, async () => { ortOut = (await s.run(feeds)).Y.data as Float32Array; }, 5);
    }
    const ours = roiAlign(nhwc, boxes, opts);
    let maxDiff = 0;
    for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ortOut[i]));
    console.log(`max |ours - ORT| = ${maxDiff.toExponential(2)}`);
  }
}

async function benchPaste(): Promise<void> {
  const H = 800, W = 1333, n = 100, M = 28;
  console.log(`\n# paste ${n} masks (${M}x${M}) into ${H}x${W}, threshold 0.5`);
  const r = rng(3);
  const masks = new Float32Array(n * M * M);
  for (let i = 0; i < masks.length; i++) masks[i] = r();
  const boxes = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const w = 16 + r() * 500, h = 16 + r() * 500, x = r() * (W - w), y = r() * (H - h);
    boxes.set([x, y, x + w, y + h], i * 4);
  }
  await time('pasteMasks torchvision (cropped output)', () => pasteMasks(masks, M, boxes, H, W, 'torchvision'), 10);
  await time('pasteMasks mmdet (cropped output)', () => pasteMasks(masks, M, boxes, H, W, 'mmdet'), 10);
  const full = new Uint8Array(H * W);
  const pasted = pasteMasks(masks, M, boxes, H, W, 'mmdet');
  await time('blit + clear of 100 crops in one reused full buffer', () => {
    for (const p of pasted) {
      blitMask(p, full, W);
      clearMask(p, full, W);
    }
  }, 10);
}

const which = process.argv.slice(2);
const want = (k: string) => which.length === 0 || which.includes(k);
if (want('nms')) await benchNms();
if (want('roialign')) await benchRoiAlign();
if (want('paste')) await benchPaste();
