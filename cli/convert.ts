/**
 * `fasternet convert CKPT --flavor imagenet --out M.onnx`: a PyTorch checkpoint (torch.save zip or safetensors)
 * to a self-describing ONNX model (metadata in runtime/metadata.ts). BatchNorms are folded into convs.
 * Flavors: 'imagenet' (FasterNet T0..L or torchvision ResNet50 classifier). Detection flavors register here too.
 */
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { checkKeys, checkShapes, loadCheckpoint, stripPrefix } from '../checkpoint/load.ts';
import type { StateDict } from '../core/tensor.ts';
import type { ModelMetadata } from '../runtime/metadata.ts';
import { archName, detectArch, imagenetModel } from '../backbones/model.ts';
import { fasternetParamSpecs, type PConvImpl } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { UserError } from '../core/errors.ts';
import { applyDetectorOverrides, halfDetectorModel, torchvisionDetectorWeights, type DetectorOverrides } from '../convert/detection.ts';
import { mmdetDetectorWeights, mmdetMetaFrom } from '../convert/mmdet.ts';
import { buildDetectorModel } from '../heads/mask_rcnn.ts';
import { halfInitializers } from '../runtime/graph.ts';
import { readFileSync } from 'node:fs';

export interface ConvertOptions {
  arch?: string;
  pconv?: PConvImpl;
  /** The checkpoint's meta (mmdetection: CLASSES, config), filled by convertCheckpoint. */
  meta?: unknown;
  /** mmdet ResNet50 style when the checkpoint's meta.config does not say it. */
  resnetStyle?: 'pytorch' | 'caffe';
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
  const ignore = (k: string) => k.endsWith('num_batches_tracked');
  checkKeys(sd, specs.map((s) => s.key), `${arch} checkpoint`, { ignore });
  checkShapes(sd, specs.filter((s) => !ignore(s.key)).map((s) => [s.key, s.shape] as [string, number[]]), `${arch} checkpoint`);
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
    const d = mmdetDetectorWeights(sd, mmdetMetaFrom(o.meta), { resnetStyle: o.resnetStyle });
    return buildDetectorModel(d.weights, applyDetectorOverrides(d.config, o.overrides ?? {}), d.arch);
  },
};

/** `--classes a,b,c` or `--classes FILE` (.json: an array of strings; .txt: one name per line). */
export function parseClassesOption(v: string): string[] {
  if (/\.(json|txt)$/i.test(v)) {
    let text: string;
    try {
      text = readFileSync(v, 'utf8');
    } catch (err) {
      throw new UserError(`cannot read --classes file ${v}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (/\.json$/i.test(v)) {
      let j: unknown;
      try {
        j = JSON.parse(text);
      } catch {
        throw new UserError(`--classes file ${v} is not valid JSON`);
      }
      if (!Array.isArray(j) || !j.every((n) => typeof n === 'string')) throw new UserError(`--classes file ${v} must hold a JSON array of strings`);
      return j as string[];
    }
    return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  }
  return v.split(',').map((n) => n.trim());
}

function sizeOption(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 32 || n > 8192) throw new UserError(`${flag} must be an integer in [32, 8192], got ${v}`);
  return n;
}

export async function convertCheckpoint(ckptPath: string, flavor: string, outPath: string, o: ConvertOptions = {}): Promise<ModelMetadata> {
  const convert = FLAVORS[flavor];
  if (!convert) throw new UserError(`unknown flavor ${flavor} (expected one of ${Object.keys(FLAVORS).join(', ')})`);
  const ckpt = await loadCheckpoint(ckptPath);
  const ov = o.overrides ?? {};
  if (flavor === 'imagenet' && (ov.minSize !== undefined || ov.maxSize !== undefined || ov.classes)) {
    throw new UserError('--min-size, --max-size and --classes apply to the detection flavors (torchvision, mmdet)');
  }
  const converted = convert(unwrapDataParallel(ckpt.stateDict), { ...o, meta: ckpt.meta });
  const { meta } = converted;
  let bytes = converted.bytes;
  if (o.half) bytes = flavor === 'imagenet' ? halfInitializers(bytes).bytes : halfDetectorModel(bytes);
  try {
    await writeFile(outPath, bytes);
  } catch (err) {
    throw new UserError(`cannot write ${outPath}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return meta;
}

export function register(program: Command): void {
  program.command('convert')
    .description('convert a PyTorch checkpoint (.pth zip or .safetensors) to ONNX with BatchNorm folded')
    .argument('<checkpoint>', 'checkpoint file')
    .requiredOption('--flavor <name>', `what to build: ${Object.keys(FLAVORS).join(', ')}`)
    .requiredOption('--out <file>', 'ONNX file to write')
    .option('--arch <name>', 'architecture (t0, t1, t2, s, m, l, resnet50); detected from the checkpoint when absent')
    .option('--pconv <impl>', 'ONNX form of the partial conv: split_cat, slice_cat or group_identity', 'split_cat')
    .option('--resnet-style <style>', 'mmdet ResNet50 style (pytorch or caffe) when the checkpoint meta does not tell')
    .option('--min-size <n>', 'detection: shorter side the image is resized to (torchvision min_size, mmdet img_scale short edge)')
    .option('--max-size <n>', 'detection: cap on the longer side (torchvision max_size, mmdet img_scale long edge)')
    .option('--classes <names>', 'detection: class names, comma-separated or a .json array / .txt file (torchvision: the foreground names, or all with __background__ first)')
    .option('--half', 'store weights as float16 (half the file; computed in float32)')
    .action(async (ckpt: string, opts: { flavor: string; out: string; arch?: string; pconv: string; resnetStyle?: string; minSize?: string; maxSize?: string; classes?: string; half?: boolean }) => {
      if (!['split_cat', 'slice_cat', 'group_identity'].includes(opts.pconv)) throw new UserError(`--pconv must be split_cat, slice_cat or group_identity, got ${opts.pconv}`);
      if (opts.resnetStyle !== undefined && opts.resnetStyle !== 'pytorch' && opts.resnetStyle !== 'caffe') {
        throw new UserError(`--resnet-style must be pytorch or caffe, got ${opts.resnetStyle}`);
      }
      const meta = await convertCheckpoint(ckpt, opts.flavor, opts.out, {
        arch: opts.arch, pconv: opts.pconv as PConvImpl, resnetStyle: opts.resnetStyle as 'pytorch' | 'caffe' | undefined,
        overrides: {
          minSize: sizeOption('--min-size', opts.minSize), maxSize: sizeOption('--max-size', opts.maxSize),
          classes: opts.classes === undefined ? undefined : parseClassesOption(opts.classes),
        },
        half: opts.half,
      });
      process.stdout.write(`${opts.out}: ${meta.arch} ${meta.flavor}, ${meta.numClasses} classes\n`);
    });
}
