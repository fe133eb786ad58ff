/**
 * Everything in which the two Mask R-CNN flavors differ, as one typed, JSON-serializable object. It is written
 * into the converted model's metadata (`fasternet.extra.detector`) and every stage reads its knobs from it, so
 * the pipeline (heads/mask_rcnn.ts) has no flavor branches of its own.
 *
 * torchvision 0.14 (`maskrcnn_resnet50_fpn`, models/detection/*.py) vs mmdetection 2.25 + mmcv 1.x
 * (configs/_base_/models/mask_rcnn_r50_fpn.py and the code it runs):
 *
 * | stage              | torchvision                                          | mmdet                                             |
 * |--------------------|------------------------------------------------------|---------------------------------------------------|
 * | decode             | PIL/RGB                                              | cv2.imdecode BGR (flip channels when to_rgb)      |
 * | resize             | normalize first, then F.interpolate bilinear of the  | mmcv.imrescale: cv2 INTER_LINEAR on uint8 to fit  |
 * |                    | float image, scale=min(800/short,1333/long) (float32)| 1333x800, size int(x*f+0.5)                       |
 * |                    | size floor(x*scale), recompute_scale_factor=True     |                                                   |
 * | normalize          | (x/255 - mean)/std, ImageNet 0-1 stats               | (x - mean)*(1/std), 0-255 stats; caffe: BGR, std 1|
 * | pad                | to 32, zeros, after normalization                    | same                                              |
 * | FPN                | inner/layer blocks, nearest to lateral size, P6 by   | lateral/fpn convs, same arithmetic, P6 by         |
 * |                    | max_pool2d(k=1, s=2)                                 | max_pool2d(k=1, s=2) (add_extra_convs=False)      |
 * | anchors            | base anchors rounded to integers, stride =           | float base anchors (base size = stride,           |
 * |                    | padded size // feature size                          | scale 8), center offset 0                         |
 * | RPN top-k          | per level top 1000 of logits, sigmoid, clip, remove  | per level top 1000 of sigmoid scores, decode with |
 * |                    | small (1e-3), NMS 0.7 per level, keep 1000           | clip (max_shape), w,h > 0, batched NMS 0.7, 1000  |
 * | box coder          | weights (1,1,1,1) / (10,10,5,5), clamp log(1000/16)  | stds (1,1,1,1) / (.1,.1,.2,.2), same clamp         |
 * | RoI level          | LevelMapper: floor(4 + log2(sqrt(area)/224) + 1e-6)  | floor(log2(sqrt(area)/56 + 1e-6)), 0..3           |
 * | RoIAlign           | aligned=False, sampling_ratio=2                      | aligned=True, sampling_ratio=0 (adaptive)         |
 * | box head classes   | background = class 0 (91 COCO ids)                   | background = last column (80 contiguous labels)   |
 * | detections         | score > 0.05, remove boxes < 1e-2, batched NMS 0.5,  | score > 0.05, batched NMS 0.5 (mmcv), top 100     |
 * |                    | top 100                                              |                                                   |
 * | boxes to original  | multiply by orig/resized (float32 per axis), after   | divide by scale_factor BEFORE NMS; mask RoIs =    |
 * |                    | NMS; mask RoIs = the network-space boxes             | those boxes * scale_factor                        |
 * | mask paste         | paste_masks_in_image (pad 1, int box, interpolate),  | _do_paste_mask (grid_sample), >= 0.5              |
 * |                    | > 0.5                                                |                                                   |
 * | category id        | the raw label (already a COCO id for 91-class COCO)  | COCO id table for 80-class COCO, else label + 1   |
 */

import { z } from 'zod';
import { UserError } from '../core/errors.ts';
import { parseWith } from '../core/validate.ts';

export type Flavor = 'torchvision' | 'mmdet';

/** GeneralizedRCNNTransform (heads/transform_torchvision.ts). */
export interface TorchvisionPreprocess {
  kind: 'torchvision_rcnn';
  minSize: number;
  maxSize: number;
  /** 0-1 scale (the image is divided by 255 first). */
  mean: [number, number, number];
  std: [number, number, number];
  sizeDivisible: number;
}

