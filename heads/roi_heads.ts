/**
 * RoI heads (torchvision RoIHeads.forward / mmdet StandardRoIHead.simple_test): the box head (TwoMLPHead / Shared2FCBBoxHead: flatten, fc6 + ReLU, fc7 + ReLU, then class logits and
 * per-class deltas) and the mask head (MaskRCNNHeads / FCNMaskHead: 4 x (3x3 conv + ReLU), 2x2 stride-2
 * transposed conv + ReLU, 1x1 conv to per-class 28x28 logits) as two small ONNX models, and their TypeScript
 * post-processing: softmax, per-class decoding, clipping, score threshold, class-aware NMS, top-k, and the
 * per-detection mask of its own class.
 */
import type { FloatTensor, QuantizedTensor } from '../core/tensor.ts';
import { addInput, addOutput, conv, createGraph, linear, relu, serializeModel } from '../runtime/graph.ts';
import { runSession, type Session } from '../runtime/session.ts';
import { clipBoxesToImage, decodeBoxesMmdetPairs, decodeBoxesTorchvision, removeSmallBoxes } from '../postprocess/box_coder.ts';
import { batchedNms, multiclassCandidates, multiclassNmsOfCandidates } from '../postprocess/nms.ts';
import type { ConvWeights } from '../core/tensor.ts';
import type { BoxHeadConfig, RoiConfig } from './config.ts';
import {
  inferScale, levelMapperTorchvision, mapRoiLevelsMmdet, multiScaleRoiAlign, stageFeatures, type FeatureMap, type StagedFeatures,
} from './roi_align.ts';

export interface BoxHeadWeights {
  fc6: ConvWeights;
  fc7: ConvWeights;
  /** [K, 1024]: K = classes + background. */
  cls: ConvWeights;
  /** [4K or 4(K-1), 1024]. */
  reg: ConvWeights;
}

export interface MaskHeadWeights {
  convs: ConvWeights[];
  /** ConvTranspose2d weight [in, out, 2, 2]. */
  upsample: ConvWeights;
  logits: ConvWeights;
}

/** Box head ONNX model: input `rois` [R, C, 7, 7] -> `class_logits` [R, K], `box_regression` [R, 4K']. */
export function boxHeadModel(w: BoxHeadWeights): Uint8Array {
  const inFeatures = w.fc6.weight.shape[1];
  const g = createGraph('box_head');
  const x = addInput(g, 'rois', ['R', inFeatures]);
  let h = relu(g, linear(g, x, w.fc6.weight, w.fc6.bias, 'fc6'), 'fc6.relu');
  h = relu(g, linear(g, h, w.fc7.weight, w.fc7.bias, 'fc7'), 'fc7.relu');
  addOutput(g, linear(g, h, w.cls.weight, w.cls.bias, 'cls_score'), 'class_logits');
  addOutput(g, linear(g, h, w.reg.weight, w.reg.bias, 'bbox_pred'), 'box_regression');
  return serializeModel(g, { docString: 'Mask R-CNN box head' });
}

/**
 * ConvTranspose2d(k=2, s=2) + ReLU + 1x1 logits conv, without ORT's slow ConvTranspose and DepthToSpace: the
 * 2x2 taps do not overlap, so upsampled pixel (2y+i, 2x+j) of channel o is channel t*C + o (t = 2i + j) of a
 * 1x1 conv at (y, x), and the logits conv applies per tap t: a group-4 1x1 conv. The result stays
 * space-to-depth, `mask_logits_s2d` [R, 4K, S, S] = [R, 2, 2, K, S, S] (i, j, class, y, x);
 * selectMaskProbabilities rearranges only the selected class.
 */
function upsampleAndLogits(g: ReturnType<typeof createGraph>, x: string, up: ConvWeights, logits: ConvWeights): string {
  const [cin, cout, kh, kw] = up.weight.shape;
  if (kh !== 2 || kw !== 2) throw new Error(`mask head upsample is ${kh}x${kw}, expected a 2x2 stride-2 ConvTranspose2d`);
  const wt = new Float32Array(4 * cout * cin);
  const bt = new Float32Array(4 * cout);
  for (let c = 0; c < cin; c++) {
    for (let o = 0; o < cout; o++) {
      for (let t = 0; t < 4; t++) wt[(t * cout + o) * cin + c] = up.weight.data[(c * cout + o) * 4 + t];
    }
  }
  for (let t = 0; t < 4; t++) for (let o = 0; o < cout; o++) bt[t * cout + o] = up.bias ? up.bias.data[o] : 0;
  const y = relu(g, conv(g, x, { shape: [4 * cout, cin, 1, 1], data: wt }, { shape: [4 * cout], data: bt }, { name: 'conv5_mask' }), 'conv5_mask.relu');
  const K = logits.weight.shape[0];
  if (logits.weight.shape[1] !== cout) throw new Error(`mask logits take ${logits.weight.shape[1]} channels, the upsample gives ${cout}`);
  const lw = new Float32Array(4 * K * cout);
  const lb = new Float32Array(4 * K);
  for (let t = 0; t < 4; t++) {
    lw.set(logits.weight.data, t * K * cout);
    if (logits.bias) lb.set(logits.bias.data, t * K);
  }
  return conv(g, y, { shape: [4 * K, cout, 1, 1], data: lw }, { shape: [4 * K], data: lb }, { group: 4, name: 'mask_fcn_logits' });
}

