/**
 * Mask R-CNN assembled: preprocessing -> one ONNX session for backbone + FPN + RPN head -> proposals (TS) ->
 * RoIAlign 7x7 (TS) -> box head (ONNX) -> detections (TS) -> RoIAlign 14x14 (TS) -> mask head (ONNX) ->
 * paste + RLE (TS). Flavor differences come from the DetectorConfig stored in the model (heads/config.ts).
 *
 * Packaging: ONNX allows one graph per model, so `M.onnx` is the backbone+FPN+RPN-head graph and carries, in
 * its metadata_props, the fasternet metadata (with the DetectorConfig under extra.detector) and the box and
 * mask heads as complete ONNX models, base64-encoded (`fasternet.box_head_onnx`, `fasternet.mask_head_onnx`).
 * The user handles one file; the head weights cost a third more bytes in base64 (ResNet50 model: 200 MB, of
 * which 91 MB are the base64 heads, 23 MB of it base64 overhead). The alternative of one graph with the RoI
 * features as extra inputs would need every input fed on every run (ORT has no optional graph inputs
 * without initializers) and would run the backbone on a dummy image for each head call.
 *
 * Measured (2 threads, 800x1216 input, 1000 proposals, loaded shared machine): RoIAlign of the proposals in
 * TypeScript over channel-last features 198 ms vs ORT RoiAlign (4 nodes) 253 ms (scripts/bench/roi_align_tv.ts),
 * so the FPN levels leave the graph channel-last (an ORT Transpose, ~10x faster than transposing in JS).
 */
import type { FloatTensor, StateDict } from '../runtime/tensor.ts';
import { addInput, addNode, addOutput, attr, createGraph, serializeModel } from '../runtime/graph.ts';
import { createSession, runSession, type Session } from '../runtime/session.ts';
import { metadataProps, parseMetadata, readModelParts, splitModelBytes, type ModelMetadata, type OtherPreprocess } from '../runtime/metadata.ts';
import { fasternetFeatures } from '../backbones/fasternet.ts';
import { resnet50Features } from '../backbones/resnet.ts';
import { fpnGraph, type FpnWeights } from '../necks/fpn.ts';
import { generateProposals, levelAnchors, rpnHeadGraph, type RpnWeights } from './rpn.ts';
import { boxDetections, boxHeadModel, maskHeadModel, selectMaskProbabilities, type BoxHeadWeights, type Detections, type MaskHeadWeights } from './roi_heads.ts';
import { inferScale, levelMapperTorchvision, mapRoiLevelsMmdet, multiScaleRoiAlign, stageFeatures, startRoiAlignHelper, type FeatureMap } from './roi_align.ts';
import { checkDetectorConfig, type DetectorConfig } from './config.ts';
import { boxesToOriginalTorchvision, torchvisionPreprocess } from './transform_torchvision.ts';
import { boxesToNetwork, boxesToOriginal, mmdetPreprocess } from './transform_mmdet.ts';
import { pasteMasks, type PastedMask } from '../postprocess/paste_masks.ts';
import type { ImageU8 } from '../io/resize_cv2.ts';
import { UserError } from '../cli/errors.ts';

export type BackboneSpec =
  | { kind: 'fasternet'; stateDict: StateDict; prefix: string; variant?: string; bnEps?: number }
  | { kind: 'resnet50'; stateDict: StateDict; prefix: string; style: 'pytorch' | 'caffe'; bnEps?: number };

export interface DetectorWeights {
  backbone: BackboneSpec;
  fpn: FpnWeights;
  rpn: RpnWeights;
  boxHead: BoxHeadWeights;
  maskHead: MaskHeadWeights;
}

const BOX_HEAD_KEY = 'fasternet.box_head_onnx';
const MASK_HEAD_KEY = 'fasternet.mask_head_onnx';
export const NUM_RPN_LEVELS = 5;

/**
 * The main graph: `image` [1, 3, H, W] -> FPN levels `fpn_0..3` ([1, h, w, 256], channel-last) and RPN
 * `rpn_objectness_l` [1, h, w, A], `rpn_deltas_l` [1, h, w, 4A] for the 5 levels.
 */
export function detectorMainGraph(w: DetectorWeights): ReturnType<typeof createGraph> {
  const g = createGraph('mask_rcnn');
  const input = addInput(g, 'image', [1, 3, 'H', 'W']);
  const b = w.backbone;
  const feats = b.kind === 'resnet50'
    ? resnet50Features(g, b.stateDict, { input, prefix: b.prefix, style: b.style, bnEps: b.bnEps })
    : fasternetFeatures(g, b.stateDict, { input, prefix: b.prefix, variant: b.variant, bnEps: b.bnEps });
  const levels = fpnGraph(g, feats.features, w.fpn);
  const rpn = rpnHeadGraph(g, levels, w.rpn);
  // RoI levels leave the graph channel-last: the TypeScript RoIAlign reads each sample's channels contiguously
  // and ORT's Transpose is ~10x faster than transposing in JS.
  levels.slice(0, 4).forEach((v, i) => addOutput(g, addNode(g, 'Transpose', [v], { perm: attr.ints([0, 2, 3, 1]) }, { name: `fpn_${i}.nhwc` })[0], `fpn_${i}`));
  rpn.objectness.forEach((v, i) => addOutput(g, v, `rpn_objectness_${i}`));
  rpn.deltas.forEach((v, i) => addOutput(g, v, `rpn_deltas_${i}`));
  return g;
}

