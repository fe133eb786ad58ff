/**
 * What an exported model needs at inference time, stored in the ONNX file's metadata_props so that the .onnx
 * is self-describing. Every key is `fasternet.<field>` with a JSON value; this module is the only place that
 * reads or writes them.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ModelMetadataOnly } from './onnx_proto.ts';
import { z } from 'zod';
import { UserError } from '../core/errors.ts';
import { parseWith } from '../core/validate.ts';

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
  if (m.extra === undefined) delete m.extra;
  const meta = parseWith(metadataSchema, m, `${what}: metadata`) as ModelMetadata;
  if (isCenterCrop(meta.preprocess)) parseWith(centerCrop, meta.preprocess, `${what}: metadata preprocess`);
  return meta;
}

const finite = z.number().finite();
const name = z.string().min(1).max(256);
const centerCrop = z.object({
  kind: z.literal('resize_center_crop'), resize: z.number().int().min(1).max(8192), crop: z.number().int().min(1).max(8192),
  interpolation: z.literal('bicubic'), mean: z.array(finite).length(3), std: z.array(finite.positive()).length(3),
  scale: finite.positive(), channels: z.enum(['RGB', 'BGR']),
}).refine((p) => p.crop <= p.resize, { message: 'crop is larger than resize', path: ['crop'] });

/** Types and ranges of the metadata fields; detection flavors' own fields are checked by heads/config.ts. */
const metadataSchema = z.object({
  arch: name,
  flavor: name,
  numClasses: z.number().int().min(1).max(100_000),
  preprocess: z.looseObject({ kind: name }),
  input: name,
  outputs: z.array(name).min(1).max(256),
  extra: z.record(z.string(), z.unknown()).optional(),
});

/** Metadata entry of an int8 model (`fasternet quantize`): how it was quantized, and its uint8 outputs. */
export const QUANTIZED_KEY = 'fasternet.quantized';

/** Scale and zero point of a uint8 tensor standing for (x - zeroPoint) * scale. */
export interface QuantParams { scale: number; zeroPoint: number }

const quantParams = z.object({ scale: finite.positive(), zeroPoint: z.number().int().min(0).max(255) });
const quantizedEntry = z.looseObject({ uint8Outputs: z.record(name, quantParams).optional() });

/**
 * The graph outputs an int8 model leaves in uint8 (an int8 detector's FPN levels, which RoIAlign reads as
 * bytes) with their scale and zero point; empty for float models.
 */
export function uint8Outputs(props: Record<string, string>, what = 'model'): Record<string, QuantParams> {
  const v = props[QUANTIZED_KEY];
  if (v === undefined) return {};
  let j: unknown;
  try {
    j = JSON.parse(v);
  } catch {
    throw new UserError(`${what}: metadata ${QUANTIZED_KEY} is not JSON`);
  }
  return parseWith(quantizedEntry, j, `${what}: metadata ${QUANTIZED_KEY}`).uint8Outputs ?? {};
}

export function isCenterCrop(p: Preprocess): p is CenterCropPreprocess {
  return p.kind === 'resize_center_crop';
}

/** Reads only the metadata_props of an ONNX file (the graph bytes are skipped, not decoded). */
export async function readModelMetadata(path: string): Promise<ModelMetadata> {
  return parseMetadata(await readMetadataProps(path), path);
}

const METADATA_PROPS_FIELD = 14; // ModelProto.metadata_props

/** A model's metadata and the rest of its ModelProto (graph, opsets, ...) re-serialized without it. */
export interface ModelParts {
  props: Record<string, string>;
  /** A valid ONNX model: every top-level field but metadata_props, byte for byte. */
  graphBytes: Uint8Array;
}

type ReadAt = (dst: Uint8Array, pos: number) => Promise<number>;

/**
 * Finds the byte ranges of ModelProto's top-level fields by reading only their headers; every length is
 * checked against the size. Returns [start, end) ranges of the metadata_props records and of the rest.
 */
