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
 * TypeScript over channel-last features 198 ms vs ORT RoiAlign (4 nodes) 253 ms (bench/roi_align_tv.ts),
 * so the FPN levels leave the graph channel-last (an ORT Transpose, ~10x faster than transposing in JS).
 */
import type { FloatTensor, QuantizedTensor, StateDict } from '../core/tensor.ts';
import { addInput, addNode, addOutput, attr, createGraph, serializeModel } from '../runtime/graph.ts';
import { createSession, runSessionMixed, type Session } from '../runtime/session.ts';
import {
  metadataProps, parseMetadata, readModelParts, splitModelBytes, uint8Outputs, type ModelMetadata, type OtherPreprocess, type QuantParams,
} from '../runtime/metadata.ts';
import { fasternetFeatures } from '../backbones/fasternet.ts';
import { resnet50Features } from '../backbones/resnet.ts';
import { fpnGraph, type FpnWeights } from '../necks/fpn.ts';
import { NUM_RPN_LEVELS, rpnHeadGraph, rpnProposals, type RpnWeights } from './rpn.ts';
import {
  boxHeadModel, boxStage, detectionBoxSpaces, maskHeadModel, maskStage, roiFeatures,
  type BoxHeadOverrides, type BoxHeadWeights, type Detections, type MaskHeadWeights, type TimeStage,
} from './roi_heads.ts';
import { startRoiAlignHelper } from './roi_align.ts';
import { checkDetectorConfig, type DetectorConfig } from './config.ts';
import { boxesToOriginalTorchvision, torchvisionPreprocess } from './transform_torchvision.ts';
import { boxesToNetwork, boxesToOriginal, mmdetPreprocess } from './transform_mmdet.ts';
import { pasteDetectionMasks, type PastedMask } from '../postprocess/paste_masks.ts';
import type { ImageU8 } from '../core/tensor.ts';
import { UserError } from '../core/errors.ts';

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
  /** The main graph's uint8 outputs (an int8 model's FPN levels) with their scale and zero point. */
  outputQuant: Record<string, QuantParams>;
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
  if (cfg.anchors.strides.length !== NUM_RPN_LEVELS) throw new UserError(`${what}: detector config: anchors has ${cfg.anchors.strides.length} levels, the RPN ${NUM_RPN_LEVELS}`);
  const sessions: Session[] = [];
  try {
    for (const bytes of [graphBytes, Buffer.from(props[BOX_HEAD_KEY], 'base64'), Buffer.from(props[MASK_HEAD_KEY], 'base64')]) {
      sessions.push(await createSession(bytes, so));
    }
    const [main, boxHead, maskHead] = sessions;
    checkGraphs(main, boxHead, maskHead, cfg, what);
    const threads = o.threads ?? 2;
    const outputQuant = uint8Outputs(props, what);
    const unknown = Object.keys(outputQuant).filter((k) => !main.outputNames.includes(k));
    if (unknown.length) throw new UserError(`${what}: metadata names uint8 outputs the main graph lacks: ${unknown.join(', ')}`);
    return assembleDetector(meta, cfg, [main, boxHead, maskHead], threads, outputQuant);
  } catch (err) {
    await Promise.all(sessions.map((s) => s.release()));
    throw err;
  }
}

/**
 * A Detector from its three sessions (main, box head, mask head), which loadDetector makes from a file and
 * calibration wraps to record what they see. With 2 threads or more RoIAlign gets its helper thread.
 */
export function assembleDetector(
  meta: ModelMetadata, cfg: DetectorConfig, sessions: readonly Session[], threads: number, outputQuant: Record<string, QuantParams> = {},
): Detector {
  if (threads >= 2) startRoiAlignHelper();
  const [main, boxHead, maskHead] = sessions;
  return { meta, cfg, main, boxHead, maskHead, queue: Promise.resolve(), threads, outputQuant, roiBuffers: { box: new Float32Array(0), mask: new Float32Array(0) } };
}

/** Numeric dimension `i` of a graph value, or undefined when symbolic or unknown. */
function dimAt(s: Session, output: string, i: number): number | undefined {
  const md = (s.outputMetadata as ReadonlyArray<{ name: string; isTensor: boolean; shape?: ReadonlyArray<number | string> }> | undefined)
    ?.find((m) => m.name === output);
  const d = md?.isTensor ? md.shape?.[i] : undefined;
  return typeof d === 'number' && d > 0 ? d : undefined;
}

/**
 * The three graphs have the inputs and outputs the pipeline feeds and reads, and the heads' class widths fit
 * the config: a model whose metadata was edited (heads swapped, classes changed) is refused at load in one
 * line instead of failing inside ONNX Runtime on the first image.
 */
