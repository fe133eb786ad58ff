/** Reading the parity fixtures' pieces: base64 float32 arrays and PNG images. */
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import type { ImageU8 } from '../../core/tensor.ts';

/** A base64 string of little-endian float32 values (as the Python fixture scripts write them). */
export function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** A PNG as 3-channel pixels: RGB, or BGR as cv2.imread(IMREAD_COLOR) returns it. */
export function readPng(path: string, order: 'rgb' | 'bgr'): ImageU8 {
  const png = PNG.sync.read(readFileSync(path));
  const n = png.width * png.height;
  const data = new Uint8Array(n * 3);
  const [r, b] = order === 'rgb' ? [0, 2] : [2, 0];
  for (let i = 0; i < n; i++) {
    data[3 * i] = png.data[4 * i + r];
    data[3 * i + 1] = png.data[4 * i + 1];
    data[3 * i + 2] = png.data[4 * i + b];
  }
  return { data, width: png.width, height: png.height, channels: 3 };
}