/** Mask head ONNX model: input `rois` [R, C, 14, 14] -> `mask_logits_s2d` [R, 4K, 14, 14] (space-to-depth 28x28 logits). */
export function maskHeadModel(w: MaskHeadWeights): Uint8Array {
  const g = createGraph('mask_head');
  let x = addInput(g, 'rois', ['R', w.convs[0].weight.shape[1], 'S', 'S']);
  w.convs.forEach((c, i) => { x = relu(g, conv(g, x, c.weight, c.bias, { pad: 1, name: `mask_fcn${i + 1}` }), `mask_fcn${i + 1}.relu`); });
  addOutput(g, upsampleAndLogits(g, x, w.upsample, w.logits), 'mask_logits_s2d');
  return serializeModel(g, { docString: 'Mask R-CNN mask head' });
}

export interface Detections {
  /** n*4 x1y1x2y2 in resized-image (network) coordinates. */
  boxes: Float32Array;
  scores: Float32Array;
  /** Label as the framework reports it (torchvision: box-head column, 0 = background; mmdet: 0-based class). */
  labels: Int32Array;
}

/** Row-wise softmax of [R, K] logits in float32 (exp(x - max) / sum). */
export function softmaxRows(logits: Float32Array, K: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / K; r++) {
    const o = r * K;
    let mx = -Infinity;
    for (let k = 0; k < K; k++) if (logits[o + k] > mx) mx = logits[o + k];
    let sum = 0;
    for (let k = 0; k < K; k++) {
      const e = Math.fround(Math.exp(Math.fround(logits[o + k] - mx)));
      out[o + k] = e;
      sum = Math.fround(sum + e);
    }
    for (let k = 0; k < K; k++) out[o + k] = Math.fround(out[o + k] / sum);
  }
  return out;
}

/** torchvision RoIHeads.postprocess_detections for one image. */
function torchvisionDetections(
  classLogits: Float32Array, boxRegression: Float32Array, proposals: Float32Array, imageSize: [number, number], cfg: BoxHeadConfig,
): Detections {
  const R = proposals.length / 4;
  const K = classLogits.length / R;
  const pred = clipBoxesToImage(decodeBoxesTorchvision(boxRegression, proposals, cfg.coder.values), imageSize[0], imageSize[1]);
  const probs = softmaxRows(classLogits, K);
  // (proposal, class) pairs in row-major order without the background column, score > threshold.
  const sel: number[] = [];
  for (let r = 0; r < R; r++) for (let k = 1; k < K; k++) if (probs[r * K + k] > cfg.scoreThresh) sel.push(r * K + k);
  let boxes = new Float32Array(sel.length * 4);
  sel.forEach((p, i) => boxes.set(pred.subarray(p * 4, p * 4 + 4), i * 4));
  const keepLarge = removeSmallBoxes(boxes, cfg.minSize);
  const cand = Array.from(keepLarge, (i) => sel[i]);
  boxes = new Float32Array(cand.length * 4);
  const scores = new Float32Array(cand.length);
  const labels = new Int32Array(cand.length);
  cand.forEach((p, i) => {
    boxes.set(pred.subarray(p * 4, p * 4 + 4), i * 4);
    scores[i] = probs[p];
    labels[i] = p % K;
  });
  const keep = batchedNms(boxes, scores, labels, cfg.nmsThresh, { flavor: 'torchvision' }).subarray(0, cfg.maxDetections);
  return gather({ boxes, scores, labels }, keep);
}

/**
 * mmdet BBoxHead.get_bboxes + multiclass_nms for one image (boxes mapped by `rescale` before NMS; it must map
 * each coordinate on its own, as boxesToOriginal does).
 */