function checkGraphs(main: Session, boxHead: Session, maskHead: Session, cfg: DetectorConfig, what: string): void {
  const need = (s: Session, part: string, inputs: string[], outputs: string[][]): void => {
    const missingIn = inputs.filter((n) => !s.inputNames.includes(n));
    const missingOut = outputs.filter((alts) => !alts.some((n) => s.outputNames.includes(n))).map((alts) => alts.join(' or '));
    if (missingIn.length || missingOut.length) {
      throw new UserError(
        `${what}: the ${part} graph lacks ${[...missingIn.map((n) => `input ${n}`), ...missingOut.map((n) => `output ${n}`)].join(', ')} ` +
          `(it has inputs ${s.inputNames.join(', ') || 'none'}; outputs ${s.outputNames.join(', ') || 'none'})`,
      );
    }
  };
  const levels = (prefix: string, n: number) => Array.from({ length: n }, (_, l) => [`${prefix}_${l}`]);
  need(main, 'main', ['image'], [...levels('rpn_objectness', NUM_RPN_LEVELS), ...levels('rpn_deltas', NUM_RPN_LEVELS), ...levels('fpn', cfg.roi.strides.length)]);
  need(boxHead, 'box head', ['rois'], [['class_logits'], ['box_regression']]);
  need(maskHead, 'mask head', ['rois'], [['mask_logits', 'mask_logits_s2d']]);
  const scores = cfg.numClasses + 1;
  const boxes = 4 * (cfg.flavor === 'torchvision' ? scores : cfg.numClasses);
  const check = (got: number | undefined, want: number, msg: string): void => {
    if (got !== undefined && got !== want) throw new UserError(`${what}: ${msg} ${got}, the config's ${cfg.numClasses} classes need ${want}`);
  };
  check(dimAt(boxHead, 'class_logits', 1), scores, 'the box head scores');
  check(dimAt(boxHead, 'box_regression', 1), boxes, 'the box head regresses');
  const maskClasses = cfg.flavor === 'torchvision' ? scores : cfg.numClasses;
  check(dimAt(maskHead, 'mask_logits', 1), maskClasses, 'the mask head predicts');
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
  /** Main graph outputs; an int8 model's FPN levels are uint8 (QuantizedTensor). */
  features: Record<string, FloatTensor | QuantizedTensor>;
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
  boxHead?: BoxHeadOverrides;
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

/** The stage names of `RunOptions.timings`, in pipeline order. */
const STAGES = ['preprocess', 'backbone_fpn_rpn', 'proposals', 'roi_align', 'box_head', 'nms', 'mask_head', 'mask_paste'];

/** Times stages into `t` (each stage starts at 0 ms for the run; a stage run twice, as RoIAlign, adds up). */
function stageTimer(t: Record<string, number>): TimeStage {
  for (const k of STAGES) t[k] = 0;
  return <T>(stage: string, run: () => T): T => {
    const t0 = performance.now();
    const r = run();
    if (!(r instanceof Promise)) {
      t[stage] += performance.now() - t0;
      return r;
    }
    return r.then((v: unknown) => {
      t[stage] += performance.now() - t0;
      return v;
    }) as T;
  };
}

/** Runs one decoded RGB image through the detector (calls on one Detector are serialized). */
export function runDetector(det: Detector, img: ImageU8, o: RunOptions = {}): Promise<RawDetections> {
  const run = det.queue.then(() => runDetectorNow(det, img, o));
  det.queue = run.catch(() => undefined);
  return run;
}

/** GeneralizedRCNN.forward: transform, backbone + FPN + RPN head (one ONNX run), proposals, RoI heads, paste. */
async function runDetectorNow(det: Detector, img: ImageU8, o: RunOptions): Promise<RawDetections> {
  const { cfg } = det;
  const mid: Partial<Intermediates> = o.intermediates ?? {};
  const time = stageTimer(o.timings ?? {});
  const pre = time('preprocess', () => preprocess(img, cfg));
  Object.assign(mid, { input: pre.input, imageSize: pre.imageSize });
  const { floats: out, quantized } = await time('backbone_fpn_rpn', () => runSessionMixed(det.main, { image: pre.input }, det.outputQuant));
  mid.features = { ...out, ...quantized };
  const padded: [number, number] = [pre.input.shape[2], pre.input.shape[3]];
  const proposals = (mid.proposals = time('proposals', () => rpnProposals(out, padded, pre.imageSize, cfg.anchors, cfg.rpn)));
  // Staged once (copied into the RoIAlign kernel's memory) for the box and the mask RoIAlign.
  const feats = time('roi_align', () => roiFeatures(mid.features!, pre.imageSize, cfg.roi, det));
  const box = await boxStage(det.boxHead, feats, proposals.boxes, pre.imageSize, cfg, pre.toOriginal, o.boxHead ?? {}, time);
  const dets = box.detections;
  Object.assign(mid, { classLogits: box.classLogits, boxRegression: box.boxRegression, detections: dets });
  const spaces = detectionBoxSpaces(dets.boxes, cfg.boxHead, pre.toNetwork, pre.toOriginal);
  const mask = await maskStage(det.maskHead, feats, spaces.maskRois, dets.labels, cfg.roi, time);
  if (mask.logits) Object.assign(mid, { maskLogits: mask.logits, maskProbs: mask.probs });
  const masks = time('mask_paste', () => pasteDetectionMasks(mask.probs, mask.size, spaces.paste, img.height, img.width, cfg.mask));
  return { boxes: spaces.boxes, scores: dets.scores, labels: dets.labels, masks, imageSize: [img.height, img.width] };
}

export async function releaseDetector(det: Detector): Promise<void> {
  await Promise.all([det.main.release(), det.boxHead.release(), det.maskHead.release()]);
}
