/**
 * `fasternet classify IMAGE... --model M.onnx [--topk 5] [--json OUT.json]`: ImageNet top-k with a model from
 * `fasternet convert --flavor imagenet` (api/classify.ts).
 */
import type { Command } from 'commander';
import { classifyImages } from '../api/classify.ts';
import { MAX_THREADS, positiveInt } from '../core/options.ts';
import { checkWritable, writeFileAtomic } from '../core/fs.ts';

export function register(program: Command): void {
  program.command('classify')
    .description('ImageNet top-k classification with a model from `fasternet convert --flavor imagenet`')
    .argument('<images...>', 'image files (JPEG, PNG, WebP, ...)')
    .requiredOption('--model <file>', 'ONNX model')
    .option('--topk <k>', 'classes to report per image', '5')
    .option('--json <file>', 'write [{"file", "top": [{"index", "score"}]}] here')
    .option('--threads <n>', 'ONNX Runtime intra-op threads', '2')
    .option('--auto-orient', 'rotate images by their EXIF orientation (the official evaluation does not)')
    .action(async (images: string[], opts: { model: string; topk: string; json?: string; threads: string; autoOrient?: boolean }) => {
      if (opts.json) checkWritable(opts.json, '--json');
      let failed = 0;
      const results = await classifyImages(opts.model, images, {
        topk: positiveInt('--topk', opts.topk), threads: positiveInt('--threads', opts.threads, MAX_THREADS), autoOrient: opts.autoOrient,
        onError: (_file, message) => {
          failed++;
          process.stderr.write(`fasternet classify: ${message}\n`);
        },
      });
      for (const r of results) {
        process.stdout.write(`${r.file}: ${r.top.map((t) => `${t.index} (${t.score.toFixed(4)})`).join(', ')}\n`);
      }
      if (opts.json) await writeFileAtomic(opts.json, `${JSON.stringify(results, null, 1)}\n`);
      if (failed > 0) {
        process.stderr.write(`fasternet classify: ${failed} of ${images.length} inputs failed\n`);
        process.exitCode = 1;
      }
    });
}
