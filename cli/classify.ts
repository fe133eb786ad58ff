/**
 * `fasternet classify IMAGE... --model M.onnx [--topk 5] [--json OUT.json|-] [--quiet]`: ImageNet top-k with a
 * model from `fasternet convert --flavor imagenet` (api/classify.ts), printed as `name [index] (score)`.
 */
import type { Command } from 'commander';
import { classifyImages } from '../api/classify.ts';
import { STDOUT, checkOutputFile, messages, writeOutput } from '../core/output.ts';
import { MAX_THREADS, positiveInt } from '../core/options.ts';

export function register(program: Command): void {
  program.command('classify')
    .description('ImageNet top-k classification with a model from `fasternet convert --flavor imagenet`')
    .argument('<images...>', 'image files (JPEG, PNG, WebP, ...)')
    .requiredOption('--model <file>', 'ONNX model')
    .option('--topk <k>', 'classes to report per image', '5')
    .option('--json <file>', 'write [{"file", "top": [{"index", "name", "score"}]}] here (- for stdout)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads', '2')
    .option('--quiet', 'no per-image lines (errors are still printed)')
    .option('--auto-orient', 'rotate images by their EXIF orientation (the official evaluation does not)')
    .action(async (images: string[], opts: { model: string; topk: string; json?: string; threads: string; autoOrient?: boolean; quiet?: boolean }) => {
      const topk = positiveInt('--topk', opts.topk);
      const threads = positiveInt('--threads', opts.threads, MAX_THREADS);
      checkOutputFile('--json', opts.json);
      const say = messages({ quiet: opts.quiet, dataOnStdout: opts.json === STDOUT });
      let failed = 0;
      const results = await classifyImages(opts.model, images, {
        topk, threads, autoOrient: opts.autoOrient,
        onError: (_file, message) => {
          failed++;
          process.stderr.write(`fasternet classify: ${message}\n`);
        },
      });
      for (const r of results) {
        say(`${r.file}: ${r.top.map((t) => `${t.name ?? t.index} [${t.index}] (${t.score.toFixed(4)})`).join(', ')}`);
      }
      if (opts.json) writeOutput('--json', opts.json, `${JSON.stringify(results, null, 1)}\n`);
      if (failed > 0) {
        process.stderr.write(`fasternet classify: ${failed} of ${images.length} inputs failed\n`);
        process.exitCode = 1;
      }
    });
}
