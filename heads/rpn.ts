/**
 * RPN: the head as ONNX nodes (3x3 conv + ReLU, 1x1 objectness, 1x1 deltas, shared over levels) and proposal
 * generation in TypeScript. Head outputs are transposed in the graph to (h, w, A) and (h, w, A, 4) — the
 * anchor order of both frameworks (torchvision permute_and_flatten, mmdet permute(1, 2, 0)).
 *
 * Proposals per image (knobs in DetectorConfig.rpn):
 *   per level: top preNmsTopN by objectness -> decode against anchors -> clip to the resized image
 *   -> drop small boxes -> scores >= scoreThresh -> NMS per level (batched by level id) -> first postNmsTopN.
 */
import { addInitializer, addNode, attr, type Graph } from '../runtime/graph.ts';
import { argsortDescendingStable } from '../postprocess/sort.ts';
import { clipBoxesToImage, decodeBoxesMmdet, decodeBoxesTorchvision, removeSmallBoxes } from '../postprocess/box_coder.ts';
import { batchedNms } from '../postprocess/nms.ts';
import { anchorsMmdet, anchorsTorchvision } from '../postprocess/anchors.ts';
import type { ConvWeights, FloatTensor } from '../core/tensor.ts';
import type { AnchorConfig, RpnConfig } from './config.ts';

export interface RpnWeights {
  conv: ConvWeights;
  cls: ConvWeights;
  reg: ConvWeights;
}

function sharedConv(g: Graph, x: string, w: { weight: string; bias?: string; k: number }, name: string): string {
  const pad = (w.k - 1) / 2;
  const inputs = w.bias ? [x, w.weight, w.bias] : [x, w.weight];
  return addNode(g, 'Conv', inputs, {
    kernel_shape: attr.ints([w.k, w.k]), strides: attr.ints([1, 1]), pads: attr.ints([pad, pad, pad, pad]),
  }, { name })[0];
}

function initConv(g: Graph, c: ConvWeights, name: string): { weight: string; bias?: string; k: number } {
  return {
    weight: addInitializer(g, `${name}.weight`, c.weight),
    bias: c.bias ? addInitializer(g, `${name}.bias`, c.bias) : undefined,
    k: c.weight.shape[2],
  };
}

/** Adds the RPN head over every level; returns per-level objectness [1,h,w,A] and deltas [1,h,w,4A] values. */
export function rpnHeadGraph(g: Graph, levels: readonly string[], w: RpnWeights, prefix = 'rpn'): { objectness: string[]; deltas: string[] } {
  const A = w.cls.weight.shape[0];
  if (w.reg.weight.shape[0] !== 4 * A) throw new Error(`RPN bbox_pred has ${w.reg.weight.shape[0]} outputs for ${A} anchors`);
  const conv = initConv(g, w.conv, `${prefix}.conv`);
  const cls = initConv(g, w.cls, `${prefix}.cls_logits`);
  const reg = initConv(g, w.reg, `${prefix}.bbox_pred`);
  const objectness: string[] = [];
  const deltas: string[] = [];
  levels.forEach((x, l) => {
    const t = addNode(g, 'Relu', [sharedConv(g, x, conv, `${prefix}.conv.${l}`)], {}, { name: `${prefix}.relu.${l}` })[0];
    const o = sharedConv(g, t, cls, `${prefix}.cls_logits.${l}`);
    const d = sharedConv(g, t, reg, `${prefix}.bbox_pred.${l}`);
    const perm = { perm: attr.ints([0, 2, 3, 1]) };
    objectness.push(addNode(g, 'Transpose', [o], perm, { name: `${prefix}.objectness.${l}` })[0]);
    deltas.push(addNode(g, 'Transpose', [d], perm, { name: `${prefix}.deltas.${l}` })[0]);
  });
  return { objectness, deltas };
}

/** RPN levels of the main graph (heads/mask_rcnn.ts): P2..P6. */
export const NUM_RPN_LEVELS = 5;

/**
 * RegionProposalNetwork.forward after the head: proposals of one image from the main graph's outputs
 * `rpn_objectness_l` [1, h, w, A] and `rpn_deltas_l`, anchored on the padded input ([h, w]); `imageSize` =
 * [h, w] of the resized image (clip bounds).
 */
export function rpnProposals(
  out: Record<string, FloatTensor>, paddedSize: [number, number], imageSize: [number, number], anchors: AnchorConfig, cfg: RpnConfig,
): Proposals {
  const levels = Array.from({ length: NUM_RPN_LEVELS }, (_, l) => ({ objectness: out[`rpn_objectness_${l}`], deltas: out[`rpn_deltas_${l}`] }));
  const sizes = levels.map(({ objectness: o }): [number, number] => [o.shape[1], o.shape[2]]);
  return generateProposals(
    levels.map((v) => v.objectness.data), levels.map((v) => v.deltas.data), levelAnchors(anchors, sizes, paddedSize), imageSize, cfg,
  );
}

