/**
 * Static post-training int8 quantization of an ONNX graph in standard QDQ form, the form ONNX Runtime's own
 * `quantize_static` writes and its graph optimizer fuses into integer kernels (DQ -> Conv -> Q becomes
 * QLinearConv, DQ -> Gemm becomes QGemm, DQ -> MatMul becomes MatMulIntegerToFloat):
 *   - weights: int8 symmetric per output channel ([-127, 127], zero point 0), stored as int8 initializers
 *     behind a DequantizeLinear with `axis` (opset >= 13); biases int32 at scale x_scale * w_scale[c];
 *   - activations: uint8 asymmetric per tensor, a QuantizeLinear -> DequantizeLinear pair on every input of a
 *     quantized node and on every Conv output (QLinearConv produces uint8, so ORT fuses a Conv only when its
 *     output is quantized). A Conv whose only consumer is a Relu is quantized after the Relu: its range starts
 *     at 0, so the zero point is 0 and ORT drops the Relu.
 * The file still runs in any ONNX Runtime without custom ops. Ranges come from calibration
 * (runtime/calibrate.ts); this module only plans and rewrites graphs.
 */
import { AttributeType, ModelProto } from './onnx_proto.ts';
import { float16Value } from './graph.ts';

/** onnx.TensorProto.DataType codes this module reads or writes. */
const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, FLOAT16: 10 } as const;

type Int64 = number | { toNumber(): number };
const num = (v: Int64 | undefined | null): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());

export interface OnnxAttr { name: string; type?: number; i?: Int64; f?: number; ints?: Int64[]; s?: Uint8Array }
export interface OnnxNode { name?: string; opType: string; input: string[]; output: string[]; attribute?: OnnxAttr[]; domain?: string }
export interface OnnxTensor { name: string; dims: Int64[]; dataType: number; rawData?: Uint8Array; floatData?: number[]; int32Data?: number[] }
export interface OnnxValueInfo { name: string; type?: unknown }
export interface OnnxModel {
  graph: { node: OnnxNode[]; initializer: OnnxTensor[]; input: OnnxValueInfo[]; output: OnnxValueInfo[]; valueInfo?: OnnxValueInfo[] };
  opsetImport: Array<{ domain?: string; version: Int64 }>;
  metadataProps?: Array<{ key: string; value: string }>;
}

export function decodeModel(bytes: Uint8Array): OnnxModel {
  return ModelProto.decode(bytes) as unknown as OnnxModel;
}

export function encodeModel(m: OnnxModel): Uint8Array {
  return ModelProto.encode(m as unknown as Record<string, unknown>).finish();
}

function attrOf(n: OnnxNode, name: string): OnnxAttr | undefined {
  return n.attribute?.find((a) => a.name === name);
}

const intAttr = (n: OnnxNode, name: string, dflt: number): number => { const a = attrOf(n, name); return a ? num(a.i) : dflt; };
const floatAttr = (n: OnnxNode, name: string, dflt: number): number => { const a = attrOf(n, name); return a?.f ?? dflt; };

/** A float constant of the graph: a float32 initializer, or a float16 one behind a Cast to float. */
interface Constant { dims: number[]; data: Float32Array; sources: string[] }

function tensorFloats(t: OnnxTensor): Float32Array | undefined {
  if (t.dataType === DT.FLOAT) {
    if (t.rawData && t.rawData.length) return new Float32Array(Uint8Array.from(t.rawData).buffer); // copy: aligned, unshared
    if (t.floatData?.length) return Float32Array.from(t.floatData);
    return new Float32Array(0);
  }
  if (t.dataType === DT.FLOAT16 && t.rawData) {
    const h = new Uint16Array(Uint8Array.from(t.rawData).buffer);
    return Float32Array.from(h, float16Value);
  }
  return undefined;
}