function mmdetDetections(
  classLogits: Float32Array, boxRegression: Float32Array, proposals: Float32Array, imageSize: [number, number], cfg: BoxHeadConfig,
  rescale?: (boxes: Float32Array) => Float32Array,
): Detections {
  const R = proposals.length / 4;
  const K = classLogits.length / R;
  const C = K - 1;
  const probs = softmaxRows(classLogits, K);
  // Score filter first, then decode (and rescale) only the candidates' boxes: both are per (box, class) pair,
  // so this gives the boxes multiclass_nms would pick from the full decode, at a fraction of the cost
  // (SLEEF's expf is replayed exactly, and at score_thr 0.05 most of the R x C pairs drop out).
  const cand = multiclassCandidates(probs, C, cfg.scoreThresh);
  const perClass = boxRegression.length === R * C * 4;
  if (!perClass && boxRegression.length !== R * 4) throw new Error(`box head gave ${boxRegression.length} deltas for ${R} RoIs and ${C} classes`);
  let pairs = cand.inds;
  if (!perClass) { // class-agnostic regression: one box per RoI
    pairs = new Int32Array(cand.inds.length);
    for (let k = 0; k < pairs.length; k++) pairs[k] = Math.floor(cand.inds[k] / C);
  }
  let pred = decodeBoxesMmdetPairs(boxRegression, proposals, pairs, { stds: cfg.coder.values, maxShape: imageSize });
  if (rescale) pred = rescale(pred);
  const { dets, labels } = multiclassNmsOfCandidates(pred, cand, { iouThreshold: cfg.nmsThresh }, cfg.maxDetections);
  const n = labels.length;
  const boxes = new Float32Array(n * 4);
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    boxes.set(dets.subarray(i * 5, i * 5 + 4), i * 4);
    scores[i] = dets[i * 5 + 4];
  }
  return { boxes, scores, labels };
}

/**
 * Final detections of one image from the box head's outputs for `proposals` (resized-image coordinates).
 * With cfg.rescaleBeforeNms the decoded boxes go through `rescale` (to original-image coordinates) before NMS
 * and the result is in that space.
 */
export function boxDetections(
  classLogits: Float32Array, boxRegression: Float32Array, proposals: Float32Array, imageSize: [number, number], cfg: BoxHeadConfig,
  rescale?: (boxes: Float32Array) => Float32Array,
): Detections {
  const R = proposals.length / 4;
  if (R === 0) return { boxes: new Float32Array(0), scores: new Float32Array(0), labels: new Int32Array(0) };
  if (classLogits.length % R !== 0) throw new Error(`box head gave ${classLogits.length} logits for ${R} RoIs`);
  if (cfg.rescaleBeforeNms && (!rescale || cfg.background === 'first')) throw new Error('rescaleBeforeNms needs a rescale function and the mmdet box head');
  return cfg.background === 'first'
    ? torchvisionDetections(classLogits, boxRegression, proposals, imageSize, cfg)
    : mmdetDetections(classLogits, boxRegression, proposals, imageSize, cfg, cfg.rescaleBeforeNms ? rescale : undefined);
}

/** Keeps the detections whose label passes `keep`. */
export function filterDetections(d: Detections, keep: (label: number) => boolean): Detections {
  const idx: number[] = [];
  for (let i = 0; i < d.labels.length; i++) if (keep(d.labels[i])) idx.push(i);
  return gather(d, idx);
}

function gather(d: Detections, keep: ArrayLike<number>): Detections {
  const n = keep.length;
  const out: Detections = { boxes: new Float32Array(n * 4), scores: new Float32Array(n), labels: new Int32Array(n) };
  for (let k = 0; k < n; k++) {
    const i = keep[k];
    out.boxes.set(d.boxes.subarray(i * 4, i * 4 + 4), k * 4);
    out.scores[k] = d.scores[i];
    out.labels[k] = d.labels[i];
  }
  return out;
}

/**
 * Sigmoid probabilities of each detection's own class: maskLogits [n, K, m, m], or the mask head's
 * space-to-depth [n, 2, 2, K, m/2, m/2] -> [n, m, m].
 */
