/**
 * ImageNet classification with a model written by `fasternet convert --flavor imagenet`, using the
 * preprocessing stored in its metadata (the official evaluation transform). Scores are softmax probabilities.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSession, runSession } from '../runtime/session.ts';
import { isCenterCrop, metadataFromBytes, parseMetadata } from '../runtime/metadata.ts';
import { centerCropTransform, decodeImage } from '../image/decode.ts';
import { UserError } from '../core/errors.ts';
import { packageFile } from '../core/package.ts';

export interface ClassifyResult {
  file: string;
  /** `name`: the ImageNet-1k class name (torchvision's list), for 1000-class models. */
  top: Array<{ index: number; name?: string; score: number }>;
}

let imagenet: string[] | undefined;

/**
 * The ImageNet-1k class names by index, as torchvision lists them (data/imagenet_classes.json, written from
 * torchvision 0.14's `ResNet50_Weights.IMAGENET1K_V1.meta['categories']`).
 */
export function imagenetClassNames(): string[] {
  return (imagenet ??= JSON.parse(readFileSync(packageFile('data/imagenet_classes.json'), 'utf8')) as string[]);
}

/** Softmax (float64) of one row of logits; the k best as {index, score}, ties by lower index. */
export function topkSoftmax(logits: Float32Array, k: number): Array<{ index: number; score: number }> {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const e = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) { e[i] = Math.exp(logits[i] - max); sum += e[i]; }
  const idx = Array.from(e.keys()).sort((a, b) => e[b] - e[a] || a - b);
  return idx.slice(0, Math.min(k, idx.length)).map((index) => ({ index, score: e[index] / sum }));
}

export async function classifyImages(
  modelPath: string, files: string[],
  o: { topk?: number; threads?: number; autoOrient?: boolean; onError?: (file: string, message: string) => void } = {},
): Promise<ClassifyResult[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(modelPath);
  } catch {
    throw new UserError(`cannot read model ${modelPath}`);
  }
  const meta = parseMetadata(metadataFromBytes(bytes, modelPath), modelPath);
  if (meta.flavor !== 'imagenet' || !isCenterCrop(meta.preprocess)) {
    throw new UserError(`${modelPath} is a ${meta.flavor} model; classify needs one converted with --flavor imagenet`);
  }
  const pre = meta.preprocess;
  const session = await createSession(bytes, { threads: o.threads });
  const results: ClassifyResult[] = [];
  try {
    for (const file of files) {
      try {
        const img = await decodeImage(file, { autoOrient: o.autoOrient });
        const x = centerCropTransform(img, pre);
        const out = await runSession(session, { [meta.input]: { shape: [1, ...x.shape], data: x.data } }, [meta.outputs[0]]);
        const logits = out[meta.outputs[0]].data;
        const names = logits.length === 1000 ? imagenetClassNames() : undefined;
        const top = topkSoftmax(logits, o.topk ?? 5).map((t) => (names ? { index: t.index, name: names[t.index], score: t.score } : t));
        results.push({ file, top });
      } catch (err) {
        // With onError, one input's failure is reported (one line) and the batch goes on.
        if (!o.onError) throw err;
        const msg = err instanceof UserError ? err.message : `failed: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
        o.onError(file, msg.includes(file) ? msg : `${file}: ${msg}`);
      }
    }
  } finally {
    await session.release();
  }
  return results;
}
