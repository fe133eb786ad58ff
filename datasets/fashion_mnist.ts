/**
 * Reader for the Fashion-MNIST IDX files (Zalando Research, MIT licence) as shipped by Debian's
 * `dataset-fashion-mnist` package: gzipped IDX3 images (N x 28 x 28 uint8) and IDX1 labels.
 */
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Class names in label order; COCO category id = label + 1. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export type FashionSplit = 'train' | 't10k';

export interface ItemSet {
  /** Which Fashion-MNIST file the items came from. */
  split: FashionSplit;
  /** `count` images of `rows` x `cols` uint8 pixels, row-major, one after another. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
  /** Original index in the Fashion-MNIST file of each item (identity unless a subset was taken). */
  indices: Int32Array;
}

function maybeGunzip(buf: Uint8Array): Uint8Array {
  return buf[0] === 0x1f && buf[1] === 0x8b ? new Uint8Array(gunzipSync(buf)) : buf;
}

/** Parse an IDX file (optionally gzipped) holding unsigned bytes; returns its dims and payload. */
export function parseIdx(raw: Uint8Array): { dims: number[]; data: Uint8Array } {
  const buf = maybeGunzip(raw);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new Error('not an IDX file: bad magic number');
  if (buf[2] !== 0x08) throw new Error(`IDX element type 0x${buf[2].toString(16)} is not unsigned byte`);
  const ndim = buf[3];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const start = 4 + 4 * ndim;
  const n = dims.reduce((a, b) => a * b, 1);
  if (buf.length - start !== n) throw new Error(`IDX payload has ${buf.length - start} bytes, dims [${dims}] need ${n}`);
  return { dims, data: buf.subarray(start) };
}

/** An item set from raw (optionally gzipped) IDX image and label files. */
export function itemSetFromIdx(split: FashionSplit, imagesIdx: Uint8Array, labelsIdx: Uint8Array): ItemSet {
  const img = parseIdx(imagesIdx);
  const lbl = parseIdx(labelsIdx);
  if (img.dims.length !== 3 || lbl.dims.length !== 1 || img.dims[0] !== lbl.dims[0]) {
    throw new Error(`Fashion-MNIST ${split}: image dims [${img.dims}] do not match label dims [${lbl.dims}]`);
  }
  const count = img.dims[0];
  const indices = new Int32Array(count);
  for (let i = 0; i < count; i++) indices[i] = i;
  return { split, images: img.data, labels: lbl.data, count, rows: img.dims[1], cols: img.dims[2], indices };
}

/** Load one Fashion-MNIST split (60k 'train' or 10k 't10k' items). */
export function loadFashionMnist(split: FashionSplit, dir = FASHION_MNIST_DIR): ItemSet {
  const imgPath = join(dir, `${split}-images-idx3-ubyte.gz`);
  const lblPath = join(dir, `${split}-labels-idx1-ubyte.gz`);
  if (!existsSync(imgPath)) {
    throw new Error(`Fashion-MNIST not found at ${imgPath} (apt-get install -y dataset-fashion-mnist)`);
  }
  return itemSetFromIdx(split, readFileSync(imgPath), readFileSync(lblPath));
}

/** A copy of the items at the given positions (keeps their original Fashion-MNIST indices). */
export function subsetItems(set: ItemSet, positions: readonly number[]): ItemSet {
  const px = set.rows * set.cols;
  const images = new Uint8Array(positions.length * px);
  const labels = new Uint8Array(positions.length);
  const indices = new Int32Array(positions.length);
  positions.forEach((p, k) => {
    if (p < 0 || p >= set.count) throw new Error(`item position ${p} out of range 0..${set.count - 1}`);
    images.set(set.images.subarray(p * px, (p + 1) * px), k * px);
    labels[k] = set.labels[p];
    indices[k] = set.indices[p];
  });
  return { split: set.split, images, labels, count: positions.length, rows: set.rows, cols: set.cols, indices };
}
