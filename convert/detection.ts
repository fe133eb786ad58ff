/**
 * torchvision-flavor Mask R-CNN checkpoints -> DetectorWeights + DetectorConfig -> one ONNX file
 * (heads/mask_rcnn.ts). Key layout (torchvision 0.14 names, with the older names of the released
 * maskrcnn_resnet50_fpn_coco file that 0.14's _load_from_state_dict still upgrades):
 *
 *   backbone.body.*                         ResNet50 (conv1, bn1, layer1..4, FrozenBatchNorm2d) or FasterNet
 *                                           official keys in detection mode (patch_embed, stages, norm0/2/4/6)
 *   backbone.fpn.inner_blocks.{i}.0.*       old: backbone.fpn.inner_blocks.{i}.*   (1x1 laterals)
 *   backbone.fpn.layer_blocks.{i}.0.*       old: backbone.fpn.layer_blocks.{i}.*   (3x3 outputs)
 *   rpn.head.conv.0.0.*                     old: rpn.head.conv.*
 *   rpn.head.cls_logits.*, rpn.head.bbox_pred.*
 *   roi_heads.box_head.fc6.*, fc7.*, roi_heads.box_predictor.cls_score.*, bbox_pred.*
 *   roi_heads.mask_head.{i}.0.*             old: roi_heads.mask_head.mask_fcn{i+1}.*
 *   roi_heads.mask_predictor.conv5_mask.*, mask_fcn_logits.*
 * Widths, FPN level count and the class count (cls_score rows, background included) come from shapes;
 * BatchNorm num_batches_tracked buffers are ignored.
 */
import type { FloatTensor, StateDict } from '../core/tensor.ts';
import type { ModelMetadata } from '../runtime/metadata.ts';
import { detectArch } from '../backbones/model.ts';
import { FASTERNET_VARIANTS, fasternetParamSpecs, fasternetVariantName } from '../backbones/fasternet.ts';
import { checkStateDict, widthOf, headSpecs, prefixed, type HeadDims, type HeadNames, type Spec } from './check.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { buildDetectorModel, type DetectorWeights } from '../heads/mask_rcnn.ts';
import { torchvisionDetectorConfig, type DetectorConfig } from '../heads/config.ts';
import type { ConvWeights } from '../core/tensor.ts';
import { UserError } from '../core/errors.ts';
import { halfInitializers } from '../runtime/graph.ts';
import { metadataFromBytes } from '../runtime/metadata.ts';
import { ModelProto } from '../runtime/onnx_proto.ts';

const BODY = 'backbone.body.';
const WHAT = 'torchvision Mask R-CNN checkpoint';

function floatT(sd: StateDict, key: string): FloatTensor {
  return sd.get(key) as FloatTensor; // checkStateDict has checked presence, shape and dtype
}

function convAt(sd: StateDict, p: string, withBias = true): ConvWeights {
  return withBias ? { weight: floatT(sd, `${p}.weight`), bias: floatT(sd, `${p}.bias`) } : { weight: floatT(sd, `${p}.weight`) };
}

/** The first of `prefixes` (new name, then the released file's) whose weight exists, else the new name. */
function nameOf(sd: StateDict, prefixes: string[]): string {
  return prefixes.find((q) => sd.has(`${q}.weight`)) ?? prefixes[0];
}

export interface TorchvisionDetector {
  weights: DetectorWeights;
  config: DetectorConfig;
  arch: string;
}

/** Backbone keys and shapes, and the channels of its 4 FPN inputs. */
function bodySpecs(arch: string): { specs: Spec[]; inChannels: number[] } {
  if (arch === 'resnet50') return { specs: prefixed(BODY, resnet50ParamSpecs(0)), inChannels: [256, 512, 1024, 2048] };
  const e = FASTERNET_VARIANTS[fasternetVariantName(arch)].embedDim;
  return { specs: prefixed(BODY, fasternetParamSpecs(arch, { forkFeat: true })), inChannels: [0, 1, 2, 3].map((i) => e * 2 ** i) };
}

/**
 * Reads a torchvision-layout Mask R-CNN state dict (ResNet50 or FasterNet body), after checking every tensor
 * against the architecture (convert/check.ts): widths come from a few tensors, all others must agree.
 */
