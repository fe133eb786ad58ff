/**
 * `fasternet detect IMAGE... --model M.onnx [--json OUT.json] [--score-thr T]`: Mask R-CNN instance
 * segmentation with a model from `fasternet convert --flavor torchvision|mmdet`. The JSON is a COCO results
 * list: {"file", "category_id", "bbox": [x, y, w, h], "score", "segmentation": {"size", "counts"}} per
 * instance (category_id: COCO id for COCO models, else the 1-based class index).
 */
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { detectInProcess } from '../heads/detect.ts';
import { loadDetector, releaseDetector } from '../heads/mask_rcnn.ts';
import { UserError } from './errors.ts';

export interface CocoResult {
  file: string;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
  segmentation: { size: [number, number]; counts: string | number[] };
}

export async function detectFiles(
  modelPath: string, files: string[], o: { scoreThreshold?: number; threads?: number; onImage?: (file: string, n: number) => void } = {},
): Promise<CocoResult[]> {
  const det = await loadDetector(modelPath, { threads: o.threads });
  const out: CocoResult[] = [];
  try {
    for (const file of files) {
      const r = await detectInProcess(file, { model: det, scoreThreshold: o.scoreThreshold });
      for (const d of r.detections) {
        out.push({ file, category_id: d.categoryId, bbox: d.bbox, score: d.score, segmentation: d.mask });
      }
      o.onImage?.(file, r.detections.length);
    }
  } finally {
    await releaseDetector(det);
  }
  return out;
}

function number01(name: string, v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new UserError(`${name} must be a number in [0, 1], got ${v}`);
  return n;
}

export function register(program: Command): void {
  program.command('detect')
    .description('Mask R-CNN instance segmentation with a model from `fasternet convert --flavor torchvision|mmdet`')
    .argument('<images...>', 'image files (JPEG, PNG, WebP, ...)')
    .requiredOption('--model <file>', 'ONNX model')
    .option('--json <file>', 'write COCO-results entries {"file","category_id","bbox","score","segmentation"} here')
    .option('--score-thr <t>', 'minimum score (default: the model\'s 0.05)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads', '2')
    .action(async (images: string[], opts: { model: string; json?: string; scoreThr?: string; threads: string }) => {
      const threads = Number(opts.threads);
      if (!Number.isInteger(threads) || threads < 1) throw new UserError(`--threads must be a positive integer, got ${opts.threads}`);
      const results = await detectFiles(opts.model, images, {
        scoreThreshold: opts.scoreThr === undefined ? undefined : number01('--score-thr', opts.scoreThr),
        threads,
        onImage: (file, n) => process.stdout.write(`${file}: ${n} instances\n`),
      });
      if (opts.json) {
        try {
          await writeFile(opts.json, JSON.stringify(results));
        } catch (err) {
          throw new UserError(`cannot write ${opts.json}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
      }
    });
}