/** Anchors of every level for the padded input size. */
export function levelAnchors(cfg: AnchorConfig, featureSizes: [number, number][], paddedSize: [number, number]): Float32Array[] {
  if (cfg.kind === 'torchvision') {
    return anchorsTorchvision(featureSizes, paddedSize, { sizes: cfg.sizes.map((s) => [s]), aspectRatios: cfg.aspectRatios });
  }
  return anchorsMmdet(featureSizes, { strides: cfg.strides, ratios: cfg.aspectRatios, scales: cfg.scales });
}

export interface Proposals {
  /** n*4 x1y1x2y2 in resized-image coordinates. */
  boxes: Float32Array;
  scores: Float32Array;
}

function sigmoid(x: number): number {
  return Math.fround(1 / (1 + Math.exp(-x)));
}

/**
 * Proposals of one image from the RPN outputs of every level (objectness logits h*w*A, deltas h*w*A*4) and
 * the matching anchors; `imageSize` = [h, w] of the resized image (clip bounds).
 */
export function generateProposals(
  objectness: readonly Float32Array[], deltas: readonly Float32Array[], anchors: readonly Float32Array[],
  imageSize: [number, number], cfg: RpnConfig,
): Proposals {
  const L = objectness.length;
  const selBoxes: Float32Array[] = [];
  const selScores: Float32Array[] = [];
  const selLevels: number[] = [];
  for (let l = 0; l < L; l++) {
    const logits = objectness[l];
    const n = logits.length;
    if (anchors[l].length !== n * 4 || deltas[l].length !== n * 4) {
      throw new Error(`RPN level ${l}: ${n} scores, ${anchors[l].length / 4} anchors, ${deltas[l].length / 4} deltas`);
    }
    const k = Math.min(cfg.preNmsTopN, n);
    // Sigmoid is monotonic: ranking logits (torchvision) or probabilities (mmdet) picks the same boxes.
    const order = argsortDescendingStable(logits).subarray(0, k);
    const a = new Float32Array(k * 4);
    const d = new Float32Array(k * 4);
    const s = new Float32Array(k);
    for (let i = 0; i < k; i++) {
      const j = order[i];
      a.set(anchors[l].subarray(j * 4, j * 4 + 4), i * 4);
      d.set(deltas[l].subarray(j * 4, j * 4 + 4), i * 4);
      s[i] = sigmoid(logits[j]);
    }
    const boxes = cfg.coder.kind === 'torchvision'
      ? clipBoxesToImage(decodeBoxesTorchvision(d, a, cfg.coder.values), imageSize[0], imageSize[1])
      : decodeBoxesMmdet(d, a, { stds: cfg.coder.values, maxShape: imageSize });
    selBoxes.push(boxes);
    selScores.push(s);
    for (let i = 0; i < k; i++) selLevels.push(l);
  }
  const total = selScores.reduce((t, s) => t + s.length, 0);
  const allBoxes = new Float32Array(total * 4);
  const allScores = new Float32Array(total);
  let off = 0;
  for (let l = 0; l < L; l++) {
    allBoxes.set(selBoxes[l], off * 4);
    allScores.set(selScores[l], off);
    off += selScores[l].length;
  }
  // Small boxes: torchvision keeps w >= minSize and h >= minSize; mmdet keeps w > minSize and h > minSize.
  const keepSmall = cfg.coder.kind === 'torchvision' ? removeSmallBoxes(allBoxes, cfg.minSize) : keepLarger(allBoxes, cfg.minSize);
  const idx: number[] = [];
  for (const i of keepSmall) if (allScores[i] >= cfg.scoreThresh) idx.push(i);
  const boxes = new Float32Array(idx.length * 4);
  const scores = new Float32Array(idx.length);
  const levels = new Int32Array(idx.length);
  idx.forEach((i, k) => {
    boxes.set(allBoxes.subarray(i * 4, i * 4 + 4), k * 4);
    scores[k] = allScores[i];
    levels[k] = selLevels[i];
  });
  const keep = batchedNms(boxes, scores, levels, cfg.nmsThresh, { flavor: cfg.coder.kind === 'torchvision' ? 'torchvision' : 'mmcv' })
    .subarray(0, cfg.postNmsTopN);
  const out: Proposals = { boxes: new Float32Array(keep.length * 4), scores: new Float32Array(keep.length) };
  keep.forEach((i, k) => {
    out.boxes.set(boxes.subarray(i * 4, i * 4 + 4), k * 4);
    out.scores[k] = scores[i];
  });
  return out;
}

function keepLarger(boxes: Float32Array, minSize: number): Int32Array {
  const keep: number[] = [];
  for (let i = 0; i < boxes.length / 4; i++) {
    if (Math.fround(boxes[i * 4 + 2] - boxes[i * 4]) > minSize && Math.fround(boxes[i * 4 + 3] - boxes[i * 4 + 1]) > minSize) keep.push(i);
  }
  return Int32Array.from(keep);
}