export function selectMaskProbabilities(maskLogits: FloatTensor, labels: Int32Array): Float32Array {
  const s = maskLogits.shape;
  const s2d = s.length === 6;
  const n = s[0];
  const K = s2d ? s[3] : s[1];
  const [hh, ww] = s2d ? [s[4], s[5]] : [s[2], s[3]];
  if (n !== labels.length) throw new Error(`mask head gave ${n} masks for ${labels.length} detections`);
  const mh = s2d ? 2 * hh : hh, mw = s2d ? 2 * ww : ww;
  const m = mh * mw;
  const out = new Float32Array(n * m);
  const sig = (v: number) => Math.fround(1 / (1 + Math.exp(-v)));
  for (let r = 0; r < n; r++) {
    const k = labels[r];
    if (k < 0 || k >= K) throw new Error(`label ${k} outside the mask head's ${K} classes`);
    if (!s2d) {
      const src = (r * K + k) * m;
      for (let j = 0; j < m; j++) out[r * m + j] = sig(maskLogits.data[src + j]);
      continue;
    }
    for (let t = 0; t < 4; t++) {
      const i = t >> 1, j = t & 1;
      const src = ((r * 4 + t) * K + k) * hh * ww;
      for (let y = 0; y < hh; y++) {
        for (let x = 0; x < ww; x++) out[r * m + (2 * y + i) * mw + 2 * x + j] = sig(maskLogits.data[src + y * ww + x]);
      }
    }
  }
  return out;
}

/** Runs `run` as the named stage of a detector run, adding its wall time to that stage's timing. */
export type TimeStage = <T>(stage: string, run: () => T) => T;

/** The FPN levels the RoI heads read (the main graph's channel-last `fpn_l` outputs) with their scales. */
/** Where RoIAlign runs: its thread count and output buffers reused from run to run (a detector's). */
export interface RoiAlignPlace {
  threads: number;
  /** Fresh arrays of this size (50 MB for 1000 proposals) cost tens of ms in page faults: grown, not remade. */
  roiBuffers: { box: Float32Array; mask: Float32Array };
}

export interface RoiFeatures {
  /** The FPN levels, staged once into the RoIAlign kernel's memory for the box and the mask RoIAlign. */
  maps: StagedFeatures;
  scales: number[];
  place: RoiAlignPlace;
}

/** torchvision's MultiScaleRoIAlign infers each level's scale from its size; mmdet uses 1 / stride. */
export function roiFeatures(
  out: Record<string, FloatTensor | QuantizedTensor>, imageSize: [number, number], cfg: RoiConfig, place: RoiAlignPlace,
): RoiFeatures {
  const maps: FeatureMap[] = [];
  const scales: number[] = [];
  for (let l = 0; l < cfg.strides.length; l++) {
    const f = out[`fpn_${l}`];
    const [, h, w, c] = f.shape;
    const quant = 'scale' in f ? { scale: f.scale, zeroPoint: f.zeroPoint } : undefined;
    maps.push({ data: f.data, channels: c, height: h, width: w, layout: 'nhwc', quant });
    scales.push(cfg.levelMapper.kind === 'torchvision' ? inferScale([h, w], imageSize) : 1 / cfg.strides[l]);
  }
  return { maps: stageFeatures(maps), scales, place };
}

/** The first `size` values of the reused RoIAlign output buffer `which` (grown as needed). */
function roiBuffer(place: RoiAlignPlace, which: 'box' | 'mask', size: number): Float32Array {
  if (place.roiBuffers[which].length < size) place.roiBuffers[which] = new Float32Array(size);
  return place.roiBuffers[which].subarray(0, size);
}

function roiLevels(boxes: Float32Array, cfg: RoiConfig, numLevels: number): Int32Array {
  const m = cfg.levelMapper;
  if (m.kind === 'torchvision') {
    const kMin = Math.log2(cfg.strides[0]);
    return levelMapperTorchvision(boxes, { kMin, kMax: kMin + numLevels - 1, canonicalScale: m.canonicalScale, canonicalLevel: m.canonicalLevel });
  }
  return mapRoiLevelsMmdet(boxes, numLevels, m.finestScale);
}

/**
 * RoI features [n, C, s, s] of `boxes` (network coordinates), each from the level its size maps to, written
 * into the reused buffer `which` (valid until the next run of the same detector).
 */
function alignRois(f: RoiFeatures, boxes: Float32Array, outputSize: number, cfg: RoiConfig, which: 'box' | 'mask'): Float32Array {
  const levels = f.maps.levels;
  const size = (boxes.length / 4) * levels[0].channels * outputSize * outputSize;
  return multiScaleRoiAlign(f.maps, boxes, roiLevels(boxes, cfg, levels.length), {
    outputSize, samplingRatio: cfg.samplingRatio, aligned: cfg.aligned, scales: f.scales,
    threads: f.place.threads, out: roiBuffer(f.place, which, size),
  });
}

