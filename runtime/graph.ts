/**
 * A small ONNX graph builder. A Graph collects nodes and initializers; op helpers append one node and return
 * the name of its output value, so model code reads like a PyTorch forward():
 *
 *   const g = createGraph();
 *   let x = addInput(g, 'input', ['N', 3, 'H', 'W']);
 *   x = convBn(g, x, sd, 'patch_embed.proj', 'patch_embed.norm', { kernel: 4, stride: 4 });
 *   addOutput(g, x, 'logits');
 *   const bytes = serializeModel(g, { metadata });
 *
 * Value and node names follow the PyTorch module names, which makes ORT profiles readable. When the input has
 * static dims, shapes are tracked through the helpers and conv/gemm multiply-accumulates are counted (g.macs),
 * which is where the benchmark's FLOP counts come from.
 */
import { numel, type FloatTensor, type StateDict, type Tensor } from '../core/tensor.ts';
import { AttributeType, DataType, ModelProto } from './onnx_proto.ts';
import { UserError } from '../core/errors.ts';

/** Attribute values are tagged so that a float attribute equal to 1 is still written as FLOAT. */
export type Attr =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string };

export const attr = {
  int: (value: number): Attr => ({ kind: 'int', value }),
  float: (value: number): Attr => ({ kind: 'float', value }),
  ints: (value: number[]): Attr => ({ kind: 'ints', value }),
  floats: (value: number[]): Attr => ({ kind: 'floats', value }),
  string: (value: string): Attr => ({ kind: 'string', value }),
};

export interface GraphNode {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
  domain?: string;
}

export type Dim = number | string;

export interface Graph {
  name: string;
  opset: number;
  nodes: GraphNode[];
  initializers: Map<string, Tensor>;
  inputs: Array<{ name: string; dims: Dim[]; elemType: number }>;
  outputs: Array<{ name: string; dims?: Dim[]; elemType: number }>;
  /** Static shapes of values, where known (input dims all numbers). */
  shapes: Map<string, number[]>;
  /** Multiply-accumulates of Conv and Gemm nodes whose shapes are known. */
  macs: number;
  /** Parameters stored as float initializers (after BatchNorm folding). */
  params: number;
  used: Set<string>;
}

export function createGraph(name = 'main', opset = 17): Graph {
  return {
    name, opset, nodes: [], initializers: new Map(), inputs: [], outputs: [], shapes: new Map(),
    macs: 0, params: 0, used: new Set(),
  };
}

/** A value name not used yet: `base`, else `base_1`, `base_2`, ... */
export function uniqueName(g: Graph, base: string): string {
  let name = base;
  for (let i = 1; g.used.has(name); i++) name = `${base}_${i}`;
  g.used.add(name);
  return name;
}

export function addInput(g: Graph, name: string, dims: Dim[], elemType: number = DataType.FLOAT): string {
  if (g.used.has(name)) throw new Error(`graph value ${name} already exists`);
  g.used.add(name);
  g.inputs.push({ name, dims, elemType });
  if (dims.every((d) => typeof d === 'number')) g.shapes.set(name, dims as number[]);
  return name;
}

/**
 * Marks `value` as a graph output named `name` (an Identity node renames it when the names differ). `dims`
 * (symbolic names allowed) declare its shape where static shapes are not tracked; ONNX checkers want one.
 */
export function addOutput(g: Graph, value: string, name = value, dims?: Dim[], elemType: number = DataType.FLOAT): string {
  let out = value;
  if (name !== value) {
    if (g.used.has(name)) throw new Error(`graph value ${name} already exists`);
    g.used.add(name);
    g.nodes.push({ opType: 'Identity', name, inputs: [value], outputs: [name], attrs: {} });
    const s = g.shapes.get(value);
    if (s) g.shapes.set(name, s);
    out = name;
  }
  g.outputs.push({ name: out, dims: g.shapes.get(out) ?? dims, elemType });
  return out;
}

export function addInitializer(g: Graph, name: string, t: Tensor): string {
  const n = uniqueName(g, name);
  g.initializers.set(n, t);
  if (t.data instanceof Float32Array) g.params += t.data.length;
  return n;
}