/** The single-file ONNX model (see the module comment) for `arch`. */
export function buildDetectorModel(w: DetectorWeights, cfg: DetectorConfig, arch: string): { bytes: Uint8Array; meta: ModelMetadata } {
  const g = detectorMainGraph(w);
  const meta: ModelMetadata = {
    arch, flavor: cfg.flavor, numClasses: cfg.numClasses, preprocess: { ...cfg.preprocess } as OtherPreprocess, input: 'image',
    outputs: g.outputs.map((o) => o.name), extra: { detector: cfg },
  };
  const props = metadataProps(meta);
  props[BOX_HEAD_KEY] = Buffer.from(boxHeadModel(w.boxHead)).toString('base64');
  props[MASK_HEAD_KEY] = Buffer.from(maskHeadModel(w.maskHead)).toString('base64');
  return { bytes: serializeModel(g, { metadata: props, docString: `${arch} Mask R-CNN (${cfg.flavor} flavor)` }), meta };
}

export interface Detector {
  meta: ModelMetadata;
  cfg: DetectorConfig;
  main: Session;
  boxHead: Session;
  maskHead: Session;
  /** Serializes runs: each session is used by one call at a time. */
  queue: Promise<unknown>;
  /** Threads of the sessions; RoIAlign uses a helper thread from 2. */
  threads: number;
  /**
   * The RoIAlign outputs (box and mask head inputs), reused from run to run: fresh arrays of this size
   * (50 MB for 1000 proposals) cost tens of ms in page faults. Runs are serialized, so one set suffices.
   */
  roiBuffers: { box: Float32Array; mask: Float32Array };
}

export interface LoadOptions {
  threads?: number;
}

export async function loadDetector(model: string | Uint8Array, o: LoadOptions = {}): Promise<Detector> {
  const what = typeof model === 'string' ? model : 'model';
  const { props, graphBytes } = typeof model === 'string' ? await readModelParts(model) : await splitModelBytes(model, what);
  const meta = parseMetadata(props, what);
  if (meta.flavor !== 'torchvision' && meta.flavor !== 'mmdet') {
    throw new UserError(`${what} is a '${meta.flavor}' model, not a detector (convert with --flavor torchvision or mmdet)`);
  }
  if (!props[BOX_HEAD_KEY] || !props[MASK_HEAD_KEY]) throw new UserError(`${what} lacks its embedded box/mask heads`);
  const cfg = checkDetectorConfig(meta.extra?.detector, what);
  // Activations at 800x1333 run to hundreds of MB: without the arena they go back after each run instead of
  // staying at their high-water mark (measured: peak RSS 1.88 -> 1.50 GB for FasterNet-S, same speed).
  const so = { threads: o.threads, memArena: false };
  // One session at a time, main first: ORT's load-time copies would otherwise overlap.
  const main = await createSession(graphBytes, so);
  const boxHead = await createSession(Buffer.from(props[BOX_HEAD_KEY], 'base64'), so);
  const maskHead = await createSession(Buffer.from(props[MASK_HEAD_KEY], 'base64'), so);
  const threads = o.threads ?? 2;
  if (threads >= 2) startRoiAlignHelper();
  return { meta, cfg, main, boxHead, maskHead, queue: Promise.resolve(), threads, roiBuffers: { box: new Float32Array(0), mask: new Float32Array(0) } };
}

export interface RawDetections {
  /** n*4 x1y1x2y2 in original-image pixels. */
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
  /** Binary masks, cropped to their pasted box (postprocess/paste_masks.ts). */
  masks: PastedMask[];
  imageSize: [number, number];
}

/** Everything between stages, for parity tests and debugging. */
export interface Intermediates {
  input: FloatTensor;
  imageSize: [number, number];
  features: Record<string, FloatTensor>;
  proposals: { boxes: Float32Array; scores: Float32Array };
  classLogits: Float32Array;
  boxRegression: Float32Array;
  detections: Detections;
  maskLogits: FloatTensor;
  maskProbs: Float32Array;
}

