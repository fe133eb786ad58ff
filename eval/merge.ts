/**
 * Results of a sharded run put back together (`fasternet eval --results A B C`): each shard's COCO results
 * array, concatenated in image-id order. Shards split the images, so an image in two files means the shards
 * overlap (the same shard run twice, or two splits mixed) and is refused; GT images found in no file are
 * reported, since a COCO results array cannot tell a shard that never ran from images with no detections.
 */
import { UserError } from '../core/errors.ts';
import { isRecord, readJsonFile } from './coco.ts';

export interface MergedResults {
  /** All entries, stable-sorted by image_id (each file's own order kept within an image). */
  results: unknown[];
  /** GT image ids that no file has an entry for. */
  missing: number[];
}

export function mergeResultFiles(files: string[], gtImageIds: number[]): MergedResults {
  const owner = new Map<number, string>();
  const all: Array<{ id: number; entry: unknown }> = [];
  for (const file of files) {
    const list = readJsonFile(file, 'results');
    if (!Array.isArray(list)) throw new UserError(`--results ${file} is not a JSON array of COCO results entries`);
    list.forEach((entry, k) => {
      const id = isRecord(entry) ? entry.image_id : undefined;
      if (typeof id !== 'number' || !Number.isInteger(id)) throw new UserError(`--results ${file}: entry ${k} has no integer image_id (detect --gt ANN.json writes image ids)`);
      const other = owner.get(id);
      if (other !== undefined && other !== file) throw new UserError(`--results ${other} and ${file} both hold image ${id}: the shards overlap`);
      owner.set(id, file);
      all.push({ id, entry });
    });
  }
  all.sort((a, b) => a.id - b.id); // Array.prototype.sort is stable
  return { results: all.map((e) => e.entry), missing: gtImageIds.filter((id) => !owner.has(id)) };
}