export function constInt64(g: Graph, name: string, values: number[]): string {
  return addInitializer(g, name, { shape: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
}

export function constFloat(g: Graph, name: string, values: number[], shape = [values.length]): string {
  const n = uniqueName(g, name);
  g.initializers.set(n, { shape, data: Float32Array.from(values) });
  return n;
}

/** Appends one node; returns its output value names (named after `name`, or `name:k` for k > 0). */
export function addNode(
  g: Graph, opType: string, inputs: string[], attrs: Record<string, Attr> = {},
  opts: { name?: string; outputs?: number; domain?: string } = {},
): string[] {
  const nodeName = uniqueName(g, opts.name ?? opType);
  const nOut = opts.outputs ?? 1;
  const outputs = [nodeName];
  for (let k = 1; k < nOut; k++) outputs.push(uniqueName(g, `${nodeName}:${k}`));
  g.nodes.push({ opType, name: nodeName, inputs, outputs, attrs, domain: opts.domain });
  return outputs;
}

function sameShape(g: Graph, from: string, to: string): string {
  const s = g.shapes.get(from);
  if (s) g.shapes.set(to, s);
  return to;
}

// ---------------------------------------------------------------------------------------------------------
// Parameters

function floatParam(sd: StateDict, key: string): FloatTensor {
  const t = sd.get(key);
  if (!t) throw new UserError(`checkpoint has no ${key}`);
  if (!(t.data instanceof Float32Array)) throw new UserError(`checkpoint tensor ${key} is not floating point`);
  return t as FloatTensor;
}

export { floatParam as param };

export interface BatchNormParams {
  weight: Float32Array;
  bias: Float32Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
  eps: number;
}

export function batchNormParams(sd: StateDict, prefix: string, eps = 1e-5): BatchNormParams {
  return {
    weight: floatParam(sd, `${prefix}.weight`).data,
    bias: floatParam(sd, `${prefix}.bias`).data,
    runningMean: floatParam(sd, `${prefix}.running_mean`).data,
    runningVar: floatParam(sd, `${prefix}.running_var`).data,
    eps,
  };
}

/** Per-channel scale and shift of an eval-mode BatchNorm: y = x * scale + shift (computed in float64). */
export function batchNormAffine(bn: BatchNormParams): { scale: Float64Array; shift: Float64Array } {
  const c = bn.weight.length;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    scale[i] = bn.weight[i] / Math.sqrt(bn.runningVar[i] + bn.eps);
    shift[i] = bn.bias[i] - bn.runningMean[i] * scale[i];
  }
  return { scale, shift };
}

/** Folds an eval-mode BatchNorm into the conv before it: W' = W * s, b' = b * s + shift. */
export function foldBatchNorm(weight: FloatTensor, bias: FloatTensor | undefined, bn: BatchNormParams): {
  weight: FloatTensor; bias: FloatTensor;
} {
  const cout = weight.shape[0];
  if (bn.weight.length !== cout) {
    throw new UserError(`BatchNorm has ${bn.weight.length} channels, the conv before it has ${cout} outputs`);
  }
  const { scale, shift } = batchNormAffine(bn);
  const per = weight.data.length / cout;
  const w = new Float32Array(weight.data.length);
  const b = new Float32Array(cout);
  for (let o = 0; o < cout; o++) {
    for (let k = 0; k < per; k++) w[o * per + k] = weight.data[o * per + k] * scale[o];
    b[o] = (bias ? bias.data[o] : 0) * scale[o] + shift[o];
  }
  return { weight: { shape: weight.shape.slice(), data: w }, bias: { shape: [cout], data: b } };
}

// ---------------------------------------------------------------------------------------------------------
// Ops

export interface ConvOptions {
  stride?: number;
  pad?: number;
  dilation?: number;
  group?: number;
  name?: string;
}

/** Conv with the given weight [Cout, Cin/group, kh, kw] and optional bias. */
export function conv(g: Graph, x: string, weight: FloatTensor, bias: FloatTensor | undefined, o: ConvOptions = {}): string {
  const [cout, cinG, kh, kw] = weight.shape;
  const stride = o.stride ?? 1, pad = o.pad ?? 0, dilation = o.dilation ?? 1, group = o.group ?? 1;
  const name = o.name ?? 'conv';
  const inputs = [x, addInitializer(g, `${name}.weight`, weight)];
  if (bias) inputs.push(addInitializer(g, `${name}.bias`, bias));
  const attrs: Record<string, Attr> = {
    kernel_shape: attr.ints([kh, kw]),
    strides: attr.ints([stride, stride]),
    pads: attr.ints([pad, pad, pad, pad]),
    dilations: attr.ints([dilation, dilation]),
    group: attr.int(group),
  };
  const [y] = addNode(g, 'Conv', inputs, attrs, { name });
  const s = g.shapes.get(x);
  if (s) {
    if (s[1] !== cinG * group) {
      throw new UserError(`${name}: input has ${s[1]} channels, weight expects ${cinG * group}`);
    }
    const oh = Math.floor((s[2] + 2 * pad - dilation * (kh - 1) - 1) / stride) + 1;
    const ow = Math.floor((s[3] + 2 * pad - dilation * (kw - 1) - 1) / stride) + 1;
    g.shapes.set(y, [s[0], cout, oh, ow]);
    g.macs += s[0] * cout * oh * ow * cinG * kh * kw;
  }
  return y;
}

/** Conv `convKey` (bias optional) from the state dict, with BatchNorm `bnKey` folded in when given. */
export function convBn(
  g: Graph, x: string, sd: StateDict, convKey: string, bnKey: string | undefined,
  o: ConvOptions & { bnEps?: number } = {},
): string {
  const w = floatParam(sd, `${convKey}.weight`);
  const b = sd.has(`${convKey}.bias`) ? floatParam(sd, `${convKey}.bias`) : undefined;
  const folded = bnKey ? foldBatchNorm(w, b, batchNormParams(sd, bnKey, o.bnEps)) : { weight: w, bias: b };
  return conv(g, x, folded.weight, folded.bias, { ...o, name: o.name ?? convKey });
}

/** A standalone eval-mode BatchNorm (one that has no conv right before it to fold into). */
export function batchNorm(g: Graph, x: string, sd: StateDict, bnKey: string, eps = 1e-5): string {
  const bn = batchNormParams(sd, bnKey, eps);
  const [y] = addNode(g, 'BatchNormalization', [
    x,
    constFloat(g, `${bnKey}.weight`, Array.from(bn.weight)),
    constFloat(g, `${bnKey}.bias`, Array.from(bn.bias)),
    constFloat(g, `${bnKey}.running_mean`, Array.from(bn.runningMean)),
    constFloat(g, `${bnKey}.running_var`, Array.from(bn.runningVar)),
  ], { epsilon: attr.float(eps) }, { name: bnKey });
  return sameShape(g, x, y);
}

export function relu(g: Graph, x: string, name = 'relu'): string {
  return sameShape(g, x, addNode(g, 'Relu', [x], {}, { name })[0]);
}

/**
 * Exact (erf) GELU as PyTorch's nn.GELU(): 0.5 * x * (1 + erf(x / sqrt 2)). Written with opset-13 ops so that
 * every ONNX runtime runs it; ORT's `all` optimization level fuses the pattern into one Gelu kernel.
 */
export function gelu(g: Graph, x: string, name = 'gelu'): string {
  const div = addNode(g, 'Div', [x, constFloat(g, `${name}.sqrt2`, [Math.SQRT2], [])], {}, { name: `${name}.div` })[0];
  const erf = addNode(g, 'Erf', [div], {}, { name: `${name}.erf` })[0];
  const add1 = addNode(g, 'Add', [erf, constFloat(g, `${name}.one`, [1], [])], {}, { name: `${name}.add` })[0];
  const mul = addNode(g, 'Mul', [x, add1], {}, { name: `${name}.mul` })[0];
  const y = addNode(g, 'Mul', [mul, constFloat(g, `${name}.half`, [0.5], [])], {}, { name })[0];
  return sameShape(g, x, y);
}

export function activation(g: Graph, x: string, kind: 'relu' | 'gelu', name: string): string {
  return kind === 'relu' ? relu(g, x, name) : gelu(g, x, name);
}

export function add(g: Graph, a: string, b: string, name = 'add'): string {
  return sameShape(g, a, addNode(g, 'Add', [a, b], {}, { name })[0]);
}

/** Splits along `axis` into pieces of the given sizes. */
export function split(g: Graph, x: string, sizes: number[], axis = 1, name = 'split'): string[] {
  const outs = addNode(g, 'Split', [x, constInt64(g, `${name}.split`, sizes)], { axis: attr.int(axis) },
    { name, outputs: sizes.length });
  const s = g.shapes.get(x);
  if (s) outs.forEach((o, i) => { const t = s.slice(); t[axis] = sizes[i]; g.shapes.set(o, t); });
  return outs;
}

export function concat(g: Graph, xs: string[], axis = 1, name = 'concat'): string {
  const [y] = addNode(g, 'Concat', xs, { axis: attr.int(axis) }, { name });
  const ss = xs.map((x) => g.shapes.get(x));
  if (ss.every((s) => s)) {
    const t = ss[0]!.slice();
    t[axis] = ss.reduce((acc, s) => acc + s![axis], 0);
    g.shapes.set(y, t);
  }
  return y;
}

/** x[:, start:end] along `axis` (Slice with constant starts/ends). */
export function slice(g: Graph, x: string, start: number, end: number, axis = 1, name = 'slice'): string {
  const [y] = addNode(g, 'Slice', [
    x, constInt64(g, `${name}.starts`, [start]), constInt64(g, `${name}.ends`, [end]), constInt64(g, `${name}.axes`, [axis]),
  ], {}, { name });
  const s = g.shapes.get(x);
  if (s) { const t = s.slice(); t[axis] = Math.min(end, s[axis]) - start; g.shapes.set(y, t); }
  return y;
}

export function globalAveragePool(g: Graph, x: string, name = 'avgpool'): string {
  const [y] = addNode(g, 'GlobalAveragePool', [x], {}, { name });
  const s = g.shapes.get(x);
  if (s) g.shapes.set(y, [s[0], s[1], 1, 1]);
  return y;
}

export function maxPool(g: Graph, x: string, kernel: number, stride: number, pad: number, name = 'maxpool'): string {
  const [y] = addNode(g, 'MaxPool', [x], {
    kernel_shape: attr.ints([kernel, kernel]), strides: attr.ints([stride, stride]), pads: attr.ints([pad, pad, pad, pad]),
  }, { name });
  const s = g.shapes.get(x);
  if (s) {
    const o = (n: number) => Math.floor((n + 2 * pad - kernel) / stride) + 1;
    g.shapes.set(y, [s[0], s[1], o(s[2]), o(s[3])]);
  }
  return y;
}

export function flatten(g: Graph, x: string, axis = 1, name = 'flatten'): string {
  const [y] = addNode(g, 'Flatten', [x], { axis: attr.int(axis) }, { name });
  const s = g.shapes.get(x);
  if (s) g.shapes.set(y, [numel(s.slice(0, axis)), numel(s.slice(axis))]);
  return y;
}

/** nn.Linear: y = x W^T + b with W [out, in] as stored by PyTorch. */
export function linear(g: Graph, x: string, weight: FloatTensor, bias: FloatTensor | undefined, name = 'linear'): string {
  const inputs = [x, addInitializer(g, `${name}.weight`, weight)];
  if (bias) inputs.push(addInitializer(g, `${name}.bias`, bias));
  const [y] = addNode(g, 'Gemm', inputs, { transB: attr.int(1), alpha: attr.float(1), beta: attr.float(1) }, { name });
  const s = g.shapes.get(x);
  if (s) { g.shapes.set(y, [s[0], weight.shape[0]]); g.macs += s[0] * weight.shape[0] * weight.shape[1]; }
  return y;
}

export function softmax(g: Graph, x: string, axis = -1, name = 'softmax'): string {
  return sameShape(g, x, addNode(g, 'Softmax', [x], { axis: attr.int(axis) }, { name })[0]);
}

// ---------------------------------------------------------------------------------------------------------
// Serialization

function tensorProto(name: string, t: Tensor): Record<string, unknown> {
  const d = t.data;
  const dataType = d instanceof Float32Array ? DataType.FLOAT
    : d instanceof BigInt64Array ? DataType.INT64
    : d instanceof Int32Array ? DataType.INT32
    : DataType.UINT8;
  // raw_data is little-endian, as typed arrays are on every platform Node runs on.
  const rawData = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return { name, dims: t.shape, dataType, rawData };
}

function attributeProto(name: string, a: Attr): Record<string, unknown> {
  switch (a.kind) {
    case 'int': return { name, type: AttributeType.INT, i: a.value };
    case 'float': return { name, type: AttributeType.FLOAT, f: a.value };
    case 'ints': return { name, type: AttributeType.INTS, ints: a.value };
    case 'floats': return { name, type: AttributeType.FLOATS, floats: a.value };
    case 'string': return { name, type: AttributeType.STRING, s: new TextEncoder().encode(a.value) };
  }
}

function valueInfo(name: string, elemType: number, dims?: Dim[]): Record<string, unknown> {
  const tensorType: Record<string, unknown> = { elemType };
  if (dims) tensorType.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType } };
}

