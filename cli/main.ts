#!/usr/bin/env node
/**
 * `fasternet` command line. Each command lives in its own file exporting `register(program)`; only the file of
 * the command being run is imported (the others pull in sharp, onnxruntime and the whole model code), so that
 * `fasternet --version` and `fasternet --help` start at once. The top-level help lists COMMANDS below.
 *
 * Exit codes, the same for every command (EXIT_CODES, printed by --help):
 *   0 ok; 1 some inputs failed (each named on stderr; the others were processed), or an internal error (with its
 *   stack); 2 usage or bad option value (a UserError: one line `fasternet: <message>`); 130 interrupted.
 */
import { Command, CommanderError } from 'commander';
import { InterruptedError, UserError } from '../core/errors.ts';
import { packageVersion } from '../core/package.ts';

type Module = Promise<{ register: (p: Command) => void }>;

/** name, usage and summary for the top-level help; load: the modules registering it (and its subcommands). */
const COMMANDS: Array<{ name: string; usage: string; summary: string; load: () => Module[] }> = [
  { name: 'detect', usage: '[options] <images...>', summary: 'Mask R-CNN instance segmentation (default: the bundled FasterNet-T0 canvases model)', load: () => [import('./detect.ts')] },
  { name: 'eval', usage: '[options]', summary: 'COCO evaluation (pycocotools-exact) of a results file, or of a model run over an image folder', load: () => [import('./eval.ts')] },
  { name: 'convert', usage: '[options] <checkpoint>', summary: 'convert a PyTorch checkpoint (.pth zip or .safetensors) to ONNX with BatchNorm folded', load: () => [import('./convert.ts')] },
  { name: 'classify', usage: '[options] <images...>', summary: 'ImageNet top-k classification with a model from `fasternet convert --flavor imagenet`', load: () => [import('./classify.ts')] },
  { name: 'quantize', usage: '[options] <model>', summary: 'int8 post-training quantization (QDQ) of a converted model, calibrated on your images', load: () => [import('./quantize.ts')] },
  {
    name: 'bench', usage: '<eval|backbones|ops|detect|nms|startup> [options]', summary: 'benchmarks (each subcommand times one part of the toolkit)',
    load: () => [import('../bench/command.ts'), import('../bench/backbones_cli.ts'), import('../bench/detect.ts'), import('../bench/nms.ts'), import('../bench/startup.ts')],
  },
];

export const EXIT_CODES = `Exit codes (every command):
  0    ok
  1    some inputs failed (each named on stderr; the others were processed), or an internal error
  2    usage error or bad option value (one line on stderr, nothing written)
  130  interrupted (Ctrl-C); commands with --resume continue where they stopped`;

const program = new Command()
  .name('fasternet')
  .description('FasterNet / ResNet50 Mask R-CNN in Node: detect, evaluate on COCO, convert checkpoints, benchmark')
  .version(packageVersion())
  .exitOverride()
  .showHelpAfterError()
  .addHelpText('after', `\n${EXIT_CODES}`);

const words = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const name = words[0] === 'help' ? words[1] : words[0];
const command = COMMANDS.find((c) => c.name === name);
if (command) {
  for (const mod of await Promise.all(command.load())) mod.register(program);
  for (const c of program.commands) c.exitOverride().addHelpText('after', `\n${EXIT_CODES}`);
} else {
  // Top-level help, --version or an unknown command: names and summaries only.
  for (const c of COMMANDS) program.command(c.name).usage(c.usage).description(c.summary);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof InterruptedError) {
    process.stderr.write(`fasternet: ${err.message}\n`);
    process.exit(130);
  }
  if (err instanceof UserError) {
    process.stderr.write(`fasternet: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
