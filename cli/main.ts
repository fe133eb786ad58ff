/**
 * `fasternet` command line. Each command lives in its own file exporting `register(program)`.
 * Errors thrown as UserError (bad input) print one line `fasternet: <message>` and exit 2; anything else is a
 * bug and prints its stack.
 */
import { Command, CommanderError } from 'commander';
import { UserError } from '../core/errors.ts';

const program = new Command()
  .name('fasternet')
  .description('FasterNet / ResNet50 Mask R-CNN in Node: detect, evaluate on COCO, convert checkpoints, benchmark')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError();

// Command registrations (one line per command file).
const commands: Array<Promise<{ register: (p: Command) => void }>> = [
  import('./convert.ts'),
  import('./classify.ts'),
  import('./detect.ts'),
  import('./eval.ts'),
  import('./quantize.ts'),
  import('../bench/command.ts'),
  import('../bench/backbones_cli.ts'),
  import('../bench/detect.ts'),
  import('../bench/nms.ts'),
];
for (const mod of await Promise.all(commands)) mod.register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof UserError) {
    process.stderr.write(`fasternet: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