export function torchvisionDetectorWeights(sd: StateDict, o: { classNames?: string[] } = {}): TorchvisionDetector {
  const arch = detectArch(sd, BODY);
  const body = bodySpecs(arch);
  let nMask = 0;
  while (sd.has(`roi_heads.mask_head.${nMask}.0.weight`) || sd.has(`roi_heads.mask_head.mask_fcn${nMask + 1}.weight`)) nMask++;
  const names: HeadNames = {
    lateral: [0, 1, 2, 3].map((i) => nameOf(sd, [`backbone.fpn.inner_blocks.${i}.0`, `backbone.fpn.inner_blocks.${i}`])),
    output: [0, 1, 2, 3].map((i) => nameOf(sd, [`backbone.fpn.layer_blocks.${i}.0`, `backbone.fpn.layer_blocks.${i}`])),
    rpnConv: nameOf(sd, ['rpn.head.conv.0.0', 'rpn.head.conv']),
    rpnCls: 'rpn.head.cls_logits',
    rpnReg: 'rpn.head.bbox_pred',
    fc6: 'roi_heads.box_head.fc6',
    fc7: 'roi_heads.box_head.fc7',
    cls: 'roi_heads.box_predictor.cls_score',
    reg: 'roi_heads.box_predictor.bbox_pred',
    maskConvs: Array.from({ length: Math.max(nMask, 1) }, (_, i) => nameOf(sd, [`roi_heads.mask_head.${i}.0`, `roi_heads.mask_head.mask_fcn${i + 1}`])),
    upsample: 'roi_heads.mask_predictor.conv5_mask',
    logits: 'roi_heads.mask_predictor.mask_fcn_logits',
  };
  const fpn = widthOf(sd, names.lateral[0], 256);
  const K = widthOf(sd, names.cls, 91);
  const maskWidth = widthOf(sd, names.maskConvs[0], fpn);
  const dims: HeadDims = {
    inChannels: body.inChannels, fpn, anchors: widthOf(sd, names.rpnCls, 3), hidden: widthOf(sd, names.fc6, 1024),
    clsRows: K, regRows: 4 * K, maskWidth, maskClasses: K,
  };
  checkStateDict(sd, [...body.specs, ...headSpecs(names, dims)], WHAT);

  const lateral = names.lateral.map((p) => convAt(sd, p));
  const output = names.output.map((p) => convAt(sd, p));
  const rpn = { conv: convAt(sd, names.rpnConv), cls: convAt(sd, names.rpnCls), reg: convAt(sd, names.rpnReg) };
  const boxHead = { fc6: convAt(sd, names.fc6), fc7: convAt(sd, names.fc7), cls: convAt(sd, names.cls), reg: convAt(sd, names.reg) };
  const maskHead = { convs: names.maskConvs.map((p) => convAt(sd, p)), upsample: convAt(sd, names.upsample), logits: convAt(sd, names.logits) };
  const backbone: DetectorWeights['backbone'] = arch === 'resnet50'
    ? { kind: 'resnet50', stateDict: sd, prefix: BODY, style: 'pytorch' }
    : { kind: 'fasternet', stateDict: sd, prefix: BODY, variant: arch };
  return {
    arch,
    weights: { backbone, fpn: { lateral, output }, rpn, boxHead, maskHead },
    config: torchvisionDetectorConfig(K, o.classNames),
  };
}

/** `fasternet convert --flavor torchvision`: state dict -> single-file ONNX detector. */
export function convertTorchvisionDetector(sd: StateDict, o: { classNames?: string[] } = {}): { bytes: Uint8Array; meta: ModelMetadata } {
  const d = torchvisionDetectorWeights(sd, o);
  return buildDetectorModel(d.weights, d.config, d.arch);
}

/**
 * Keys and shapes (torchvision 0.14 names) of everything above the body: FPN on `inChannels`, RPN with 3
 * anchors, box head (1024) and mask head (4 convs) for `numClasses` (background included). Used to build
 * synthetic models for benchmarks and to document the layout the converter reads.
 */
export function torchvisionHeadSpecs(inChannels: number[], numClasses = 91, fpnChannels = 256): Array<{ key: string; shape: number[] }> {
  const c = fpnChannels;
  const s: Array<{ key: string; shape: number[] }> = [];
  const convSpec = (key: string, cout: number, cin: number, k: number) => s.push({ key: `${key}.weight`, shape: [cout, cin, k, k] }, { key: `${key}.bias`, shape: [cout] });
  inChannels.forEach((cin, i) => convSpec(`backbone.fpn.inner_blocks.${i}.0`, c, cin, 1));
  inChannels.forEach((_, i) => convSpec(`backbone.fpn.layer_blocks.${i}.0`, c, c, 3));
  convSpec('rpn.head.conv.0.0', c, c, 3);
  convSpec('rpn.head.cls_logits', 3, c, 1);
  convSpec('rpn.head.bbox_pred', 12, c, 1);
  s.push({ key: 'roi_heads.box_head.fc6.weight', shape: [1024, c * 49] }, { key: 'roi_heads.box_head.fc6.bias', shape: [1024] });
  s.push({ key: 'roi_heads.box_head.fc7.weight', shape: [1024, 1024] }, { key: 'roi_heads.box_head.fc7.bias', shape: [1024] });
  s.push({ key: 'roi_heads.box_predictor.cls_score.weight', shape: [numClasses, 1024] }, { key: 'roi_heads.box_predictor.cls_score.bias', shape: [numClasses] });
  s.push({ key: 'roi_heads.box_predictor.bbox_pred.weight', shape: [4 * numClasses, 1024] }, { key: 'roi_heads.box_predictor.bbox_pred.bias', shape: [4 * numClasses] });
  for (let i = 0; i < 4; i++) convSpec(`roi_heads.mask_head.${i}.0`, c, c, 3);
  s.push({ key: 'roi_heads.mask_predictor.conv5_mask.weight', shape: [c, c, 2, 2] }, { key: 'roi_heads.mask_predictor.conv5_mask.bias', shape: [c] });
  convSpec('roi_heads.mask_predictor.mask_fcn_logits', numClasses, c, 1);
  return s;
}