function floatConstants(m: OnnxModel): Map<string, Constant> {
  const inits = new Map(m.graph.initializer.map((t) => [t.name, t]));
  const out = new Map<string, Constant>();
  for (const t of m.graph.initializer) {
    if (t.dataType !== DT.FLOAT) continue;
    out.set(t.name, { dims: t.dims.map(num), data: tensorFloats(t)!, sources: [t.name] });
  }
  // `convert --half` stores weights as float16 initializers, each behind a Cast to float32.
  for (const n of m.graph.node) {
    if (n.opType !== 'Cast' || intAttr(n, 'to', 0) !== DT.FLOAT) continue;
    const t = inits.get(n.input[0]);
    if (t?.dataType === DT.FLOAT16) out.set(n.output[0], { dims: t.dims.map(num), data: tensorFloats(t)!, sources: [t.name] });
  }
  return out;
}

/** A node that can run in int8: its weight (and bias) are constants. */
export interface QuantNode {
  name: string;
  opType: 'Conv' | 'Gemm' | 'MatMul';
  index: number;
  activation: string;
  weight: string;
  bias?: string;
  /** Axis of the output channels in the stored weight. */
  axis: number;
  output: string;
}

function quantizableNode(n: OnnxNode, index: number, consts: Map<string, Constant>): QuantNode | undefined {
  const name = n.name || `${n.opType}_${index}`;
  const [x, w, b] = n.input;
  if (!x || consts.has(x) || !w || !consts.has(w) || (n.domain ?? '') !== '') return undefined;
  const wd = consts.get(w)!.dims;
  if (b && !consts.has(b)) return undefined;
  if (n.opType === 'Conv' && wd.length >= 3) return { name, opType: 'Conv', index, activation: x, weight: w, bias: b || undefined, axis: 0, output: n.output[0] };
  if (n.opType === 'Gemm' && wd.length === 2 && intAttr(n, 'transA', 0) === 0 && floatAttr(n, 'alpha', 1) === 1 && floatAttr(n, 'beta', 1) === 1) {
    const axis = intAttr(n, 'transB', 0) === 1 ? 0 : 1;
    // QGemm takes a bias only as a vector over the output columns.
    if (b && !(consts.get(b)!.dims.length === 1 && consts.get(b)!.dims[0] === wd[axis])) return undefined;
    return { name, opType: 'Gemm', index, activation: x, weight: w, bias: b || undefined, axis, output: n.output[0] };
  }
  if (n.opType === 'MatMul' && wd.length === 2) return { name, opType: 'MatMul', index, activation: x, weight: w, axis: 1, output: n.output[0] };
  return undefined;
}

export interface KeptNode { name: string; opType: string; reason: string }

export interface QuantPlan {
  nodes: QuantNode[];
  /** Activation tensors that get a QuantizeLinear/DequantizeLinear pair (and need a calibrated range). */
  tensors: string[];
  /**
   * Outputs of value-preserving ops (nearest Resize, MaxPool, Transpose) on a quantized tensor, with the tensor
   * whose scale and zero point they share: with equal parameters on both sides ONNX Runtime drops the pair and
   * runs the op on uint8, and an Add of two such values becomes a QLinearAdd (the FPN's top-down path).
   */
  derived: Map<string, string>;
  kept: KeptNode[];
  /** BatchNormalizations folded into the 1x1 convs that read them before planning (foldBatchNorms). */
  folded?: string[];
}

export interface PlanOptions {
  /** Keep these nodes float32 (matched against node names). */
  keepFp32?: RegExp[];
  /**
   * Keep the default-sensitive layers float32 (default true): the stem (the layers reading `imageInput`) and the predictors, the last layers before the outputs, whose outputs are
   * the logits and box deltas themselves (see the README's per-layer sensitivity table).
   */
  keepSensitive?: boolean;
  /** The image input, whose readers are the stem (the heads' RoI-feature inputs are not images). */
  imageInput?: string;
  /**
   * Quantize the predictors even where `keepSensitive` keeps the stem float: the mask head's logits, which are
   * only thresholded at probability 0.5 (measured on the bundled model: no mask AP lost, see README).
   */
  int8Predictors?: boolean;
}

function consumersOf(m: OnnxModel): Map<string, number[]> {
  const c = new Map<string, number[]>();
  m.graph.node.forEach((n, i) => n.input.forEach((v) => { if (v) { if (!c.has(v)) c.set(v, []); c.get(v)!.push(i); } }));
  return c;
}