/** mmdet test pipeline (heads/transform_mmdet.ts). */
export interface MmdetPreprocess {
  kind: 'mmdet';
  /** (long edge, short edge). */
  imgScale: [number, number];
  /** 0-255 scale, in the order the network sees the channels. */
  mean: [number, number, number];
  std: [number, number, number];
  toRgb: boolean;
  sizeDivisor: number;
}

export type DetectorPreprocess = TorchvisionPreprocess | MmdetPreprocess;

export interface AnchorConfig {
  kind: Flavor;
  /** torchvision: one anchor size per level; mmdet: base sizes are the strides, times `scales`. */
  sizes: number[];
  strides: number[];
  scales: number[];
  aspectRatios: number[];
}

export interface RpnConfig {
  /** Per-level candidates before NMS. */
  preNmsTopN: number;
  postNmsTopN: number;
  nmsThresh: number;
  /** torchvision: remove boxes with w or h < minSize (1e-3); mmdet: keep w > minSize and h > minSize (0). */
  minSize: number;
  scoreThresh: number;
  /** Box coder: torchvision weights (divide deltas) or mmdet stds (multiply deltas). */
  coder: { kind: Flavor; values: [number, number, number, number] };
}

export interface RoiConfig {
  boxOutput: number;
  maskOutput: number;
  samplingRatio: number;
  aligned: boolean;
  /** torchvision LevelMapper (canonical 224 at level 4) or mmdet finest_scale 56. */
  levelMapper: { kind: 'torchvision'; canonicalScale: number; canonicalLevel: number } | { kind: 'mmdet'; finestScale: number };
  /** Feature strides of the RoI levels (torchvision infers 2^round(log2(feature/image))). */
  strides: number[];
}

export interface BoxHeadConfig {
  scoreThresh: number;
  nmsThresh: number;
  maxDetections: number;
  /** torchvision: 1e-2 after clipping; mmdet: none (-1). */
  minSize: number;
  coder: { kind: Flavor; values: [number, number, number, number] };
  /** Column of the background logit: 0 (torchvision) or 'last' (mmdet). */
  background: 'first' | 'last';
  /**
   * mmdet (get_bboxes with rescale=True) maps the decoded boxes to the original image BEFORE NMS, then takes
   * the mask RoIs as those boxes times scale_factor; torchvision runs NMS in network coordinates and maps
   * the kept boxes afterwards.
   */
  rescaleBeforeNms: boolean;
}

export interface MaskConfig {
  paste: Flavor;
  threshold: number;
  compare: '>' | '>=';
}

export interface DetectorConfig {
  flavor: Flavor;
  preprocess: DetectorPreprocess;
  anchors: AnchorConfig;
  rpn: RpnConfig;
  roi: RoiConfig;
  boxHead: BoxHeadConfig;
  mask: MaskConfig;
  /** Foreground classes (without background). */
  numClasses: number;
  /** Name of each output label (index = label as the framework reports it; torchvision index 0 = background). */
  classNames: string[];
  /** COCO-results category_id of each label (same indexing as classNames). */
  categoryIds: number[];
}

/** torchvision's COCO category names by label (91 entries, 'N/A' for unused ids, index 0 background). */
export const TORCHVISION_COCO_CATEGORIES: readonly string[] = [
  '__background__', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
  'traffic light', 'fire hydrant', 'N/A', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse',
  'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'N/A', 'backpack', 'umbrella', 'N/A', 'N/A', 'handbag',
  'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove',
  'skateboard', 'surfboard', 'tennis racket', 'bottle', 'N/A', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
  'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
  'chair', 'couch', 'potted plant', 'bed', 'N/A', 'dining table', 'N/A', 'N/A', 'toilet', 'N/A', 'tv', 'laptop',
  'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'N/A',
  'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush',
];

/**
 * maskrcnn_resnet50_fpn's defaults. `numClassesWithBackground` comes from the box predictor's shape; a
 * 91-way COCO model's labels are COCO category ids already.
 */
