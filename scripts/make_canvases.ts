/**
 * Write a Fashion-MNIST canvases split (PNG images + COCO instances JSON).
 *   npx tsx scripts/make_canvases.ts <val|train> <outDir> [count] [seed]
 * val draws items from the 10k Fashion-MNIST test file, train from the 60k training file.
 * Defaults: val 250 canvases seed 2, train 20000 canvases seed 1.
 */
import { loadFashionMnist } from '../datasets/fashion_mnist.ts';
import { writeSplit } from '../datasets/fashion_canvases.ts';

const [split, out, countArg, seedArg] = process.argv.slice(2);
if ((split !== 'val' && split !== 'train') || !out) {
  console.error('usage: npx tsx scripts/make_canvases.ts <val|train> <outDir> [count] [seed]');
  process.exit(2);
}
const count = countArg ? Number(countArg) : split === 'val' ? 250 : 20000;
const seed = seedArg ? Number(seedArg) : split === 'val' ? 2 : 1;
if (!Number.isInteger(count) || count <= 0 || !Number.isInteger(seed)) {
  console.error(`count and seed must be integers (got ${countArg}, ${seedArg})`);
  process.exit(2);
}
const items = loadFashionMnist(split === 'val' ? 't10k' : 'train');
const t0 = Date.now();
const ds = await writeSplit(out, {
  items,
  count,
  seed,
  description: `Fashion-MNIST canvases, ${split} split (${count} images, seed ${seed})`,
});
console.log(
  `${out}: ${ds.images.length} images, ${ds.annotations.length} instances in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
);