/** Nodes from which no path reaches another Conv/Gemm/MatMul: every value they make ends in graph outputs. */
function predictorNodes(m: OnnxModel, candidates: QuantNode[]): Set<number> {
  const consumers = consumersOf(m);
  const compute = new Set(['Conv', 'Gemm', 'MatMul']);
  const memo = new Map<string, boolean>();
  const reachesCompute = (v: string): boolean => {
    if (memo.has(v)) return memo.get(v)!;
    memo.set(v, false);
    let r = false;
    for (const i of consumers.get(v) ?? []) {
      const n = m.graph.node[i];
      if (compute.has(n.opType) || n.output.some(reachesCompute)) { r = true; break; }
    }
    memo.set(v, r);
    return r;
  };
  return new Set(candidates.filter((q) => !reachesCompute(q.output)).map((q) => q.index));
}

export function planQuantization(m: OnnxModel, o: PlanOptions = {}): QuantPlan {
  const consts = floatConstants(m);
  const candidates = m.graph.node.map((n, i) => quantizableNode(n, i, consts)).filter((q): q is QuantNode => q !== undefined);
  const predictors = o.keepSensitive === false || o.int8Predictors ? new Set<number>() : predictorNodes(m, candidates);
  const kept: KeptNode[] = [];
  const nodes: QuantNode[] = [];
  for (const q of candidates) {
    const pattern = o.keepFp32?.find((re) => re.test(q.name));
    if (pattern) kept.push({ name: q.name, opType: q.opType, reason: `--keep-fp32 ${pattern.source}` });
    else if (o.keepSensitive !== false && q.activation === o.imageInput) kept.push({ name: q.name, opType: q.opType, reason: 'stem (reads the image)' });
    else if (predictors.has(q.index)) kept.push({ name: q.name, opType: q.opType, reason: 'predictor (its output is a model output)' });
    else nodes.push(q);
  }
  const tensors = new Set<string>();
  const consumers = consumersOf(m);
  const outputs = new Set(m.graph.output.map((v) => v.name));
  for (const q of nodes) {
    tensors.add(q.activation);
    if (q.opType === 'Conv') tensors.add(convOutputPoint(m, q.output, consumers, outputs));
  }
  const derived = new Map<string, string>();
  for (const n of m.graph.node) {
    const [x] = n.input;
    const y = n.output[0];
    if (!valuePreserving(n) || !x || outputs.has(y)) continue;
    const root = derived.get(x) ?? (tensors.has(x) ? x : undefined);
    if (root === undefined) continue;
    derived.set(y, root);
    tensors.delete(y); // a MaxPool feeding a Conv: the input's range holds every value it passes on
  }
  return { nodes, tensors: [...tensors], derived, kept };
}

/** Ops whose outputs are some of their input's values, so that they run on uint8 under the input's parameters. */
function valuePreserving(n: OnnxNode): boolean {
  if ((n.domain ?? '') !== '') return false;
  if (n.opType === 'MaxPool' || n.opType === 'Transpose') return true;
  if (n.opType !== 'Resize') return false;
  const mode = attrOf(n, 'mode')?.s;
  return !mode || Buffer.from(mode).toString() === 'nearest';
}

/** Where a Conv's output is quantized: after its Relu when the Relu is its only consumer. */
function convOutputPoint(m: OnnxModel, v: string, consumers: Map<string, number[]>, outputs: Set<string>): string {
  const c = consumers.get(v) ?? [];
  if (c.length === 1 && !outputs.has(v) && m.graph.node[c[0]].opType === 'Relu') return m.graph.node[c[0]].output[0];
  return v;
}

/** A generator of value names unused in `m` (base, then base_1, base_2, ...), each handed out once. */
function freshNames(m: OnnxModel): (base: string) => string {
  const used = new Set<string>([...m.graph.initializer.map((t) => t.name), ...m.graph.input.map((v) => v.name)]);
  for (const n of m.graph.node) for (const v of n.output) used.add(v);
  return (base) => {
    let s = base;
    for (let k = 1; used.has(s); k++) s = `${base}_${k}`;
    used.add(s);
    return s;
  };
}

