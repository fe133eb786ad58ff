/**
 * RoIAlign for the torchvision flavor (aligned=False, sampling_ratio=2, 7x7, 4 FPN levels of an 800x1216 input,
 * 1000 RoIs): TypeScript over NCHW, TypeScript over NHWC (including the transpose), and ONNX Runtime's RoiAlign
 * (one node per level). Prints median ms of each; `tsx bench/roi_align_tv.ts [runs] [threads]`.
 */
import { addInput, addNode, addOutput, attr, createGraph, serializeModel } from '../runtime/graph.ts';
import { DataType } from '../runtime/onnx_proto.ts';
import { createSession } from '../runtime/session.ts';
import { multiScaleRoiAlign, levelMapperTorchvision, toNHWC, type FeatureMap } from '../heads/roi_align.ts';
import * as ort from 'onnxruntime-node';

const runs = Number(process.argv[2] ?? 5);
const threads = Number(process.argv[3] ?? 2);
const C = 256;
const sizes: [number, number][] = [[200, 304], [100, 152], [50, 76], [25, 38]];
let s = 1;
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const feats = sizes.map(([h, w]) => Float32Array.from({ length: C * h * w }, () => rnd() * 2 - 1));
const R = 1000;
const boxes = new Float32Array(R * 4);
for (let i = 0; i < R; i++) {
  const w = 8 + rnd() * 500, h = 8 + rnd() * 500, x = rnd() * (1216 - w), y = rnd() * (800 - h);
  boxes.set([x, y, x + w, y + h], i * 4);
}
const levels = levelMapperTorchvision(boxes);
const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
const opts = { outputSize: 7, samplingRatio: 2, aligned: false, scales };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
function time(f: () => void): number {
  const t: number[] = [];
  for (let r = 0; r <= runs; r++) { const t0 = performance.now(); f(); if (r) t.push(performance.now() - t0); }
  return median(t);
}
const nchw: FeatureMap[] = feats.map((d, l) => ({ data: d, channels: C, height: sizes[l][0], width: sizes[l][1], layout: 'nchw' }));
const tNchw = time(() => multiScaleRoiAlign(nchw, boxes, levels, opts));
let nhwc: FeatureMap[] = [];
const tTranspose = time(() => { nhwc = feats.map((d, l) => ({ data: toNHWC(d, C, ...sizes[l]), channels: C, height: sizes[l][0], width: sizes[l][1], layout: 'nhwc' })); });
const tNhwc = time(() => multiScaleRoiAlign(nhwc, boxes, levels, opts));

// ORT: one RoiAlign per level on that level's boxes (torchvision aligned=False = output_half_pixel).
const g = createGraph('roi_align', 16);
for (let l = 0; l < 4; l++) {
  const f = addInput(g, `f${l}`, [1, C, sizes[l][0], sizes[l][1]]);
  const r = addInput(g, `r${l}`, ['n', 4]);
  const b = addInput(g, `b${l}`, ['n'], DataType.INT64);
  const [y] = addNode(g, 'RoiAlign', [f, r, b], {
    mode: attr.string('avg'), output_height: attr.int(7), output_width: attr.int(7), sampling_ratio: attr.int(2),
    spatial_scale: attr.float(scales[l]), coordinate_transformation_mode: attr.string('output_half_pixel'),
  }, { name: `roi${l}` });
  addOutput(g, y, `y${l}`);
}
const sess = await createSession(serializeModel(g), { threads });
const feeds: Record<string, ort.Tensor> = {};
for (let l = 0; l < 4; l++) {
  const idx: number[] = [];
  for (let i = 0; i < R; i++) if (levels[i] === l) idx.push(i);
  const rb = new Float32Array(idx.length * 4);
  idx.forEach((i, k) => rb.set(boxes.subarray(i * 4, i * 4 + 4), k * 4));
  feeds[`f${l}`] = new ort.Tensor('float32', feats[l], [1, C, ...sizes[l]]);
  feeds[`r${l}`] = new ort.Tensor('float32', rb, [idx.length, 4]);
  feeds[`b${l}`] = new ort.Tensor('int64', new BigInt64Array(idx.length), [idx.length]);
}
const tOrt: number[] = [];
for (let r = 0; r <= runs; r++) { const t0 = performance.now(); await sess.run(feeds); if (r) tOrt.push(performance.now() - t0); }
console.log(JSON.stringify({ rois: R, ts_nchw_ms: tNchw, ts_nhwc_ms: tNhwc, nhwc_transpose_ms: tTranspose, ort_ms: median(tOrt), ort_threads: threads }));
