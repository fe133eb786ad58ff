/** Plain tensors shared by every stage: a typed array in row-major (C) order plus its shape. */

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

export interface Tensor<D extends TensorData = TensorData> {
  shape: number[];
  data: D;
  /** The dtype the tensor had in its file (float16/bfloat16 are widened to Float32Array on load). */
  sourceDtype?: string;
}

export type FloatTensor = Tensor<Float32Array>;

/** A uint8 tensor standing for (data - zeroPoint) * scale: an int8 model's output left unconverted. */
export interface QuantizedTensor extends Tensor<Uint8Array> {
  scale: number;
  zeroPoint: number;
}

/** A conv (or linear) layer's parameters, BatchNorm already folded where there was one. */
export interface ConvWeights {
  weight: FloatTensor;
  bias?: FloatTensor;
}

/** An 8-bit image as decoders give it. */
export interface ImageU8 {
  /** Interleaved HWC pixels, row-major, no padding. */
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** A checkpoint's parameters by their PyTorch names, in file order. */
export type StateDict = Map<string, Tensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function floatTensor(shape: number[], data?: Float32Array): FloatTensor {
  const n = numel(shape);
  if (data && data.length !== n) throw new Error(`tensor data has ${data.length} values, shape [${shape}] needs ${n}`);
  return { shape, data: data ?? new Float32Array(n) };
}
