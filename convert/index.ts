/**
 * A PyTorch checkpoint (torch.save zip or safetensors) to a self-describing ONNX model (metadata in
 * runtime/metadata.ts), BatchNorms folded into convs. Flavors: 'imagenet' (FasterNet T0..L or torchvision
 * ResNet50 classifier), 'torchvision' and 'mmdet' Mask R-CNN (detection.ts, mmdet.ts).
 */
import { loadCheckpoint, stripPrefix } from '../checkpoint/load.ts';
import { checkStateDict, prefixed } from './check.ts';
import type { StateDict } from '../core/tensor.ts';
import type { ModelMetadata } from '../runtime/metadata.ts';
import { archName, detectArch, imagenetModel } from '../backbones/model.ts';
import { fasternetParamSpecs, type PConvImpl } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { UserError } from '../core/errors.ts';
import { applyDetectorOverrides, halfDetectorModel, torchvisionDetectorWeights, type DetectorOverrides } from './detection.ts';
import { mmdetDetectorWeights, mmdetMetaFrom } from './mmdet.ts';
import { buildDetectorModel } from '../heads/mask_rcnn.ts';
import { halfInitializers } from '../runtime/graph.ts';
import { checkWritable, writeFileAtomic } from '../core/fs.ts';

export interface ConvertOptions {
  arch?: string;
  pconv?: PConvImpl;
  /** The checkpoint's meta (mmdetection: CLASSES, config), filled by convertCheckpoint. */
  meta?: unknown;
  /** mmdet ResNet50 style; overrides the checkpoint's meta.config and file name. */
  resnetStyle?: 'pytorch' | 'caffe';
  /** The checkpoint's path, filled by convertCheckpoint (mmdet: model-zoo names tell the ResNet style). */
  fileName?: string;
  /** Detection flavors: transform sizes and class names (convert/detection.ts applyDetectorOverrides). */
  overrides?: DetectorOverrides;
  /** Store float32 weights as float16 (Cast back to float32 in the graph): half the file. */
  half?: boolean;
}

export type FlavorConverter = (sd: StateDict, o: ConvertOptions) => { bytes: Uint8Array; meta: ModelMetadata };

/** Strips DataParallel's 'module.' when every key carries it. */
export function unwrapDataParallel(sd: StateDict): StateDict {
  const keys = [...sd.keys()];
  return keys.length > 0 && keys.every((k) => k.startsWith('module.')) ? stripPrefix(sd, 'module.') : sd;
}

/** Checks an ImageNet classifier state dict against the architecture's expected keys and shapes. */
export function checkImagenetStateDict(sd: StateDict, arch: string): void {
  const head = sd.get(arch === 'resnet50' ? 'fc.weight' : 'head.weight');
  if (!head) throw new UserError(`${arch} checkpoint has no classifier head (${arch === 'resnet50' ? 'fc' : 'head'}.weight): a detection backbone needs a detection flavor`);
  const numClasses = head.shape[0];
  const specs = arch === 'resnet50' ? resnet50ParamSpecs(numClasses) : fasternetParamSpecs(arch, { numClasses });
  checkStateDict(sd, prefixed('', specs), `${arch} checkpoint`);
}

export const FLAVORS: Record<string, FlavorConverter> = {
  imagenet: (sd, o) => {
    const arch = o.arch ? archName(o.arch) : detectArch(sd);
    checkImagenetStateDict(sd, arch);
    return imagenetModel(sd, { arch, pconv: o.pconv });
  },
  // Detection flavors ('torchvision', 'mmdet') add one line each here.
  torchvision: (sd, o) => {
    const d = torchvisionDetectorWeights(sd);
    return buildDetectorModel(d.weights, applyDetectorOverrides(d.config, o.overrides ?? {}), d.arch);
  },
  mmdet: (sd, o) => {
    const d = mmdetDetectorWeights(sd, mmdetMetaFrom(o.meta), { resnetStyle: o.resnetStyle, fileName: o.fileName });
    return buildDetectorModel(d.weights, applyDetectorOverrides(d.config, o.overrides ?? {}), d.arch);
  },
};

export async function convertCheckpoint(ckptPath: string, flavor: string, outPath: string, o: ConvertOptions = {}): Promise<ModelMetadata> {
  const convert = FLAVORS[flavor];
  if (!convert) throw new UserError(`unknown flavor ${flavor} (expected one of ${Object.keys(FLAVORS).join(', ')})`);
  checkWritable(outPath, '--out');
  const ckpt = await loadCheckpoint(ckptPath);
  const ov = o.overrides ?? {};
  if (flavor === 'imagenet' && (ov.minSize !== undefined || ov.maxSize !== undefined || ov.classes)) {
    throw new UserError('--min-size, --max-size and --classes apply to the detection flavors (torchvision, mmdet)');
  }
  const converted = convert(unwrapDataParallel(ckpt.stateDict), { ...o, meta: ckpt.meta, fileName: ckptPath });
  const { meta } = converted;
  let bytes = converted.bytes;
  if (o.half) bytes = flavor === 'imagenet' ? halfInitializers(bytes).bytes : halfDetectorModel(bytes);
  await writeFileAtomic(outPath, bytes);
  return meta;
}