export interface SerializeOptions {
  metadata?: Record<string, string>;
  producerName?: string;
  docString?: string;
}

/** ONNX ModelProto bytes for the graph (IR version 8, default domain at g.opset). */
export function serializeModel(g: Graph, o: SerializeOptions = {}): Uint8Array {
  const model = {
    irVersion: 8,
    producerName: o.producerName ?? 'fasternet',
    producerVersion: '0.1.0',
    docString: o.docString ?? '',
    opsetImport: [{ domain: '', version: g.opset }],
    metadataProps: Object.entries(o.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: g.name,
      node: g.nodes.map((n) => ({
        name: n.name, opType: n.opType, input: n.inputs, output: n.outputs, domain: n.domain ?? '',
        attribute: Object.entries(n.attrs).map(([k, a]) => attributeProto(k, a)),
      })),
      initializer: [...g.initializers].map(([name, t]) => tensorProto(name, t)),
      input: g.inputs.map((i) => valueInfo(i.name, i.elemType, i.dims)),
      output: g.outputs.map((o2) => valueInfo(o2.name, o2.elemType, o2.dims)),
    },
  };
  const err = ModelProto.verify(model);
  if (err) throw new Error(`invalid ONNX model: ${err}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

// ---------------------------------------------------------------------------------------------------------
// Layout ops

export function transpose(g: Graph, x: string, perm: number[], name = 'transpose'): string {
  const [y] = addNode(g, 'Transpose', [x], { perm: attr.ints(perm) }, { name });
  const s = g.shapes.get(x);
  if (s) g.shapes.set(y, perm.map((p) => s[p]));
  return y;
}

/** x @ W^T (+ b) over the last axis, with a PyTorch [out, in(, 1, 1)] weight; counts MACs when shapes are known. */
export function matmulLinear(g: Graph, x: string, weight: FloatTensor, bias: FloatTensor | undefined, name = 'matmul'): string {
  const [out, inp] = weight.shape;
  const wt = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) wt[i * out + o] = weight.data[o * inp + i];
  let [y] = addNode(g, 'MatMul', [x, addInitializer(g, `${name}.weight_t`, { shape: [inp, out], data: wt })], {}, { name });
  const s = g.shapes.get(x);
  if (s) {
    const t = s.slice(); t[t.length - 1] = out; g.shapes.set(y, t);
    g.macs += numel(s.slice(0, -1)) * out * inp;
  }
  if (bias) y = sameShape(g, y, addNode(g, 'Add', [y, addInitializer(g, `${name}.bias`, { shape: [out], data: bias.data })], {}, { name: `${name}.add_bias` })[0]);
  return y;
}

// ---------------------------------------------------------------------------------------------------------
// Float16 storage

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half bits of a float32, rounded to nearest even (as numpy's astype(float16)); overflow -> inf. */
export function float16Bits(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the right rounding (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** The float32 value of IEEE half bits. */
export function float16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

const FLOAT16_MAX = 65504;

/**
 * Rewrites ONNX ModelProto bytes so that float32 initializers of at least `minElements` values are stored as
 * float16, each followed by a Cast back to float32 under its old name (the graph still computes in float32;
 * ORT constant-folds the Casts at load, so only the file halves). Tensors with values beyond float16's range
 * stay float32. Returns the new bytes and how many initializers were converted.
 */
export function halfInitializers(bytes: Uint8Array, o: { minElements?: number } = {}): { bytes: Uint8Array; converted: number } {
  const minElements = o.minElements ?? 256;
  const model = ModelProto.decode(bytes) as unknown as {
    graph: { node: Array<Record<string, unknown>>; initializer: Array<{ name: string; dims: Array<number | { toNumber(): number }>; dataType: number; rawData?: Uint8Array; floatData?: number[] }> };
  };
  const casts: Array<Record<string, unknown>> = [];
  let converted = 0;
  for (const t of model.graph.initializer) {
    if (t.dataType !== DataType.FLOAT) continue;
    let f: Float32Array;
    if (t.rawData && t.rawData.length > 0) f = new Float32Array(Uint8Array.from(t.rawData).buffer); // Buffer.slice shares memory: copy, aligned
    else if (t.floatData && t.floatData.length > 0) f = Float32Array.from(t.floatData);
    else continue;
    if (f.length < minElements) continue;
    let fits = true;
    for (let i = 0; i < f.length; i++) if (!(Math.abs(f[i]) <= FLOAT16_MAX)) { fits = false; break; }
    if (!fits) continue;
    const h = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) h[i] = float16Bits(f[i]);
    const name = t.name;
    t.name = `${name}.fp16`;
    t.dataType = DataType.FLOAT16;
    t.rawData = new Uint8Array(h.buffer);
    t.floatData = [];
    casts.push({ name: `${name}.cast`, opType: 'Cast', input: [t.name], output: [name], domain: '', attribute: [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }] });
    converted++;
  }
  model.graph.node = [...casts, ...model.graph.node];
  return { bytes: ModelProto.encode(model as unknown as Record<string, unknown>).finish(), converted };
}
