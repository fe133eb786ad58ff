/**
 * `fasternet convert CKPT --flavor imagenet --out M.onnx`: a PyTorch checkpoint (torch.save zip or safetensors)
 * to a self-describing ONNX model (metadata in runtime/metadata.ts). BatchNorms are folded into convs.
 * Flavors: 'imagenet' (FasterNet T0..L or torchvision ResNet50 classifier). Detection flavors register here too.
 */
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { checkKeys, checkShapes, loadCheckpoint, stripPrefix } from '../io/checkpoint.ts';
import type { StateDict } from '../runtime/tensor.ts';
import type { ModelMetadata } from '../runtime/metadata.ts';
import { archName, detectArch, imagenetModel } from '../backbones/model.ts';
import { fasternetParamSpecs, type PConvImpl } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { UserError } from './errors.ts';
import { convertTorchvisionDetector } from '../io/convert_detection.ts';
import { convertMmdetDetector, mmdetMetaFrom } from '../io/convert_mmdet.ts';

export interface ConvertOptions {
  arch?: string;
  pconv?: PConvImpl;
  /** The checkpoint's meta (mmdetection: CLASSES, config), filled by convertCheckpoint. */
  meta?: unknown;
  /** mmdet ResNet50 style when the checkpoint's meta.config does not say it. */
  resnetStyle?: 'pytorch' | 'caffe';
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
  torchvision: (sd) => convertTorchvisionDetector(sd),
  mmdet: (sd, o) => convertMmdetDetector(sd, mmdetMetaFrom(o.meta), { resnetStyle: o.resnetStyle }),
};

export async function convertCheckpoint(ckptPath: string, flavor: string, outPath: string, o: ConvertOptions = {}): Promise<ModelMetadata> {
  const convert = FLAVORS[flavor];
  if (!convert) throw new UserError(`unknown flavor ${flavor} (expected one of ${Object.keys(FLAVORS).join(', ')})`);
  const ckpt = await loadCheckpoint(ckptPath);
  const { bytes, meta } = convert(unwrapDataParallel(ckpt.stateDict), { ...o, meta: ckpt.meta });
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
    .action(async (ckpt: string, opts: { flavor: string; out: string; arch?: string; pconv: string; resnetStyle?: string }) => {
      if (!['split_cat', 'slice_cat', 'group_identity'].includes(opts.pconv)) throw new UserError(`--pconv must be split_cat, slice_cat or group_identity, got ${opts.pconv}`);
      if (opts.resnetStyle !== undefined && opts.resnetStyle !== 'pytorch' && opts.resnetStyle !== 'caffe') {
        throw new UserError(`--resnet-style must be pytorch or caffe, got ${opts.resnetStyle}`);
      }
      const meta = await convertCheckpoint(ckpt, opts.flavor, opts.out, {
        arch: opts.arch, pconv: opts.pconv as PConvImpl, resnetStyle: opts.resnetStyle as 'pytorch' | 'caffe' | undefined,
      });
      process.stdout.write(`${opts.out}: ${meta.arch} ${meta.flavor}, ${meta.numClasses} classes\n`);
    });
}