export interface RunOptions {
  /** Filled with milliseconds per stage. */
  timings?: Record<string, number>;
  /** Filled with the intermediate tensors. */
  intermediates?: Partial<Intermediates>;
  /** Per-call overrides of the box head's score threshold and top-k, and a label filter applied after NMS. */
  boxHead?: { scoreThresh?: number; maxDetections?: number; keepLabel?: (label: number) => boolean };
}

interface Preprocessed {
  input: FloatTensor;
  imageSize: [number, number];
  toOriginal: (b: Float32Array) => Float32Array;
  toNetwork: (b: Float32Array) => Float32Array;
}

function preprocess(img: ImageU8, cfg: DetectorConfig): Preprocessed {
  const p = cfg.preprocess;
  if (p.kind === 'torchvision_rcnn') {
    const r = torchvisionPreprocess(img, p);
    return {
      input: r.input, imageSize: r.imageSize,
      toOriginal: (b) => boxesToOriginalTorchvision(b, r.imageSize, r.originalSize),
      toNetwork: (b) => boxesToOriginalTorchvision(b, r.originalSize, r.imageSize),
    };
  }
  const r = mmdetPreprocess(img, { imgScale: p.imgScale, mean: p.mean, std: p.std, toRgb: p.toRgb, sizeDivisor: p.sizeDivisor });
  return {
    input: r.input, imageSize: [r.meta.imgShape[0], r.meta.imgShape[1]],
    toOriginal: (b) => boxesToOriginal(b, r.meta.scaleFactor),
    toNetwork: (b) => boxesToNetwork(b, r.meta.scaleFactor),
  };
}

function roiLevels(boxes: Float32Array, cfg: DetectorConfig, numLevels: number): Int32Array {
  const m = cfg.roi.levelMapper;
  if (m.kind === 'torchvision') {
    const kMin = Math.log2(cfg.roi.strides[0]);
    return levelMapperTorchvision(boxes, { kMin, kMax: kMin + numLevels - 1, canonicalScale: m.canonicalScale, canonicalLevel: m.canonicalLevel });
  }
  return mapRoiLevelsMmdet(boxes, numLevels, m.finestScale);
}

/** The first `size` values of the detector's reused RoIAlign output buffer `which` (grown as needed). */
function roiBuffer(det: Detector, which: 'box' | 'mask', size: number): Float32Array {
  if (det.roiBuffers[which].length < size) det.roiBuffers[which] = new Float32Array(size);
  return det.roiBuffers[which].subarray(0, size);
}

function now(): number {
  return performance.now();
}

/** Runs one decoded RGB image through the detector (calls on one Detector are serialized). */
export function runDetector(det: Detector, img: ImageU8, o: RunOptions = {}): Promise<RawDetections> {
  const run = det.queue.then(() => runDetectorNow(det, img, o));
  det.queue = run.catch(() => undefined);
  return run;
}

