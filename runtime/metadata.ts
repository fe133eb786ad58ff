/**
 * What an exported model needs at inference time, stored in the ONNX file's metadata_props so that the .onnx
 * is self-describing. Every key is `fasternet.<field>` with a JSON value; this module is the only place that
 * reads or writes them.
 */
import { readFile } from 'node:fs/promises';
import { ModelMetadataOnly } from './onnx_proto.ts';
import { UserError } from '../cli/errors.ts';

/** ImageNet evaluation transform: resize short side (bicubic, Pillow), center crop, normalize (0-1 scale). */
export interface CenterCropPreprocess {
  kind: 'resize_center_crop';
  resize: number;
  crop: number;
  interpolation: 'bicubic';
  mean: number[];
  std: number[];
  /** Pixel values are divided by this before mean/std (torchvision ToTensor). */
  scale: number;
  channels: 'RGB' | 'BGR';
}

/** Any other transform (detection flavors define their own `kind`). */
export interface OtherPreprocess {
  kind: string;
  [field: string]: unknown;
}

export type Preprocess = CenterCropPreprocess | OtherPreprocess;

export interface ModelMetadata {
  /** 'fasternet_t0' ... 'fasternet_l', 'resnet50'. */
  arch: string;
  /** What the graph computes: 'imagenet' classifier, or a detection flavor ('torchvision', 'mmdet'). */
  flavor: string;
  numClasses: number;
  preprocess: Preprocess;
  /** Graph input name and output names in order. */
  input: string;
  outputs: string[];
  /** Flavor-specific extras (e.g. detection thresholds); JSON-serializable. */
  extra?: Record<string, unknown>;
}

const FIELDS = ['arch', 'flavor', 'numClasses', 'preprocess', 'input', 'outputs', 'extra'] as const;
const PREFIX = 'fasternet.';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/** The official evaluation transform (data/custom_imagenet_data.py, test_crop_ratio 0.9 from cfg/*.yaml). */
export function imagenetPreprocess(crop = 224, testCropRatio = 0.9): CenterCropPreprocess {
  return {
    kind: 'resize_center_crop', resize: Math.trunc(crop / testCropRatio), crop, interpolation: 'bicubic',
    mean: IMAGENET_MEAN, std: IMAGENET_STD, scale: 255, channels: 'RGB',
  };
}

export function metadataProps(m: ModelMetadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of FIELDS) if (m[f] !== undefined) out[PREFIX + f] = JSON.stringify(m[f]);
  return out;
}

export function parseMetadata(props: Record<string, string>, what = 'model'): ModelMetadata {
  const get = (f: string): unknown => {
    const v = props[PREFIX + f];
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v);
    } catch {
      throw new UserError(`${what}: metadata ${PREFIX}${f} is not JSON`);
    }
  };
  const m = {} as Record<string, unknown>;
  for (const f of FIELDS) m[f] = get(f);
  const missing = ['arch', 'flavor', 'numClasses', 'preprocess', 'input', 'outputs'].filter((f) => m[f] === undefined);
  if (missing.length) {
    throw new UserError(`${what} was not written by fasternet convert (metadata lacks ${missing.join(', ')})`);
  }
  if (typeof m.arch !== 'string' || typeof m.flavor !== 'string' || !Number.isInteger(m.numClasses)
    || typeof m.input !== 'string' || !Array.isArray(m.outputs)
    || typeof m.preprocess !== 'object' || typeof (m.preprocess as Preprocess).kind !== 'string') {
    throw new UserError(`${what}: malformed fasternet metadata`);
  }
  if (m.extra === undefined) delete m.extra;
  return m as unknown as ModelMetadata;
}

export function isCenterCrop(p: Preprocess): p is CenterCropPreprocess {
  return p.kind === 'resize_center_crop';
}

/** Reads only the metadata_props of an ONNX file (the graph bytes are skipped, not decoded). */
export async function readModelMetadata(path: string): Promise<ModelMetadata> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch {
    throw new UserError(`cannot read model ${path}`);
  }
  return parseMetadata(metadataFromBytes(bytes, path), path);
}

export function metadataFromBytes(bytes: Uint8Array, what = 'model'): Record<string, string> {
  let msg: { metadataProps?: Array<{ key: string; value: string }> };
  try {
    msg = ModelMetadataOnly.decode(bytes) as unknown as typeof msg;
  } catch {
    throw new UserError(`${what} is not an ONNX model`);
  }
  const props: Record<string, string> = {};
  for (const p of msg.metadataProps ?? []) props[p.key] = p.value;
  return props;
}