/** User overrides of a converted detector's settings (`fasternet convert --min-size/--max-size/--classes`). */
export interface DetectorOverrides {
  /** torchvision GeneralizedRCNNTransform min_size / max_size; mmdet img_scale (short, long edge). */
  minSize?: number;
  maxSize?: number;
  /**
   * Class names. torchvision flavor: the foreground names (K-1 for a K-row cls_score; '__background__' is put
   * first), or all K names with '__background__' first. mmdet flavor: the K foreground names.
   */
  classes?: string[];
}

const BACKGROUND = '__background__';

/** Applies `o` to `cfg` (a copy comes back); one-line errors name what the checkpoint holds. */
export function applyDetectorOverrides(cfg: DetectorConfig, o: DetectorOverrides): DetectorConfig {
  const out: DetectorConfig = JSON.parse(JSON.stringify(cfg));
  for (const [flag, v] of [['--min-size', o.minSize], ['--max-size', o.maxSize]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 32 && v <= 8192)) throw new UserError(`${flag} must be an integer in [32, 8192], got ${v}`);
  }
  const p = out.preprocess;
  if (o.minSize !== undefined || o.maxSize !== undefined) {
    if (p.kind === 'torchvision_rcnn') {
      p.minSize = o.minSize ?? p.minSize;
      p.maxSize = o.maxSize ?? p.maxSize;
      if (p.maxSize < p.minSize) throw new UserError(`--max-size ${p.maxSize} is below --min-size ${p.minSize}`);
    } else {
      p.imgScale = [o.maxSize ?? p.imgScale[0], o.minSize ?? p.imgScale[1]];
      if (p.imgScale[0] < p.imgScale[1]) throw new UserError(`--max-size ${p.imgScale[0]} is below --min-size ${p.imgScale[1]}`);
    }
  }
  if (o.classes) {
    const names = o.classes;
    const fg = out.numClasses;
    if (names.some((n) => n.length === 0)) throw new UserError('--classes holds an empty name');
    if (out.flavor === 'torchvision') {
      let full: string[];
      if (names.length === fg) {
        if (names.includes(BACKGROUND)) throw new UserError(`--classes: ${fg} names with ${BACKGROUND} among them, but the checkpoint has ${fg} foreground classes + background: give ${fg} foreground names, or ${fg + 1} with ${BACKGROUND} first`);
        full = [BACKGROUND, ...names];
      } else if (names.length === fg + 1) {
        if (names[0] !== BACKGROUND) throw new UserError(`--classes: ${fg + 1} names given, so the first must be ${BACKGROUND} (the checkpoint's label 0), got '${names[0]}'`);
        full = [...names];
      } else {
        throw new UserError(`--classes has ${names.length} names; the checkpoint has ${fg} foreground classes + background: give ${fg} names, or ${fg + 1} with ${BACKGROUND} first`);
      }
      out.classNames = full;
      out.categoryIds = full.map((_, i) => i);
    } else {
      if (names.length !== fg) throw new UserError(`--classes has ${names.length} names; the mmdet checkpoint has ${fg} classes`);
      out.classNames = [...names];
    }
  }
  return out;
}

const HEAD_KEYS = ['fasternet.box_head_onnx', 'fasternet.mask_head_onnx'];

/**
 * `--half`: float16 initializers in the main graph and in the embedded box and mask heads (runtime/graph.ts
 * halfInitializers); the metadata records `fasternet.float16 = true`.
 */
export function halfDetectorModel(bytes: Uint8Array): Uint8Array {
  const props = metadataFromBytes(bytes);
  const main = halfInitializers(bytes);
  const model = ModelProto.decode(main.bytes) as unknown as { metadataProps: Array<{ key: string; value: string }> };
  for (const kv of model.metadataProps) {
    if (HEAD_KEYS.includes(kv.key) && props[kv.key]) {
      kv.value = Buffer.from(halfInitializers(Buffer.from(props[kv.key], 'base64')).bytes).toString('base64');
    }
  }
  model.metadataProps.push({ key: 'fasternet.float16', value: 'true' });
  return ModelProto.encode(model as unknown as Record<string, unknown>).finish();
}