/**
 * Folds each BatchNormalization whose every reader is a 1x1, unpadded, ungrouped Conv into those Convs
 * (W'[o, c] = W[o, c] s[c], b'[o] = b[o] + sum_c W[o, c] t[c], with y = s x + t the BN), in place; returns
 * the folded BN names. FasterNet's detection outputs pass through a BN before the FPN's lateral 1x1 convs;
 * in an int8 graph that BN would run in float32 between a DequantizeLinear and a QuantizeLinear over the
 * finest feature map. Exact up to float32 rounding; a BN that feeds anything else stays.
 */
export function foldBatchNorms(m: OnnxModel): string[] {
  const consts = floatConstants(m);
  const consumers = consumersOf(m);
  const outputs = new Set(m.graph.output.map((v) => v.name));
  const fresh = freshNames(m);
  const folded: string[] = [];
  const drop = new Set<number>();
  m.graph.node.forEach((bn, bi) => {
    if (bn.opType !== 'BatchNormalization' || (bn.domain ?? '') !== '' || bn.output.length !== 1) return;
    const [x, sc, bb, mean, vari] = bn.input;
    const y = bn.output[0];
    const p = [sc, bb, mean, vari].map((v) => consts.get(v));
    const readers = consumers.get(y) ?? [];
    if (p.some((c) => !c) || outputs.has(y) || readers.length === 0) return;
    const convs = readers.map((i) => m.graph.node[i]);
    const ok = convs.every((c) => {
      const w = consts.get(c.input[1]);
      const pads = attrOf(c, 'pads')?.ints?.map(num) ?? [];
      return c.opType === 'Conv' && (c.domain ?? '') === '' && c.input[0] === y && c.input.indexOf(y) === 0 && !c.input.slice(1).includes(y)
        && w !== undefined && w.dims.length === 4 && w.dims[1] === p[0]!.data.length && w.dims[2] === 1 && w.dims[3] === 1 && (!c.input[2] || consts.has(c.input[2]))
        && intAttr(c, 'group', 1) === 1 && pads.every((v) => v === 0) && !attrOf(c, 'auto_pad')?.s?.length;
    });
    if (!ok) return;
    const eps = floatAttr(bn, 'epsilon', 1e-5);
    const [g, b, mu, va] = p.map((c) => c!.data);
    const C = g.length;
    const s = new Float64Array(C);
    const t = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      s[c] = g[c] / Math.sqrt(va[c] + Math.fround(eps));
      t[c] = b[c] - mu[c] * s[c];
    }
    for (const conv of convs) {
      const w = consts.get(conv.input[1])!;
      const [O, I] = w.dims;
      const bias = conv.input[2] ? consts.get(conv.input[2])!.data : new Float32Array(O);
      const w2 = new Float32Array(O * I);
      const b2 = new Float32Array(O);
      for (let o = 0; o < O; o++) {
        let acc = bias[o];
        for (let c = 0; c < I; c++) {
          w2[o * I + c] = w.data[o * I + c] * s[c];
          acc += w.data[o * I + c] * t[c];
        }
        b2[o] = acc;
      }
      const base = conv.name || conv.output[0];
      const wn = fresh(`${base}.weight.bn_folded`);
      const bnm = fresh(`${base}.bias.bn_folded`);
      m.graph.initializer.push({ name: wn, dims: w.dims, dataType: DT.FLOAT, rawData: raw(w2) });
      m.graph.initializer.push({ name: bnm, dims: [O], dataType: DT.FLOAT, rawData: raw(b2) });
      conv.input = [x, wn, bnm];
    }
    drop.add(bi);
    folded.push(bn.name || y);
  });
  if (drop.size) {
    m.graph.node = pruneDead(m.graph.node.filter((_, i) => !drop.has(i)), m);
    const live = new Set<string>(m.graph.node.flatMap((n) => n.input));
    m.graph.initializer = m.graph.initializer.filter((t) => live.has(t.name));
  }
  return folded;
}

