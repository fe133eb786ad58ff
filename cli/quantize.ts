/**
 * `fasternet quantize MODEL.onnx --calib DIR --out OUT.onnx`: static int8 quantization (api/quantize.ts) of a
 * model written by `fasternet convert`, calibrated on the images in DIR.
 */
import type { Command } from 'commander';
import { DEFAULT_CALIB_IMAGES, DEFAULT_METHOD, quantizeModel } from '../api/quantize.ts';
import { CALIBRATION_METHODS, type CalibrationMethod } from '../runtime/calibrate.ts';
import { imageProgress } from './progress.ts';
import { UserError } from '../core/errors.ts';
import { MAX_THREADS, positiveInt } from '../core/options.ts';
import { checkOutputFile } from '../core/output.ts';
import { writeFileAtomicSync } from '../core/fs.ts';

export interface QuantizeCliOptions {
  calib: string;
  out: string;
  calibImages?: string;
  method?: string;
  keepFp32?: string[];
  report?: string;
  threads?: string;
  /** commander's --all-int8 */
  allInt8?: boolean;
  /** No progress bar and no summary lines (errors are still printed). */
  quiet?: boolean;
}

function parseMethod(v: string | undefined): CalibrationMethod {
  if (v === undefined) return DEFAULT_METHOD;
  if (!(CALIBRATION_METHODS as readonly string[]).includes(v)) throw new UserError(`--method must be one of ${CALIBRATION_METHODS.join(', ')}, got "${v}"`);
  return v as CalibrationMethod;
}

function parsePatterns(ps: string[] | undefined): RegExp[] {
  return (ps ?? []).map((p) => {
    try {
      return new RegExp(p);
    } catch {
      throw new UserError(`--keep-fp32 "${p}" is not a valid regular expression`);
    }
  });
}

export async function runQuantize(model: string, opts: QuantizeCliOptions, out: (line: string) => void = console.log): Promise<void> {
  const print = opts.quiet ? () => undefined : out;
  const method = parseMethod(opts.method);
  const keepFp32 = parsePatterns(opts.keepFp32);
  const calibImages = positiveInt('--calib-images', opts.calibImages) ?? DEFAULT_CALIB_IMAGES;
  const threads = positiveInt('--threads', opts.threads, MAX_THREADS);
  // Output places are tried before calibration, which can take minutes.
  checkOutputFile('--out', opts.out);
  checkOutputFile('--report', opts.report);
  let bar: ReturnType<typeof imageProgress> | undefined;
  let barPass = 0;
  const { bytes, report } = await quantizeModel(model, {
    calibDir: opts.calib, calibImages, method, keepFp32, threads, keepSensitive: !opts.allInt8,
    progress: (pass, passes, done, total) => {
      if (opts.quiet) return;
      if (pass !== barPass) {
        bar?.stop();
        bar = imageProgress(passes > 1 ? `calibrating ${pass}/${passes}` : 'calibrating');
        barPass = pass;
      }
      bar!.update(done, total, 0);
    },
  });
  bar?.stop();
  // Atomic (temp file, fsync, rename): a kill leaves the old file or none at the final path, never half a model.
  writeFileAtomicSync(opts.out, bytes);
  if (opts.report) writeFileAtomicSync(opts.report, `${JSON.stringify(report, null, 1)}\n`);
  for (const [g, r] of Object.entries(report.graphs)) {
    print(`${g}: ${r.quantized.length} layers int8, ${r.kept.length} float32${r.kept.length ? ` (${r.kept.map((k) => k.name).join(', ')})` : ''}`);
  }
  print(`wrote ${opts.out} (${method}, ${report.calibImages.length} calibration images)`);
}

export function register(program: Command): void {
  program.command('quantize')
    .description('int8 static quantization (QDQ, per-channel weights, calibrated activations) of a model from fasternet convert')
    .argument('<model>', 'float ONNX model written by fasternet convert (detector or --flavor imagenet)')
    .requiredOption('--calib <dir>', 'folder of calibration images (not your evaluation images)')
    .requiredOption('--out <file>', 'output .onnx')
    .option('--calib-images <n>', `use the first N images of --calib, by name (default ${DEFAULT_CALIB_IMAGES})`)
    .option('--method <m>', `activation ranges: ${CALIBRATION_METHODS.join(' | ')} (default ${DEFAULT_METHOD})`)
    .option('--keep-fp32 <pattern...>', 'also keep layers whose node name matches these regular expressions in float32')
    .option('--all-int8', 'also quantize the stem and the predictors (kept float32 by default: they cost the most accuracy)')
    .option('--report <file>', 'write what was quantized, each tensor range and the float32 layers as JSON')
    .option('--threads <n>', 'ORT threads (default 2)')
    .option('--quiet', 'no progress bar and no summary lines (errors are still printed)')
    .action((model: string, opts: QuantizeCliOptions) => runQuantize(model, opts));
}