async function scanFields(size: number, readAt: ReadAt, what: string): Promise<{ meta: [number, number][]; rest: [number, number][] }> {
  if (size === 0) throw new UserError(`${what} is not an ONNX model (empty)`);
  const meta: [number, number][] = [];
  const rest: [number, number][] = [];
  const head = new Uint8Array(20);
  let pos = 0;
  while (pos < size) {
    const n = await readAt(head.subarray(0, Math.min(head.length, size - pos)), pos);
    let [tag, p] = readVarint(head, 0, n, what);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    let end: number;
    if (wire === 0) {
      end = pos + readVarint(head, p, n, what)[1];
    } else if (wire === 2) {
      let len: number;
      [len, p] = readVarint(head, p, n, what);
      end = pos + p + len;
    } else if (wire === 5 || wire === 1) {
      end = pos + p + (wire === 5 ? 4 : 8);
    } else {
      throw new UserError(`${what} is not an ONNX model (wire type ${wire} at byte ${pos})`);
    }
    if (field === 0 || end > size) throw new UserError(`${what} is not an ONNX model (truncated or corrupt at byte ${pos})`);
    (field === METADATA_PROPS_FIELD ? meta : rest).push([pos, end]);
    pos = end;
  }
  return { meta, rest };
}

function readVarint(b: Uint8Array, p: number, n: number, what: string): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8 && p < n; i++, p++) {
    v += (b[p] & 0x7f) * mul;
    if (b[p] < 0x80) return [v, p + 1];
    mul *= 128;
  }
  throw new UserError(`${what} is not an ONNX model (bad varint)`);
}

async function gather(ranges: [number, number][], readAt: ReadAt): Promise<Uint8Array> {
  const out = Buffer.allocUnsafe(ranges.reduce((a, [s, e]) => a + e - s, 0));
  let o = 0;
  for (const [s, e] of ranges) o += await readAt(out.subarray(o, o + e - s), s);
  return out;
}

async function splitModel(size: number, readAt: ReadAt, what: string): Promise<ModelParts> {
  const { meta, rest } = await scanFields(size, readAt, what);
  const props = metadataFromBytes(await gather(meta, readAt), what);
  return { props, graphBytes: await gather(rest, readAt) };
}

/** Opens a model file and hands `fn` its size and a reader that fills `dst` from byte `pos` (or throws). */
async function withModelFile<T>(path: string, fn: (size: number, readAt: ReadAt) => Promise<T>): Promise<T> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch {
    throw new UserError(`cannot read model ${path}`);
  }
  try {
    const readAt: ReadAt = async (dst, pos) => {
      let done = 0;
      while (done < dst.length) {
        const { bytesRead } = await fh.read(dst, done, dst.length - done, pos + done);
        if (bytesRead === 0) throw new UserError(`${path}: file changed while reading`);
        done += bytesRead;
      }
      return done;
    };
    return await fn((await fh.stat()).size, readAt);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw new UserError(`${path} is a directory, not a model`);
    throw err;
  } finally {
    await fh.close();
  }
}

/**
 * Reads an ONNX file as metadata + the model without its metadata. Detector files carry their RoI heads as
 * base64 metadata (tens of MB); handing ORT the file without them keeps ORT from holding those strings (and
 * its load-time copies of them): measured for FasterNet-S Mask R-CNN, ORT's load peak 1.12 GB -> 0.42 GB.
 */
export function readModelParts(path: string): Promise<ModelParts> {
  return withModelFile(path, (size, readAt) => splitModel(size, readAt, path));
}

/** readModelParts for a model already in memory. */
export function splitModelBytes(bytes: Uint8Array, what = 'model'): Promise<ModelParts> {
  return splitModel(bytes.length, async (dst, pos) => {
    dst.set(bytes.subarray(pos, pos + dst.length));
    return dst.length;
  }, what);
}

/** Reads only the metadata_props of an ONNX file: the graph is skipped by seeking, never read. */
export function readMetadataProps(path: string): Promise<Record<string, string>> {
  return withModelFile(path, async (size, readAt) => {
    const { meta } = await scanFields(size, readAt, path);
    return metadataFromBytes(await gather(meta, readAt), path);
  });
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