export function torchvisionDetectorConfig(numClassesWithBackground: number, classNames?: string[]): DetectorConfig {
  const n = numClassesWithBackground;
  const names = classNames ?? (n === 91 ? [...TORCHVISION_COCO_CATEGORIES]
    : ['__background__', ...Array.from({ length: n - 1 }, (_, i) => `class_${i + 1}`)]);
  if (names.length !== n) throw new UserError(`${names.length} class names for a ${n}-way box predictor`);
  return {
    flavor: 'torchvision',
    preprocess: {
      kind: 'torchvision_rcnn', minSize: 800, maxSize: 1333,
      mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], sizeDivisible: 32,
    },
    anchors: { kind: 'torchvision', sizes: [32, 64, 128, 256, 512], strides: [4, 8, 16, 32, 64], scales: [1], aspectRatios: [0.5, 1, 2] },
    rpn: {
      preNmsTopN: 1000, postNmsTopN: 1000, nmsThresh: 0.7, minSize: 1e-3, scoreThresh: 0,
      coder: { kind: 'torchvision', values: [1, 1, 1, 1] },
    },
    roi: {
      boxOutput: 7, maskOutput: 14, samplingRatio: 2, aligned: false,
      levelMapper: { kind: 'torchvision', canonicalScale: 224, canonicalLevel: 4 }, strides: [4, 8, 16, 32],
    },
    boxHead: {
      scoreThresh: 0.05, nmsThresh: 0.5, maxDetections: 100, minSize: 1e-2,
      coder: { kind: 'torchvision', values: [10, 10, 5, 5] }, background: 'first', rescaleBeforeNms: false,
    },
    mask: { paste: 'torchvision', threshold: 0.5, compare: '>' },
    numClasses: n - 1,
    classNames: names,
    // Label i of a torchvision model is reported as category i (COCO ids for the 91-way COCO head).
    categoryIds: names.map((_, i) => i),
  };
}

/**
 * mmdetection 2.25 mask_rcnn_r50_fpn test_cfg. Labels are 0-based foreground classes; background is the
 * box head's last column.
 */
export function mmdetDetectorConfig(
  numClasses: number, classNames: string[], categoryIds: number[], norm: 'pytorch' | 'caffe',
): DetectorConfig {
  const caffe = norm === 'caffe';
  return {
    flavor: 'mmdet',
    preprocess: {
      kind: 'mmdet', imgScale: [1333, 800],
      mean: caffe ? [103.53, 116.28, 123.675] : [123.675, 116.28, 103.53],
      std: caffe ? [1, 1, 1] : [58.395, 57.12, 57.375],
      toRgb: !caffe, sizeDivisor: 32,
    },
    anchors: { kind: 'mmdet', sizes: [4, 8, 16, 32, 64], strides: [4, 8, 16, 32, 64], scales: [8], aspectRatios: [0.5, 1, 2] },
    rpn: {
      preNmsTopN: 1000, postNmsTopN: 1000, nmsThresh: 0.7, minSize: 0, scoreThresh: 0,
      coder: { kind: 'mmdet', values: [1, 1, 1, 1] },
    },
    roi: {
      boxOutput: 7, maskOutput: 14, samplingRatio: 0, aligned: true,
      levelMapper: { kind: 'mmdet', finestScale: 56 }, strides: [4, 8, 16, 32],
    },
    boxHead: {
      scoreThresh: 0.05, nmsThresh: 0.5, maxDetections: 100, minSize: -1,
      coder: { kind: 'mmdet', values: [0.1, 0.1, 0.2, 0.2] }, background: 'last', rescaleBeforeNms: true,
    },
    mask: { paste: 'mmdet', threshold: 0.5, compare: '>=' },
    numClasses,
    classNames,
    categoryIds,
  };
}

/** Largest image side (pixels) a model's resize targets may ask for: the allocation they drive is checked here. */
export const MAX_IMAGE_SIDE = 8192;

