/**
 * mmdetection 2.x Mask R-CNN checkpoints ({'meta': {'CLASSES', 'config', ...}, 'state_dict'}):
 * key layout, architecture read from tensor shapes, class names and COCO category ids.
 *
 * Key names (mmdet 2.25 module names; checked against mask_rcnn_r50_fpn_1x_coco,
 * mask_rcnn_r50_caffe_fpn_1x_coco and FasterNet's mask_rcnn_fasternet_{s,m,l}_fpn_1x_coco):
 *   backbone.*                                   FasterNet (models/fasternet.py, fork_feat=True:
 *                                                patch_embed.{proj,norm}, stages.{0,2,4,6}.blocks.j.
 *                                                {spatial_mixing.partial_conv3, mlp.0, mlp.1, mlp.3},
 *                                                stages.{1,3,5}.{reduction,norm}, norm{0,2,4,6})
 *                                                or mmdet ResNet (conv1, bn1, layer{1-4}.j.{conv,bn}{1-3},
 *                                                layer{1-4}.0.downsample.{0,1})
 *   neck.lateral_convs.{0-3}.conv.{weight,bias}  FPN 1x1 laterals (ConvModule -> .conv)
 *   neck.fpn_convs.{0-3}.conv.{weight,bias}      FPN 3x3 outputs
 *   rpn_head.rpn_conv / rpn_cls / rpn_reg        RPNHead (3 anchors: cls [3,256,1,1], reg [12,256,1,1])
 *   roi_head.bbox_head.shared_fcs.{0,1}          Shared2FCBBoxHead fc6 [1024, 12544], fc7 [1024, 1024]
 *   roi_head.bbox_head.fc_cls / fc_reg           [C+1, 1024] (background LAST) / [4C, 1024]
 *   roi_head.mask_head.convs.{0-3}.conv          FCNMaskHead 3x3 convs
 *   roi_head.mask_head.upsample                  ConvTranspose2d 2x2 stride 2 [256, 256, 2, 2]
 *   roi_head.mask_head.conv_logits               [C, 256, 1, 1]
 * BatchNorm `num_batches_tracked` buffers are dropped.
 */
import type { FloatTensor, StateDict, Tensor } from '../core/tensor.ts';
import type { ModelMetadata } from '../runtime/metadata.ts';
import type { ConvWeights } from '../core/tensor.ts';
import { buildDetectorModel, type DetectorWeights } from '../heads/mask_rcnn.ts';
import { mmdetDetectorConfig, type DetectorConfig } from '../heads/config.ts';
import { fasternetParamSpecs } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { UserError } from '../core/errors.ts';
import { checkStateDict, widthOf, headSpecs, prefixed, type HeadNames, type Spec } from './check.ts';

export const COCO_CLASSES: readonly string[] = [
  'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
  'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
  'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
  'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
  'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
  'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
  'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
  'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
  'teddy bear', 'hair drier', 'toothbrush',
];

/** COCO category id of each of the 80 contiguous labels (instances_val2017.json ids, 1..90 with gaps). */
export const COCO_CATEGORY_IDS: readonly number[] = [
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
  35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
  64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
];

/** FasterNet variants by (embed_dim, depths) (FasterNet repo cfg/*.yaml, detection/backbones/fasternet.py). */
const FASTERNET_VARIANTS: Record<string, { embedDim: number; depths: number[] }> = {
  t0: { embedDim: 40, depths: [1, 2, 8, 2] },
  t1: { embedDim: 64, depths: [1, 2, 8, 2] },
  t2: { embedDim: 96, depths: [1, 2, 8, 2] },
  s: { embedDim: 128, depths: [1, 2, 13, 2] },
  m: { embedDim: 144, depths: [3, 4, 18, 3] },
  l: { embedDim: 192, depths: [3, 4, 18, 3] },
};

export type MmdetBackbone =
  | {
      type: 'fasternet';
      /** 's' | 'm' | 'l' | 't0' | 't1' | 't2', or 'custom' for other widths/depths. */
      variant: string;
      embedDim: number;
      depths: number[];
      /** Partial conv takes dim / nDiv channels. */
      nDiv: number;
      mlpRatio: number;
      /** The detection backbones (fasternet_s/m/l) are all built with act_layer='RELU'. */
      act: 'relu';
      outChannels: number[];
    }
  | { type: 'resnet50'; style: 'pytorch' | 'caffe'; outChannels: number[] };