/** The model with every tensor in `tensors` added as a float output (for calibration runs). */
export function withOutputs(bytes: Uint8Array, tensors: string[]): Uint8Array {
  const m = decodeModel(bytes);
  const have = new Set(m.graph.output.map((v) => v.name));
  const inputs = new Set(m.graph.input.map((v) => v.name));
  for (const t of tensors) {
    if (have.has(t) || inputs.has(t)) continue;
    m.graph.output.push({ name: t, type: { tensorType: { elemType: DT.FLOAT } } });
  }
  return encodeModel(m);
}

// ---------------------------------------------------------------------------------------------------------
// Quantization parameters

export interface Range { min: number; max: number }

/** uint8 asymmetric parameters for a range (widened to contain 0, as ONNX requires zero to be exact). */
export function activationParams(r: Range): { scale: number; zeroPoint: number } {
  const lo = Math.min(r.min, 0);
  const hi = Math.max(r.max, 0);
  if (!(hi - lo > 0) || !Number.isFinite(hi - lo)) return { scale: 1, zeroPoint: lo < 0 ? 255 : 0 };
  const scale = Math.fround((hi - lo) / 255);
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/** int8 symmetric per-channel weights: channel c along `axis` gets scale max|w_c| / 127. */
export function quantizeWeights(data: Float32Array, dims: number[], axis: number): { q: Int8Array; scales: Float32Array } {
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const scales = new Float32Array(channels);
  for (let i = 0; i < data.length; i++) {
    const c = Math.floor(i / inner) % channels;
    scales[c] = Math.max(scales[c], Math.abs(data[i]));
  }
  for (let c = 0; c < channels; c++) scales[c] = scales[c] > 0 ? scales[c] / 127 : 1;
  const q = new Int8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const c = Math.floor(i / inner) % channels;
    q[i] = Math.max(-127, Math.min(127, roundHalfEven(data[i] / scales[c])));
  }
  return { q, scales };
}

/** QuantizeLinear rounds half to even; weights and biases follow it. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------------------
// The rewrite

function raw(a: Float32Array | Int8Array | Uint8Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export interface QuantizedTensorReport { tensor: string; min: number; max: number; scale: number; zeroPoint: number; sameAs?: string }

export interface GraphReport {
  quantized: Array<{ name: string; opType: string }>;
  kept: KeptNode[];
  tensors: QuantizedTensorReport[];
  foldedBatchNorms?: string[];
  /** Graph outputs left in uint8 (QuantizeOptions.uint8Outputs) with their scale and zero point. */
  uint8Outputs?: Record<string, { scale: number; zeroPoint: number }>;
}

export interface QuantizeGraphOptions {
  /**
   * Graph outputs to leave in uint8 where they are an Identity of a quantized value (an int8 detector's FPN
   * levels: RoIAlign reads the bytes, so no DequantizeLinear runs over the pyramid). Others stay float.
   */
  uint8Outputs?: readonly string[];
}

/**
 * Rewrites the model into QDQ form for `plan` with calibrated `ranges` (one per plan tensor). A node whose
 * int32 bias would overflow stays float (reported as kept).
 */