/** Per-call changes to the box head's score threshold and top-k, and a label filter applied after NMS. */
export interface BoxHeadOverrides {
  scoreThresh?: number;
  maxDetections?: number;
  keepLabel?: (label: number) => boolean;
}

export interface BoxStage {
  classLogits: Float32Array;
  boxRegression: Float32Array;
  detections: Detections;
}

/**
 * The box stage for `proposals` (network coordinates): RoIAlign (timed as roi_align), the box head
 * (box_head), then decoding, thresholds and NMS (nms); see boxDetections for `rescale`.
 */
export async function boxStage(
  head: Session, feats: RoiFeatures, proposals: Float32Array, imageSize: [number, number], cfg: { roi: RoiConfig; boxHead: BoxHeadConfig },
  rescale: (boxes: Float32Array) => Float32Array, ov: BoxHeadOverrides, time: TimeStage,
): Promise<BoxStage> {
  const R = proposals.length / 4;
  const rois = time('roi_align', () => alignRois(feats, proposals, cfg.roi.boxOutput, cfg.roi, 'box'));
  // No proposals (e.g. a blank image): skip the head rather than feed ORT a zero-row batch.
  const out = await time('box_head', () => (R > 0 ? runSession(head, { rois: { shape: [R, rois.length / R], data: rois } }) : null));
  const classLogits = out ? out.class_logits.data : new Float32Array(0);
  const boxRegression = out ? out.box_regression.data : new Float32Array(0);
  const detections = time('nms', () => {
    const boxCfg = {
      ...cfg.boxHead,
      ...(ov.scoreThresh !== undefined ? { scoreThresh: ov.scoreThresh } : {}),
      ...(ov.maxDetections !== undefined ? { maxDetections: ov.maxDetections } : {}),
    };
    const d = boxDetections(classLogits, boxRegression, proposals, imageSize, boxCfg, rescale);
    return ov.keepLabel ? filterDetections(d, ov.keepLabel) : d;
  });
  return { classLogits, boxRegression, detections };
}

/**
 * Where the masks are computed and pasted. Mask RoIs live in network coordinates, final boxes and paste boxes
 * in the original image; with rescaleBeforeNms (mmdet) the detections are in the original image already, the
 * mask RoIs are those boxes times scale_factor, and get_seg_masks(rescale=True) pastes at mask RoIs /
 * scale_factor, which may differ from the boxes by float rounding.
 */
export function detectionBoxSpaces(
  boxes: Float32Array, cfg: BoxHeadConfig, toNetwork: (b: Float32Array) => Float32Array, toOriginal: (b: Float32Array) => Float32Array,
): { maskRois: Float32Array; boxes: Float32Array; paste: Float32Array } {
  if (!cfg.rescaleBeforeNms) {
    const original = toOriginal(boxes);
    return { maskRois: boxes, boxes: original, paste: original };
  }
  const maskRois = toNetwork(boxes);
  return { maskRois, boxes, paste: toOriginal(maskRois) };
}

export interface MaskStage {
  /** The mask head's logits; absent when there was nothing to run it on. */
  logits?: FloatTensor;
  /** Each detection's own-class probabilities, n x size x size. */
  probs: Float32Array;
  size: number;
}

/**
 * The mask stage for detections at `boxes` (network coordinates) with `labels`: RoIAlign (timed as roi_align)
 * and the mask head with the choice of each detection's class (mask_head). No detections: no work, 0 ms.
 */
export async function maskStage(
  head: Session, feats: RoiFeatures, boxes: Float32Array, labels: Int32Array, cfg: RoiConfig, time: TimeStage,
): Promise<MaskStage> {
  const n = labels.length;
  const ms = cfg.maskOutput;
  if (n === 0) return { probs: new Float32Array(0), size: 2 * ms };
  const rois = time('roi_align', () => alignRois(feats, boxes, ms, cfg, 'mask'));
  return time('mask_head', async () => {
    const m = await runSession(head, { rois: { shape: [n, rois.length / (n * ms * ms), ms, ms], data: rois } });
    // The space-to-depth head variant gives [n, 4K, m/2, m/2]: its logits are viewed as [n, 2, 2, K, m/2, m/2].
    const s2d = m.mask_logits_s2d;
    const logits = s2d
      ? { shape: [s2d.shape[0], 2, 2, s2d.shape[1] / 4, s2d.shape[2], s2d.shape[3]], data: s2d.data }
      : m.mask_logits;
    return { logits, probs: selectMaskProbabilities(logits, labels), size: s2d ? 2 * s2d.shape[2] : logits.shape[2] };
  });
}