const finite = z.number().finite();
const positive = finite.positive();
const unit = finite.min(0).max(1);
const int = (lo: number, hi: number) => z.number().int().min(lo).max(hi);
const side = int(32, MAX_IMAGE_SIDE);
const triple = z.tuple([finite, finite, finite]);
const flavor = z.enum(['torchvision', 'mmdet']);
const coder = z.object({ kind: flavor, values: z.tuple([positive, positive, positive, positive]) });
const nonEmpty = <T extends z.ZodType>(t: T) => z.array(t).min(1).max(64);

const preprocessSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('torchvision_rcnn'), minSize: side, maxSize: side, mean: triple, std: z.tuple([positive, positive, positive]),
    sizeDivisible: int(1, 256),
  }).refine((p) => p.maxSize >= p.minSize, { message: 'maxSize is below minSize', path: ['maxSize'] }),
  z.object({
    kind: z.literal('mmdet'), imgScale: z.tuple([side, side]), mean: triple, std: z.tuple([positive, positive, positive]),
    toRgb: z.boolean(), sizeDivisor: int(1, 256),
  }),
]);

/** Every field the pipeline reads, with its type and range; ranges bound what a model file can make us allocate. */
const detectorConfigSchema = z.object({
  flavor,
  preprocess: preprocessSchema,
  anchors: z.object({ kind: flavor, sizes: nonEmpty(positive), strides: nonEmpty(int(1, 1024)), scales: nonEmpty(positive), aspectRatios: nonEmpty(positive) })
    .refine((a) => a.sizes.length === a.strides.length, { message: 'sizes and strides differ in length', path: ['sizes'] }),
  rpn: z.object({
    preNmsTopN: int(1, 100_000), postNmsTopN: int(1, 100_000), nmsThresh: unit, minSize: finite.min(0), scoreThresh: unit, coder,
  }),
  roi: z.object({
    boxOutput: int(1, 64), maskOutput: int(1, 128), samplingRatio: int(0, 64), aligned: z.boolean(),
    levelMapper: z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('torchvision'), canonicalScale: positive, canonicalLevel: int(0, 16) }),
      z.object({ kind: z.literal('mmdet'), finestScale: positive }),
    ]),
    strides: nonEmpty(int(1, 1024)),
  }),
  boxHead: z.object({
    scoreThresh: unit, nmsThresh: unit, maxDetections: int(1, 10_000), minSize: finite.min(-1), coder,
    background: z.enum(['first', 'last']), rescaleBeforeNms: z.boolean(),
  }),
  mask: z.object({ paste: flavor, threshold: unit, compare: z.enum(['>', '>=']) }),
  numClasses: int(1, 100_000),
  classNames: z.array(z.string()),
  categoryIds: z.array(z.number().int()),
}).superRefine((d, ctx) => {
  const labels = d.flavor === 'torchvision' ? d.numClasses + 1 : d.numClasses;
  if (d.classNames.length !== labels) ctx.addIssue({ code: 'custom', path: ['classNames'], message: `has ${d.classNames.length} names for ${labels} labels` });
  if (d.categoryIds.length !== d.classNames.length) ctx.addIssue({ code: 'custom', path: ['categoryIds'], message: `has ${d.categoryIds.length} ids for ${d.classNames.length} class names` });
  if ((d.preprocess.kind === 'mmdet') !== (d.flavor === 'mmdet')) ctx.addIssue({ code: 'custom', path: ['preprocess', 'kind'], message: `'${d.preprocess.kind}' does not fit a ${d.flavor} detector` });
});

// The schema and the interfaces above describe the same object (checked by the compiler both ways).
type SchemaOut = z.output<typeof detectorConfigSchema>;
const sameShape: [SchemaOut extends DetectorConfig ? true : false, DetectorConfig extends SchemaOut ? true : false] = [true, true];
void sameShape;

/** Checks a config read back from a model file: one UserError line naming the field, never a crash deep in the pipeline. */
export function checkDetectorConfig(c: unknown, what = 'model'): DetectorConfig {
  if (c === undefined) throw new UserError(`${what}: metadata lacks the detector config (fasternet.extra.detector); re-convert the checkpoint`);
  return parseWith(detectorConfigSchema, c, `${what}: detector config`);
}