export function quantizeGraph(bytes: Uint8Array, plan: QuantPlan, ranges: Map<string, Range>, o: QuantizeGraphOptions = {}): { bytes: Uint8Array; report: GraphReport } {
  const m = decodeModel(bytes);
  const consts = floatConstants(m);
  const fresh = freshNames(m);
  const inits: OnnxTensor[] = [];
  const addInit = (base: string, dataType: number, dims: number[], data: Float32Array | Int8Array | Uint8Array | Int32Array): string => {
    const name = fresh(base);
    inits.push({ name, dims, dataType, rawData: raw(data) });
    return name;
  };
  const report: GraphReport = { quantized: [], kept: [...plan.kept], tensors: [], ...(plan.folded?.length ? { foldedBatchNorms: plan.folded } : {}) };

  // Activation parameters, once per tensor.
  const params = new Map<string, { scale: string; zp: string; s: number; zeroPoint: number }>();
  for (const t of plan.tensors) {
    const r = ranges.get(t);
    if (!r) throw new Error(`no calibrated range for ${t}`);
    const { scale, zeroPoint } = activationParams(r);
    params.set(t, {
      scale: addInit(`${t}.scale`, DT.FLOAT, [], Float32Array.of(scale)),
      zp: addInit(`${t}.zero_point`, DT.UINT8, [], Uint8Array.of(zeroPoint)),
      s: scale,
      zeroPoint,
    });
    report.tensors.push({ tensor: t, min: r.min, max: r.max, scale, zeroPoint });
  }
  for (const [t, root] of plan.derived ?? []) {
    params.set(t, params.get(root)!);
    const r = report.tensors.find((x) => x.tensor === root)!;
    report.tensors.push({ ...r, tensor: t, sameAs: root });
  }

  // Weights, once per weight tensor and axis (RPN convs share one weight over five levels).
  const weights = new Map<string, { q: string; scale: string; zp: string; scales: Float32Array }>();
  const weightFor = (q: QuantNode) => {
    const key = `${q.weight}|${q.axis}`;
    if (!weights.has(key)) {
      const c = consts.get(q.weight)!;
      const { q: qw, scales } = quantizeWeights(c.data, c.dims, q.axis);
      weights.set(key, {
        q: addInit(`${q.weight}.int8`, DT.INT8, c.dims, qw),
        scale: addInit(`${q.weight}.scale`, DT.FLOAT, [scales.length], scales),
        zp: addInit(`${q.weight}.zero_point`, DT.INT8, [scales.length], new Int8Array(scales.length)),
        scales,
      });
    }
    return weights.get(key)!;
  };

  const byIndex = new Map(plan.nodes.map((q) => [q.index, q]));
  const dqNode = (x: string, scale: string, zp: string, out: string, name: string, axis?: number): OnnxNode => ({
    name, opType: 'DequantizeLinear', input: [x, scale, zp], output: [out], domain: '',
    attribute: axis === undefined ? [] : [{ name: 'axis', type: AttributeType.INT, i: axis }],
  });
  const quantOut = new Map<string, string>(); // tensor -> its uint8 value
  const floatDq = new Map<string, string>(); // tensor -> the dequantized value float consumers read
  const out: OnnxNode[] = [];
  const emitQ = (t: string) => {
    const p = params.get(t)!;
    const qv = fresh(`${t}.quant`);
    out.push({ name: fresh(`${t}.QuantizeLinear`), opType: 'QuantizeLinear', input: [t, p.scale, p.zp], output: [qv], domain: '' });
    quantOut.set(t, qv);
    const dv = fresh(`${t}.dequant`);
    out.push(dqNode(qv, p.scale, p.zp, dv, fresh(`${t}.DequantizeLinear`)));
    floatDq.set(t, dv);
  };
  for (const i of m.graph.input) if (params.has(i.name)) emitQ(i.name);

  const rename = new Map<string, string>(); // float consumers of a quantized tensor read its DequantizeLinear
  const u8Out = new Set(o.uint8Outputs ?? []);
  const u8Types = new Map<string, { scale: number; zeroPoint: number }>();
  m.graph.node.forEach((n, idx) => {
    const q = byIndex.get(idx);
    if (n.opType === 'Identity' && u8Out.has(n.output[0]) && quantOut.has(n.input[0])) {
      const p = params.get(n.input[0])!;
      out.push({ ...n, input: [quantOut.get(n.input[0])!] });
      u8Types.set(n.output[0], { scale: p.s, zeroPoint: p.zeroPoint });
      return;
    }
    // A Shape reads the uint8 value: reading the dequantized one would keep a DequantizeLinear alive for it.
    const inputs = n.input.map((v) => (n.opType === 'Shape' ? quantOut.get(v) : undefined) ?? rename.get(v) ?? v);
    if (q) {
      const a = params.get(q.activation)!;
      const w = weightFor(q);
      let biasInt: Int32Array | undefined;
      if (q.bias) {
        const b = consts.get(q.bias)!.data;
        biasInt = new Int32Array(b.length);
        for (let c = 0; c < b.length; c++) {
          const v = roundHalfEven(b[c] / (a.s * w.scales[c]));
          if (!(Math.abs(v) < 2 ** 31 - 1)) { biasInt = undefined; break; }
          biasInt[c] = v;
        }
        if (!biasInt) {
          report.kept.push({ name: q.name, opType: q.opType, reason: 'int32 bias would overflow' });
          out.push({ ...n, input: inputs });
          return;
        }
      }
      const xq = fresh(`${q.activation}.dequant.${q.name}`);
      out.push(dqNode(quantOut.get(q.activation)!, a.scale, a.zp, xq, fresh(`${q.name}.input.DequantizeLinear`)));
      const wq = fresh(`${q.weight}.dequant.${q.name}`);
      out.push(dqNode(w.q, w.scale, w.zp, wq, fresh(`${q.name}.weight.DequantizeLinear`), q.axis));
      const newInputs = [xq, wq];
      if (biasInt) {
        const bs = Float32Array.from(w.scales, (s) => Math.fround(a.s * s));
        const bq = addInit(`${q.name}.bias.int32`, DT.INT32, [bs.length], biasInt);
        const bsc = addInit(`${q.name}.bias.scale`, DT.FLOAT, [bs.length], bs);
        const bzp = addInit(`${q.name}.bias.zero_point`, DT.INT32, [bs.length], new Int32Array(bs.length));
        const bv = fresh(`${q.name}.bias.dequant`);
        out.push(dqNode(bq, bsc, bzp, bv, fresh(`${q.name}.bias.DequantizeLinear`), 0));
        newInputs.push(bv);
      }
      out.push({ ...n, input: newInputs });
      report.quantized.push({ name: q.name, opType: q.opType });
    } else {
      out.push({ ...n, input: inputs });
    }
    for (const v of n.output) {
      if (params.has(v)) {
        emitQ(v);
        rename.set(v, floatDq.get(v)!);
      }
    }
  });
  // Quantized tensors that are graph outputs keep their float producer value under the output name.
  m.graph.node = pruneDead(out, m);
  for (const v of m.graph.output) {
    if (u8Types.has(v.name)) v.type = { tensorType: { elemType: DT.UINT8, shape: (v.type as { tensorType?: { shape?: unknown } } | undefined)?.tensorType?.shape } };
  }
  if (u8Types.size) report.uint8Outputs = Object.fromEntries(u8Types);
  const live = new Set<string>(m.graph.node.flatMap((n) => n.input));
  for (const o of m.graph.output) live.add(o.name);
  m.graph.initializer = [...m.graph.initializer, ...inits].filter((t) => live.has(t.name));
  for (const o of m.opsetImport) if ((o.domain ?? '') === '' && num(o.version) < 13) o.version = 13;
  return { bytes: encodeModel(m), report };
}

