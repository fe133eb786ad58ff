/**
 * `fasternet convert CKPT --flavor imagenet|torchvision|mmdet --out M.onnx` (convert/index.ts does the work).
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { FLAVORS, convertCheckpoint } from '../convert/index.ts';
import type { PConvImpl } from '../backbones/fasternet.ts';
import { UserError } from '../core/errors.ts';

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
    .option('--quiet', 'no summary line (errors are still printed)')
    .action(async (ckpt: string, opts: { flavor: string; out: string; arch?: string; pconv: string; resnetStyle?: string; minSize?: string; maxSize?: string; classes?: string; half?: boolean; quiet?: boolean }) => {
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
      if (!opts.quiet) process.stdout.write(`${opts.out}: ${meta.arch} ${meta.flavor}, ${meta.numClasses} classes\n`);
    });
}
