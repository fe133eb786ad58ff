/**
 * Image decoding for inference, matching what PIL (and cv2) hand to the official pipelines:
 *  - raw 8-bit RGB, HWC; embedded ICC profiles are NOT applied (sharp would convert to sRGB through them by
 *    default; PIL's Image.open().convert('RGB') and cv2.imread ignore them), alpha is dropped (PIL
 *    convert('RGB') drops it without compositing), grey is replicated to three channels;
 *  - EXIF orientation is ignored unless autoOrient is set (PIL does not rotate; mmcv's imread does).
 *  - a pixel limit refuses decompression bombs before decoding.
 * Also the ImageNet evaluation transform of the official repo (resize short side with Pillow bicubic, center
 * crop, ToTensor, Normalize), as torchvision 0.14 computes it.
 */
import type { Metadata } from 'sharp';

type SharpFn = typeof import('sharp').default;
let sharpModule: Promise<SharpFn> | undefined;

/**
 * sharp, loaded on first use: its native library takes about a quarter of a second to load, which
 * `fasternet --help` and a program that imports this package without decoding should not pay.
 */
export function loadSharp(): Promise<SharpFn> {
  return (sharpModule ??= import('sharp').then((m) => m.default));
}
import { readFile } from 'node:fs/promises';
import { UserError } from '../core/errors.ts';
import { roundHalfEven } from '../core/math.ts';
import type { FloatTensor } from '../core/tensor.ts';
import type { CenterCropPreprocess } from '../runtime/metadata.ts';
import type { ImageU8 } from '../core/tensor.ts';
import { resizeBicubicPillow, shortSideSize } from './resize_pillow.ts';


export interface DecodeOptions {
  /** Rotate/flip by the EXIF Orientation tag (default false, like PIL and the official evaluation). */
  autoOrient?: boolean;
  /** Refuse images with more pixels than this (default 89,478,485: PIL's MAX_IMAGE_PIXELS). */
  maxPixels?: number;
}

export const DEFAULT_MAX_PIXELS = 89_478_485;

/** Decodes a JPEG/PNG/WebP/... file or buffer to RGB uint8 HWC. */
export async function decodeImage(input: string | Uint8Array, o: DecodeOptions = {}): Promise<ImageU8> {
  const what = typeof input === 'string' ? input : 'image';
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    try {
      bytes = await readFile(input);
    } catch {
      throw new UserError(`cannot read image ${input}`);
    }
  } else {
    bytes = input;
  }
  const maxPixels = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  const sharp = await loadSharp();
  let meta: Metadata;
  try {
    // Header only, no pixel limit here: an image over the limit is then refused as such below.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw new UserError(`${what} is not a decodable image`);
  }
  if (!meta.width || !meta.height) throw new UserError(`${what} has no dimensions`);
  if (meta.width * meta.height > maxPixels) {
    throw new UserError(`${what} is ${meta.width}x${meta.height} = ${meta.width * meta.height} pixels, over the limit of ${maxPixels} (possible decompression bomb)`);
  }
  try {
    let pipeline = sharp(bytes, { ignoreIcc: true, limitInputPixels: maxPixels, failOn: 'error', autoOrient: o.autoOrient ?? false });
    pipeline = pipeline.removeAlpha().toColourspace('srgb');
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new UserError(`${what}: decoded to ${info.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot decode ${what}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** torchvision CenterCrop on an image at least `crop` in both sides. */
export function centerCrop(img: ImageU8, crop: number): ImageU8 {
  if (img.width < crop || img.height < crop) throw new Error(`image ${img.width}x${img.height} is smaller than crop ${crop}`);
  const top = roundHalfEven((img.height - crop) / 2);
  const left = roundHalfEven((img.width - crop) / 2);
  const cn = img.channels;
  const out = new Uint8Array(crop * crop * cn);
  for (let y = 0; y < crop; y++) {
    const s = ((top + y) * img.width + left) * cn;
    out.set(img.data.subarray(s, s + crop * cn), y * crop * cn);
  }
  return { data: out, width: crop, height: crop, channels: cn };
}

/** ToTensor + Normalize in float32 as torch does: ((v / 255) - mean) / std, CHW. */
export function normalizeToCHW(img: ImageU8, mean: number[], std: number[], scale = 255, bgr = false): Float32Array {
  const { width, height, channels: cn } = img;
  const hw = width * height;
  const out = new Float32Array(cn * hw);
  const m = mean.map(Math.fround), s = std.map(Math.fround), sc = Math.fround(scale);
  for (let c = 0; c < cn; c++) {
    const src = bgr ? cn - 1 - c : c;
    for (let i = 0; i < hw; i++) {
      const v = Math.fround(img.data[i * cn + src] / sc);
      out[c * hw + i] = Math.fround(Math.fround(v - m[c]) / s[c]);
    }
  }
  return out;
}

/** The official ImageNet evaluation transform; returns [3, crop, crop]. */
export function centerCropTransform(img: ImageU8, p: CenterCropPreprocess): FloatTensor {
  const size = shortSideSize(img.width, img.height, p.resize);
  const resized = resizeBicubicPillow(img, size.width, size.height);
  const cropped = centerCrop(resized, p.crop);
  return { shape: [3, p.crop, p.crop], data: normalizeToCHW(cropped, p.mean, p.std, p.scale, p.channels === 'BGR') };
}