/** Drops nodes whose outputs nobody reads (the Casts of float16 weights that were replaced by int8 ones). */
function pruneDead(nodes: OnnxNode[], m: OnnxModel): OnnxNode[] {
  let cur = nodes;
  for (;;) {
    const read = new Set<string>(m.graph.output.map((o) => o.name));
    for (const n of cur) for (const v of n.input) read.add(v);
    const next = cur.filter((n) => n.output.some((v) => read.has(v)));
    if (next.length === cur.length) return cur;
    cur = next;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Structural check (the subset of onnx.checker that QDQ rewriting can break, plus the QDQ rules themselves)

/** What is wrong with a QDQ model, one line each; empty when it is well formed. */
export function qdqProblems(bytes: Uint8Array): string[] {
  const m = decodeModel(bytes);
  const problems: string[] = [];
  const inits = new Map(m.graph.initializer.map((t) => [t.name, t]));
  const defined = new Set<string>([...inits.keys(), ...m.graph.input.map((v) => v.name)]);
  const producer = new Map<string, OnnxNode>();
  const opset = num(m.opsetImport.find((o) => (o.domain ?? '') === '')?.version);
  const values = (t: OnnxTensor): number[] => {
    const r = Uint8Array.from(t.rawData ?? []);
    if (t.dataType === DT.FLOAT) return [...(t.rawData?.length ? new Float32Array(r.buffer) : (t.floatData ?? []))];
    if (t.dataType === DT.INT8) return [...new Int8Array(r.buffer)];
    if (t.dataType === DT.UINT8) return [...r];
    if (t.dataType === DT.INT32) return [...(t.rawData?.length ? new Int32Array(r.buffer) : (t.int32Data ?? []))];
    return [];
  };
  const checkParams = (n: OnnxNode, xType: number | undefined, xDims: number[] | undefined): void => {
    const [, sName, zName] = n.input;
    const s = inits.get(sName);
    const z = inits.get(zName);
    if (!s || !z) { problems.push(`${n.name}: scale and zero point must be initializers`); return; }
    if (s.dataType !== DT.FLOAT) problems.push(`${n.name}: scale ${sName} is not float`);
    if (!values(s).every((v) => v > 0 && Number.isFinite(v))) problems.push(`${n.name}: scale ${sName} has a value that is not positive and finite`);
    if (xType !== undefined && z.dataType !== xType) problems.push(`${n.name}: zero point ${zName} type ${z.dataType} differs from the data's ${xType}`);
    const zRange = z.dataType === DT.INT8 ? [-128, 127] : z.dataType === DT.UINT8 ? [0, 255] : [-(2 ** 31), 2 ** 31 - 1];
    if (!values(z).every((v) => Number.isInteger(v) && v >= zRange[0] && v <= zRange[1])) problems.push(`${n.name}: zero point ${zName} out of range`);
    if (z.dataType === DT.INT8 || z.dataType === DT.INT32) {
      if (!values(z).every((v) => v === 0)) problems.push(`${n.name}: ${z.dataType === DT.INT8 ? 'int8 weights' : 'int32 biases'} must be symmetric (zero point 0)`);
    }
    const axis = attrOf(n, 'axis');
    const sd = s.dims.map(num);
    const zd = z.dims.map(num);
    if (axis) {
      if (opset < 13) problems.push(`${n.name}: per-axis quantization needs opset >= 13, model has ${opset}`);
      const a = num(axis.i);
      if (sd.length !== 1 || zd.length !== 1 || sd[0] !== zd[0]) problems.push(`${n.name}: per-axis scale/zero point must be 1-D of equal size`);
      else if (xDims && xDims[a] !== sd[0]) problems.push(`${n.name}: axis ${a} has ${xDims[a]} channels, scale has ${sd[0]}`);
    } else if (sd.length !== 0 || zd.length !== 0) {
      problems.push(`${n.name}: per-tensor scale/zero point must be scalars`);
    }
  };
  for (const n of m.graph.node) {
    const name = n.name ?? n.opType;
    for (const v of n.input) if (v && !defined.has(v)) problems.push(`${name}: input ${v} is not defined before it is used`);
    for (const v of n.output) {
      if (defined.has(v)) problems.push(`${name}: output ${v} is defined twice`);
      defined.add(v);
      producer.set(v, n);
    }
    if (n.opType === 'QuantizeLinear') {
      checkParams(n, DT.UINT8, undefined);
      if (attrOf(n, 'axis')) problems.push(`${name}: activations are quantized per tensor`);
    } else if (n.opType === 'DequantizeLinear') {
      const x = n.input[0];
      const t = inits.get(x);
      const p = producer.get(x);
      if (t) checkParams(n, t.dataType, t.dims.map(num));
      else if (p?.opType === 'QuantizeLinear') {
        checkParams(n, DT.UINT8, undefined);
        if (p.input[1] !== n.input[1] || p.input[2] !== n.input[2]) problems.push(`${name}: does not use the scale/zero point of its QuantizeLinear ${p.name}`);
      } else problems.push(`${name}: reads ${x}, neither an initializer nor a QuantizeLinear output`);
    }
  }
  for (const o of m.graph.output) if (!defined.has(o.name)) problems.push(`graph output ${o.name} is not produced`);
  return problems;
}