export interface MmdetTensor {
  weight: Tensor;
  bias?: Tensor;
}

export interface MmdetMaskRcnn {
  backbone: MmdetBackbone;
  /** Backbone parameters with the `backbone.` prefix removed (BN buffers kept, num_batches_tracked dropped). */
  backboneState: StateDict;
  fpn: { lateral: MmdetTensor[]; output: MmdetTensor[]; outChannels: number };
  rpn: { conv: MmdetTensor; cls: MmdetTensor; reg: MmdetTensor; numAnchors: number };
  bboxHead: { fc6: MmdetTensor; fc7: MmdetTensor; cls: MmdetTensor; reg: MmdetTensor };
  maskHead: { convs: MmdetTensor[]; upsample: MmdetTensor; logits: MmdetTensor };
  numClasses: number;
  classNames: string[];
  /** COCO id per label when the model is an 80-class COCO model, otherwise label + 1. */
  categoryIds: number[];
  /** Image normalisation the official configs pair with this backbone. */
  normStyle: 'pytorch' | 'caffe';
}

export interface MmdetMeta {
  CLASSES?: readonly string[];
  /** mmdet 2.x saves the full config text here; used to tell caffe from pytorch ResNet style. */
  config?: string;
}

export interface ConvertMmdetOptions {
  /** ResNet style; overrides meta.config and the file name (shapes cannot tell it). */
  resnetStyle?: 'pytorch' | 'caffe';
  /** The checkpoint's file name: mmdetection's model-zoo names carry the style (`*_r50_caffe_fpn_*`). */
  fileName?: string;
}

const WHAT = 'mmdet Mask R-CNN checkpoint';

function need(sd: StateDict, key: string): Tensor {
  const t = sd.get(key);
  if (!t) throw new UserError(`${WHAT} lacks '${key}'`);
  return t;
}

function pair(sd: StateDict, prefix: string, withBias = true): MmdetTensor {
  const weight = need(sd, `${prefix}.weight`);
  return withBias ? { weight, bias: need(sd, `${prefix}.bias`) } : { weight };
}

/** Strips a `state_dict` wrapper's `module.` prefix (DataParallel saves) if every key has it. */
function unwrapModule(sd: StateDict): StateDict {
  const keys = [...sd.keys()];
  if (keys.length === 0 || !keys.every((k) => k.startsWith('module.'))) return sd;
  return new Map([...sd].map(([k, v]) => [k.slice('module.'.length), v]));
}

function detectFasterNet(bb: StateDict): MmdetBackbone {
  const embedDim = need(bb, 'patch_embed.proj.weight').shape[0];
  const depths = [0, 2, 4, 6].map((s) => {
    let n = 0;
    while (bb.has(`stages.${s}.blocks.${n}.mlp.0.weight`)) n++;
    if (n === 0) throw new UserError(`${WHAT}: FasterNet backbone has no blocks in stages.${s}`);
    return n;
  });
  const pconv = need(bb, 'stages.0.blocks.0.spatial_mixing.partial_conv3.weight').shape[0];
  const hidden = need(bb, 'stages.0.blocks.0.mlp.0.weight').shape[0];
  const variant =
    Object.entries(FASTERNET_VARIANTS).find(
      ([, v]) => v.embedDim === embedDim && v.depths.every((d, i) => d === depths[i]),
    )?.[0] ?? 'custom';
  for (const i of [0, 2, 4, 6]) need(bb, `norm${i}.weight`);
  return {
    type: 'fasternet',
    variant,
    embedDim,
    depths,
    nDiv: embedDim / pconv,
    mlpRatio: hidden / embedDim,
    act: 'relu',
    outChannels: [0, 1, 2, 3].map((i) => embedDim * 2 ** i),
  };
}