async function runDetectorNow(det: Detector, img: ImageU8, o: RunOptions): Promise<RawDetections> {
  const cfg = det.cfg;
  const t = o.timings ?? {};
  const mid = o.intermediates;
  let t0 = now();
  const pre = preprocess(img, cfg);
  t.preprocess = now() - t0;
  if (mid) { mid.input = pre.input; mid.imageSize = pre.imageSize; }

  t0 = now();
  const out = await runSession(det.main, { image: pre.input });
  t.backbone_fpn_rpn = now() - t0;
  if (mid) mid.features = out;

  t0 = now();
  const [padH, padW] = [pre.input.shape[2], pre.input.shape[3]];
  const rpnSizes: [number, number][] = [];
  for (let l = 0; l < NUM_RPN_LEVELS; l++) {
    const s = out[`rpn_objectness_${l}`].shape;
    rpnSizes.push([s[1], s[2]]);
  }
  const anchors = levelAnchors(cfg.anchors, rpnSizes, [padH, padW]);
  const proposals = generateProposals(
    rpnSizes.map((_, l) => out[`rpn_objectness_${l}`].data), rpnSizes.map((_, l) => out[`rpn_deltas_${l}`].data),
    anchors, pre.imageSize, cfg.rpn,
  );
  t.proposals = now() - t0;
  if (mid) mid.proposals = proposals;

  t0 = now();
  const feats: FeatureMap[] = [];
  const scales: number[] = [];
  for (let l = 0; l < cfg.roi.strides.length; l++) {
    const f = out[`fpn_${l}`];
    const [, h, w, c] = f.shape;
    feats.push({ data: f.data, channels: c, height: h, width: w, layout: 'nhwc' });
    scales.push(cfg.roi.levelMapper.kind === 'torchvision' ? inferScale([h, w], pre.imageSize) : 1 / cfg.roi.strides[l]);
  }
  const C = feats[0].channels;
  // Staged once (copied into the RoIAlign kernel's memory) for the box and the mask RoIAlign.
  const staged = stageFeatures(feats);
  const boxRois = multiScaleRoiAlign(staged, proposals.boxes, roiLevels(proposals.boxes, cfg, feats.length), {
    outputSize: cfg.roi.boxOutput, samplingRatio: cfg.roi.samplingRatio, aligned: cfg.roi.aligned, scales,
    threads: det.threads, out: roiBuffer(det, 'box', proposals.scores.length * C * cfg.roi.boxOutput ** 2),
  });
  t.roi_align = now() - t0;

  t0 = now();
  const R = proposals.scores.length;
  const bs = cfg.roi.boxOutput;
  // No proposals (e.g. a blank image): skip the head rather than feed ORT a zero-row batch.
  const head = R > 0
    ? await runSession(det.boxHead, { rois: { shape: [R, C * bs * bs], data: boxRois } })
    : { class_logits: { shape: [0, 0], data: new Float32Array(0) }, box_regression: { shape: [0, 0], data: new Float32Array(0) } };
  t.box_head = now() - t0;
  if (mid) { mid.classLogits = head.class_logits.data; mid.boxRegression = head.box_regression.data; }

  t0 = now();
  const ov = o.boxHead ?? {};
  const boxCfg = {
    ...cfg.boxHead,
    ...(ov.scoreThresh !== undefined ? { scoreThresh: ov.scoreThresh } : {}),
    ...(ov.maxDetections !== undefined ? { maxDetections: ov.maxDetections } : {}),
  };
  let dets = boxDetections(head.class_logits.data, head.box_regression.data, proposals.boxes, pre.imageSize, boxCfg, pre.toOriginal);
  if (ov.keepLabel) dets = filterDetections(dets, ov.keepLabel);
  t.nms = now() - t0;
  if (mid) mid.detections = dets;

  const n = dets.scores.length;
  const ms = cfg.roi.maskOutput;
  // Mask RoIs live in network coordinates; final boxes and paste boxes in the original image (see config).
  const rescaled = cfg.boxHead.rescaleBeforeNms;
  const maskRoiBoxes = rescaled ? pre.toNetwork(dets.boxes) : dets.boxes;
  let maskProbs: Float32Array = new Float32Array(0);
  let maskSize = 2 * ms;
  if (n > 0) {
    t0 = now();
    const maskRois = multiScaleRoiAlign(staged, maskRoiBoxes, roiLevels(maskRoiBoxes, cfg, feats.length), {
      outputSize: ms, samplingRatio: cfg.roi.samplingRatio, aligned: cfg.roi.aligned, scales,
      threads: det.threads, out: roiBuffer(det, 'mask', n * C * ms * ms),
    });
    t.roi_align += now() - t0;
    t0 = now();
    const m = await runSession(det.maskHead, { rois: { shape: [n, C, ms, ms], data: maskRois } });
    const s2d = m.mask_logits_s2d;
    const logits = s2d
      ? { shape: [s2d.shape[0], 2, 2, s2d.shape[1] / 4, s2d.shape[2], s2d.shape[3]], data: s2d.data }
      : m.mask_logits;
    maskSize = s2d ? 2 * s2d.shape[2] : logits.shape[2];
    maskProbs = selectMaskProbabilities(logits, dets.labels);
    t.mask_head = now() - t0;
    if (mid) { mid.maskLogits = logits; mid.maskProbs = maskProbs; }
  } else {
    t.mask_head = 0;
  }

  t0 = now();
  const boxes = rescaled ? dets.boxes : pre.toOriginal(dets.boxes);
  // mmdet get_seg_masks(rescale=True) pastes at mask RoIs / scale_factor, which may differ from the boxes by
  // float rounding.
  const pasteBoxes = rescaled ? pre.toOriginal(maskRoiBoxes) : boxes;
  const [imH, imW] = [img.height, img.width];
  const masks = n > 0
    ? pasteMasks(maskProbs, maskSize, pasteBoxes, imH, imW, cfg.mask.paste, { threshold: cfg.mask.threshold, compare: cfg.mask.compare })
    : [];
  t.mask_paste = now() - t0;
  return { boxes, scores: dets.scores, labels: dets.labels, masks, imageSize: [imH, imW] };
}

function filterDetections(d: Detections, keep: (label: number) => boolean): Detections {
  const idx: number[] = [];
  for (let i = 0; i < d.labels.length; i++) if (keep(d.labels[i])) idx.push(i);
  const out: Detections = { boxes: new Float32Array(idx.length * 4), scores: new Float32Array(idx.length), labels: new Int32Array(idx.length) };
  idx.forEach((i, k) => {
    out.boxes.set(d.boxes.subarray(i * 4, i * 4 + 4), k * 4);
    out.scores[k] = d.scores[i];
    out.labels[k] = d.labels[i];
  });
  return out;
}

export async function releaseDetector(det: Detector): Promise<void> {
  await Promise.all([det.main.release(), det.boxHead.release(), det.maskHead.release()]);
}