function resnetStyleFromConfig(config: string | undefined): 'pytorch' | 'caffe' | undefined {
  if (!config) return undefined;
  const m = /backbone\s*=\s*dict\([\s\S]*?style\s*=\s*['"](caffe|pytorch)['"]/.exec(config);
  return m ? (m[1] as 'pytorch' | 'caffe') : undefined;
}

/**
 * The style a model-zoo file name tells: mmdetection names checkpoints after their configs, and caffe-style
 * ResNet configs say so (`mask_rcnn_r50_caffe_fpn_1x_coco_...pth`); a zoo name without it
 * (`mask_rcnn_r50_fpn_1x_coco_...pth`) is pytorch style. Other names tell nothing.
 */
export function resnetStyleFromFileName(fileName: string | undefined): 'pytorch' | 'caffe' | undefined {
  const base = fileName?.split(/[\\/]/).pop()?.toLowerCase();
  if (!base) return undefined;
  if (/(^|[_-])caffe([_-]|\.|$)/.test(base)) return 'caffe';
  return /^mask_rcnn_r50_(fpn|pytorch)_/.test(base) ? 'pytorch' : undefined;
}

/** Option, else meta.config, else the file name; never a guess. */
function resnetStyle(meta: MmdetMeta, options: ConvertMmdetOptions): 'pytorch' | 'caffe' {
  const style = options.resnetStyle ?? resnetStyleFromConfig(meta.config) ?? resnetStyleFromFileName(options.fileName);
  if (!style) {
    throw new UserError(
      `${WHAT}: a ResNet50 backbone's style (pytorch or caffe) is neither in the checkpoint's meta config nor in its file name; pass --resnet-style pytorch or --resnet-style caffe`,
    );
  }
  return style;
}

/** Backbone keys and shapes (with `backbone.`) of the detected backbone. */
function backboneSpecs(b: MmdetBackbone): Spec[] {
  if (b.type === 'resnet50') return prefixed('backbone.', resnet50ParamSpecs(0));
  return prefixed('backbone.', fasternetParamSpecs({ embedDim: b.embedDim, depths: b.depths, act: 'relu', mlpRatio: b.mlpRatio, nDiv: b.nDiv, featureDim: 0 }, { forkFeat: true }));
}

const HEAD_NAMES: HeadNames = {
  lateral: [0, 1, 2, 3].map((i) => `neck.lateral_convs.${i}.conv`),
  output: [0, 1, 2, 3].map((i) => `neck.fpn_convs.${i}.conv`),
  rpnConv: 'rpn_head.rpn_conv',
  rpnCls: 'rpn_head.rpn_cls',
  rpnReg: 'rpn_head.rpn_reg',
  fc6: 'roi_head.bbox_head.shared_fcs.0',
  fc7: 'roi_head.bbox_head.shared_fcs.1',
  cls: 'roi_head.bbox_head.fc_cls',
  reg: 'roi_head.bbox_head.fc_reg',
  maskConvs: [0, 1, 2, 3].map((i) => `roi_head.mask_head.convs.${i}.conv`),
  upsample: 'roi_head.mask_head.upsample',
  logits: 'roi_head.mask_head.conv_logits',
};

/** Every tensor against the architecture: keys (extra ones refused, as in the other flavors), shapes, dtypes, values. */
function checkMmdetStateDict(sd: StateDict, backbone: MmdetBackbone): void {
  const fpn = widthOf(sd, HEAD_NAMES.lateral[0], 256);
  const clsRows = widthOf(sd, HEAD_NAMES.cls, 81);
  const maskWidth = widthOf(sd, HEAD_NAMES.maskConvs[0], fpn);
  const heads = headSpecs(HEAD_NAMES, {
    inChannels: backbone.outChannels, fpn, anchors: widthOf(sd, HEAD_NAMES.rpnCls, 3), hidden: widthOf(sd, HEAD_NAMES.fc6, 1024),
    clsRows, regRows: 4 * (clsRows - 1), maskWidth, maskClasses: clsRows - 1,
  });
  checkStateDict(sd, [...backboneSpecs(backbone), ...heads], WHAT);
}

function detectResNet50(bb: StateDict, style: 'pytorch' | 'caffe'): MmdetBackbone {
  const blocks = [1, 2, 3, 4].map((l) => {
    let n = 0;
    while (bb.has(`layer${l}.${n}.conv1.weight`)) n++;
    return n;
  });
  if (blocks.join() !== '3,4,6,3') throw new UserError(`${WHAT}: a ResNet with blocks [${blocks}] is not ResNet50 (the only ResNet supported)`);
  return { type: 'resnet50', style, outChannels: [256, 512, 1024, 2048] };
}

/** Reads an mmdet Mask R-CNN state_dict (+ meta) into the pieces the pipeline builds from. */
export function convertMmdetMaskRcnn(
  stateDict: StateDict,
  meta: MmdetMeta = {},
  options: ConvertMmdetOptions = {},
): MmdetMaskRcnn {
  const sd = unwrapModule(stateDict);
  const backboneState: StateDict = new Map();
  for (const [k, v] of sd) {
    if (k.startsWith('backbone.') && !k.endsWith('.num_batches_tracked')) backboneState.set(k.slice(9), v);
  }
  if ([...sd.keys()].some((k) => k.startsWith('backbone.body.'))) {
    throw new UserError(`${WHAT}: keys backbone.body.* are torchvision's layout; use --flavor torchvision`);
  }
  if (backboneState.size === 0) {
    const some = [...sd.keys()].slice(0, 3).join(', ');
    throw new UserError(`not an mmdet detector checkpoint: no 'backbone.*' keys (keys look like: ${some || 'none'})`);
  }
  let backbone: MmdetBackbone;
  if (backboneState.has('patch_embed.proj.weight')) backbone = detectFasterNet(backboneState);
  else if (backboneState.has('layer1.0.conv1.weight')) backbone = detectResNet50(backboneState, resnetStyle(meta, options));
  else throw new UserError(`${WHAT}: unknown backbone, neither FasterNet (backbone.patch_embed.*) nor ResNet50 (backbone.layer1.*) keys`);
  checkMmdetStateDict(sd, backbone);

  const levels = backbone.outChannels.length;
  const lateral = [...Array(levels).keys()].map((i) => pair(sd, `neck.lateral_convs.${i}.conv`));
  const output = [...Array(levels).keys()].map((i) => pair(sd, `neck.fpn_convs.${i}.conv`));
  lateral.forEach((l, i) => {
    if (l.weight.shape[1] !== backbone.outChannels[i])
      throw new UserError(
        `${WHAT}: neck.lateral_convs.${i} takes ${l.weight.shape[1]} channels, backbone gives ${backbone.outChannels[i]}`,
      );
  });
  const rpn = {
    conv: pair(sd, 'rpn_head.rpn_conv'),
    cls: pair(sd, 'rpn_head.rpn_cls'),
    reg: pair(sd, 'rpn_head.rpn_reg'),
    numAnchors: 0,
  };
  rpn.numAnchors = rpn.cls.weight.shape[0];
  if (rpn.reg.weight.shape[0] !== 4 * rpn.numAnchors)
    throw new UserError(`${WHAT}: rpn_reg has ${rpn.reg.weight.shape[0]} outputs for ${rpn.numAnchors} sigmoid anchors`);
  const bboxHead = {
    fc6: pair(sd, 'roi_head.bbox_head.shared_fcs.0'),
    fc7: pair(sd, 'roi_head.bbox_head.shared_fcs.1'),
    cls: pair(sd, 'roi_head.bbox_head.fc_cls'),
    reg: pair(sd, 'roi_head.bbox_head.fc_reg'),
  };
  const numClasses = bboxHead.cls.weight.shape[0] - 1;
  if (bboxHead.reg.weight.shape[0] !== 4 * numClasses)
    throw new UserError(`${WHAT}: fc_reg has ${bboxHead.reg.weight.shape[0]} outputs; class-specific boxes need ${4 * numClasses}`);
  const maskHead = {
    convs: [0, 1, 2, 3].map((i) => pair(sd, `roi_head.mask_head.convs.${i}.conv`)),
    upsample: pair(sd, 'roi_head.mask_head.upsample'),
    logits: pair(sd, 'roi_head.mask_head.conv_logits'),
  };
  if (maskHead.logits.weight.shape[0] !== numClasses)
    throw new UserError(`${WHAT}: conv_logits has ${maskHead.logits.weight.shape[0]} classes, fc_cls ${numClasses}`);

  const names = meta.CLASSES ? [...meta.CLASSES] : undefined;
  if (names && names.length !== numClasses)
    throw new UserError(`${WHAT}: meta.CLASSES has ${names.length} names, the heads have ${numClasses} classes`);
  const isCoco = numClasses === 80 && (!names || names.every((n, i) => n === COCO_CLASSES[i]));
  const classNames = names ?? (isCoco ? [...COCO_CLASSES] : [...Array(numClasses).keys()].map((i) => `class_${i + 1}`));
  const categoryIds = isCoco ? [...COCO_CATEGORY_IDS] : classNames.map((_, i) => i + 1);
  const normStyle = backbone.type === 'resnet50' && backbone.style === 'caffe' ? 'caffe' : 'pytorch';
  return {
    backbone,
    backboneState,
    fpn: { lateral, output, outChannels: lateral[0].weight.shape[0] },
    rpn,
    bboxHead,
    maskHead,
    numClasses,
    classNames,
    categoryIds,
    normStyle,
  };
}

function floatOf(t: Tensor, what: string): FloatTensor {
  if (!(t.data instanceof Float32Array)) throw new UserError(`${WHAT}: tensor ${what} is not floating point`);
  return t as FloatTensor;
}

function conv(p: MmdetTensor, what: string): ConvWeights {
  return { weight: floatOf(p.weight, `${what}.weight`), bias: p.bias ? floatOf(p.bias, `${what}.bias`) : undefined };
}

export interface MmdetDetector {
  weights: DetectorWeights;
  config: DetectorConfig;
  arch: string;
  parts: MmdetMaskRcnn;
}

/** An mmdet Mask R-CNN state dict (+ meta) as the pipeline's DetectorWeights and mmdet DetectorConfig. */
export function mmdetDetectorWeights(stateDict: StateDict, meta: MmdetMeta = {}, options: ConvertMmdetOptions = {}): MmdetDetector {
  const parts = convertMmdetMaskRcnn(stateDict, meta, options);
  const sd = unwrapModule(stateDict);
  const b = parts.backbone;
  const backbone: DetectorWeights['backbone'] = b.type === 'resnet50'
    ? { kind: 'resnet50', stateDict: sd, prefix: 'backbone.', style: b.style }
    : { kind: 'fasternet', stateDict: sd, prefix: 'backbone.', variant: b.variant === 'custom' ? undefined : b.variant };
  const weights: DetectorWeights = {
    backbone,
    fpn: {
      lateral: parts.fpn.lateral.map((c, i) => conv(c, `neck.lateral_convs.${i}.conv`)),
      output: parts.fpn.output.map((c, i) => conv(c, `neck.fpn_convs.${i}.conv`)),
    },
    rpn: { conv: conv(parts.rpn.conv, 'rpn_conv'), cls: conv(parts.rpn.cls, 'rpn_cls'), reg: conv(parts.rpn.reg, 'rpn_reg') },
    boxHead: {
      fc6: conv(parts.bboxHead.fc6, 'shared_fcs.0'),
      fc7: conv(parts.bboxHead.fc7, 'shared_fcs.1'),
      cls: conv(parts.bboxHead.cls, 'fc_cls'),
      reg: conv(parts.bboxHead.reg, 'fc_reg'),
    },
    maskHead: {
      convs: parts.maskHead.convs.map((c, i) => conv(c, `mask_head.convs.${i}.conv`)),
      upsample: conv(parts.maskHead.upsample, 'mask_head.upsample'),
      logits: conv(parts.maskHead.logits, 'mask_head.conv_logits'),
    },
  };
  const config = mmdetDetectorConfig(parts.numClasses, parts.classNames, parts.categoryIds, parts.normStyle);
  const arch = b.type === 'resnet50' ? `resnet50_${b.style}` : `fasternet_${b.variant}`;
  return { weights, config, arch, parts };
}

/** `fasternet convert --flavor mmdet`: state dict (+ meta) -> single-file ONNX detector. */
export function convertMmdetDetector(
  stateDict: StateDict, meta: MmdetMeta = {}, options: ConvertMmdetOptions = {},
): { bytes: Uint8Array; meta: ModelMetadata } {
  const d = mmdetDetectorWeights(stateDict, meta, options);
  return buildDetectorModel(d.weights, d.config, d.arch);
}

/**
 * The `meta` of a loaded checkpoint (checkpoint/load.ts `Checkpoint.meta`, plain data) as MmdetMeta:
 * CLASSES must be a list of strings and config a string when present; anything else is ignored.
 */
export function mmdetMetaFrom(meta: unknown): MmdetMeta {
  if (!meta || typeof meta !== 'object') return {};
  const m = meta as Record<string, unknown>;
  const out: MmdetMeta = {};
  if (Array.isArray(m.CLASSES)) {
    if (!m.CLASSES.every((c) => typeof c === 'string')) throw new UserError('mmdet checkpoint meta.CLASSES holds non-string entries');
    out.CLASSES = m.CLASSES as string[];
  }
  if (typeof m.config === 'string') out.config = m.config;
  return out;
}
