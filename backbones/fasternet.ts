/**
 * FasterNet (Chen et al., CVPR 2023) as in the official models/fasternet.py, built into an ONNX graph from a
 * checkpoint with the official state_dict keys. The same trunk serves the ImageNet classifier (forward_cls)
 * and the detection backbone (forward_det, fork_feat=True: stage outputs through norm0/norm2/norm4/norm6).
 *
 *   patch_embed: Conv 4x4/4 + BN                                    (stride 4)
 *   stages.0, 2, 4, 6: blocks x + mlp(pconv(x)), pconv = 3x3 conv on the first C/n_div channels,
 *                       mlp = 1x1 C->2C, BN, act, 1x1 2C->C
 *   stages.1, 3, 5: PatchMerging, Conv 2x2/2 C->2C + BN               (strides 8, 16, 32)
 *   classifier: avgpool_pre_head (GAP, 1x1 conv to 1280, act), head (Linear)
 * Every BatchNorm that follows a conv is folded into it.
 */
import type { FloatTensor, StateDict } from '../core/tensor.ts';
import {
  activation, add, batchNorm, batchNormParams, concat, conv, convBn, flatten, foldBatchNorm, globalAveragePool, linear,
  matmulLinear, param, slice, split, transpose, type Graph,
} from '../runtime/graph.ts';
import { UserError } from '../core/errors.ts';
import type { ParamSpec } from './synthetic.ts';

export interface FasterNetConfig {
  embedDim: number;
  depths: number[];
  act: 'relu' | 'gelu';
  mlpRatio: number;
  nDiv: number;
  featureDim: number;
}

/** cfg/fasternet_*.yaml of the official repo. */
export const FASTERNET_VARIANTS: Record<string, FasterNetConfig> = {
  fasternet_t0: { embedDim: 40, depths: [1, 2, 8, 2], act: 'gelu', mlpRatio: 2, nDiv: 4, featureDim: 1280 },
  fasternet_t1: { embedDim: 64, depths: [1, 2, 8, 2], act: 'gelu', mlpRatio: 2, nDiv: 4, featureDim: 1280 },
  fasternet_t2: { embedDim: 96, depths: [1, 2, 8, 2], act: 'relu', mlpRatio: 2, nDiv: 4, featureDim: 1280 },
  fasternet_s: { embedDim: 128, depths: [1, 2, 13, 2], act: 'relu', mlpRatio: 2, nDiv: 4, featureDim: 1280 },
  fasternet_m: { embedDim: 144, depths: [3, 4, 18, 3], act: 'relu', mlpRatio: 2, nDiv: 4, featureDim: 1280 },
  fasternet_l: { embedDim: 192, depths: [3, 4, 18, 3], act: 'relu', mlpRatio: 2, nDiv: 4, featureDim: 1280 },
};

/** Accepts 't0', 'fasternet_t0', 'FasterNet-T0'. */
export function fasternetVariantName(name: string): string {
  const n = name.toLowerCase().replace(/^fasternet[-_]?/, '');
  const key = `fasternet_${n}`;
  if (!FASTERNET_VARIANTS[key]) {
    throw new UserError(`unknown FasterNet variant ${name} (expected one of t0, t1, t2, s, m, l)`);
  }
  return key;
}

/** The variant whose embed_dim and depths match the checkpoint's shapes. */
export function detectFasterNetVariant(sd: StateDict, prefix = ''): string {
  const stem = sd.get(`${prefix}patch_embed.proj.weight`);
  if (!stem) throw new UserError(`checkpoint has no ${prefix}patch_embed.proj.weight: not a FasterNet`);
  const depths = [0, 2, 4, 6].map((s) => {
    const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}stages\\.${s}\\.blocks\\.(\\d+)\\.`);
    let n = 0;
    for (const k of sd.keys()) { const m = re.exec(k); if (m) n = Math.max(n, Number(m[1]) + 1); }
    return n;
  });
  for (const [name, c] of Object.entries(FASTERNET_VARIANTS)) {
    if (c.embedDim === stem.shape[0] && c.depths.every((d, i) => d === depths[i])) return name;
  }
  throw new UserError(`FasterNet checkpoint with embed_dim ${stem.shape[0]} and depths [${depths}] matches no known variant`);
}

/**
 * ONNX forms of the partial conv, all the same math: 'split_cat' (Split -> Conv -> Concat, the official
 * forward_split_cat), 'slice_cat' (Slice x2 -> Conv -> Concat; ORT rewrites it to the same Split),
 * 'group_identity' (one 3x3 conv with 4 groups: the first group holds the PConv weights, the others an identity
 * kernel; 4x the PConv FLOPs but no Split/Concat, so ORT keeps the whole block in its blocked NCHWc layout).
 */
export type PConvImpl = 'split_cat' | 'slice_cat' | 'group_identity';

export interface FasterNetOptions {
  /** Graph value holding the NCHW image batch. */
  input: string;
  /** Key prefix of the backbone in the state dict ('' for ImageNet checkpoints, 'backbone.' in mmdet ones). */
  prefix?: string;
  /** Variant name; detected from the checkpoint's shapes when absent. */
  variant?: string;
  /** How the partial conv is expressed in ONNX (same math). */
  pconv?: PConvImpl;
  /** Graph form (same math, see FasterNetLayout); default by variant, defaultLayout(). */
  layout?: FasterNetLayout;
  bnEps?: number;
}

/**
 * 'nchw': the official structure, one Conv per PyTorch conv, PConv as Split -> Conv -> Concat.
 * 'nhwc': blocks channels-last, 1x1 convs as MatMul, only the partial conv transposed to NCHW.
 * 'two_stream': the first C/n_div channels (a) and the rest (b) are kept as two tensors through each stage, so
 *   no Split or Concat is ever needed: pconv = Conv(a); mlp.0 = Conv(a') + Conv(b) (ORT fuses the Add);
 *   mlp.3 and the residual split by output rows; PatchMerging as four convs. Same FLOPs, and every node stays
 *   in ORT's blocked NCHWc layout when C/n_div is a multiple of its channel block.
 */
export type FasterNetLayout = 'nchw' | 'nhwc' | 'two_stream';

/**
 * By measurement (bench backbones --layout, 1 thread, this CPU): two_stream is 3-10% faster than nchw for T1, T2,
 * S and L, whose C/4 channel counts fill ORT's 8/16-channel blocks; for T0 (C/4 = 10) the unaligned convs get
 * layout reorders and nchw is faster; M (C/4 = 36) is a tie. nhwc (MatMul) is slower everywhere.
 */
export function defaultLayout(cfg: FasterNetConfig): FasterNetLayout {
  return Math.floor(cfg.embedDim / cfg.nDiv) % 8 === 0 ? 'two_stream' : 'nchw';
}

export interface BackboneFeatures {
  /** Graph values of the returned feature maps, highest resolution first. */
  features: string[];
  channels: number[];
  strides: number[];
}

function resolveConfig(sd: StateDict, o: FasterNetOptions): { name: string; cfg: FasterNetConfig; p: string } {
  const p = o.prefix ?? '';
  const name = o.variant ? fasternetVariantName(o.variant) : detectFasterNetVariant(sd, p);
  return { name, cfg: FASTERNET_VARIANTS[name], p };
}

function partialConv(g: Graph, x: string, sd: StateDict, key: string, dim: number, nDiv: number, impl: PConvImpl): string {
  const dConv = Math.floor(dim / nDiv);
  const w = param(sd, `${key}.weight`);
  if (impl === 'group_identity' && dim % nDiv === 0) {
    const k = new Float32Array(dim * dConv * 9);
    k.set(w.data);
    for (let o = dConv; o < dim; o++) k[(o * dConv + (o % dConv)) * 9 + 4] = 1;
    return conv(g, x, { shape: [dim, dConv, 3, 3], data: k }, undefined, { pad: 1, group: nDiv, name: key });
  }
  if (impl === 'split_cat' || impl === 'group_identity') {
    const [x1, x2] = split(g, x, [dConv, dim - dConv], 1, `${key}.split`);
    const y1 = conv(g, x1, w, undefined, { pad: 1, name: key });
    return concat(g, [y1, x2], 1, `${key}.cat`);
  }
  const x1 = slice(g, x, 0, dConv, 1, `${key}.slice0`);
  const x2 = slice(g, x, dConv, dim, 1, `${key}.slice1`);
  const y1 = conv(g, x1, w, undefined, { pad: 1, name: key });
  return concat(g, [y1, x2], 1, `${key}.cat`);
}

function mlpBlock(g: Graph, x: string, sd: StateDict, key: string, dim: number, cfg: FasterNetConfig, o: FasterNetOptions): string {
  const mixed = partialConv(g, x, sd, `${key}.spatial_mixing.partial_conv3`, dim, cfg.nDiv, o.pconv ?? 'split_cat');
  let h = convBn(g, mixed, sd, `${key}.mlp.0`, `${key}.mlp.1`, { bnEps: o.bnEps });
  h = activation(g, h, cfg.act, `${key}.mlp.2`);
  h = conv(g, h, mlp3Weight(sd, key), undefined, { name: `${key}.mlp.3` });
  return add(g, x, h, `${key}.add`);
}

/** A block's mlp.3 weight; forward_layer_scale (shortcut + layer_scale * mlp(x)) folds its per-channel scale in. */
function mlp3Weight(sd: StateDict, key: string): FloatTensor {
  const w3 = param(sd, `${key}.mlp.3.weight`);
  const ls = sd.get(`${key}.layer_scale`);
  if (!ls) return w3;
  const per = w3.data.length / w3.shape[0];
  const w = new Float32Array(w3.data);
  for (let c = 0; c < w3.shape[0]; c++) for (let k = 0; k < per; k++) w[c * per + k] *= (ls.data as Float32Array)[c];
  return { shape: w3.shape, data: w };
}

/** Rows [o0, o1) and input channels [i0, i1) of a conv weight [Cout, Cin, kh, kw] (and the bias rows). */
function subConv(w: FloatTensor, b: FloatTensor | undefined, o0: number, o1: number, i0: number, i1: number): { weight: FloatTensor; bias?: FloatTensor } {
  const [, cin, kh, kw] = w.shape;
  const k = kh * kw;
  const out = new Float32Array((o1 - o0) * (i1 - i0) * k);
  for (let o = o0; o < o1; o++) {
    out.set(w.data.subarray((o * cin + i0) * k, (o * cin + i1) * k), (o - o0) * (i1 - i0) * k);
  }
  return { weight: { shape: [o1 - o0, i1 - i0, kh, kw], data: out }, bias: b ? { shape: [o1 - o0], data: b.data.slice(o0, o1) } : undefined };
}

/** sum over inputs of Conv(x_j; W[o0:o1, in-range j]) (+ bias once); ORT fuses each Add into the conv after it. */
function convSum(
  g: Graph, xs: Array<[string, number, number]>, w: FloatTensor, b: FloatTensor | undefined, o0: number, o1: number,
  opts: { stride?: number; pad?: number; name: string },
): string {
  let acc: string | undefined;
  xs.forEach(([x, i0, i1], j) => {
    const sub = subConv(w, j === xs.length - 1 ? b : undefined, o0, o1, i0, i1);
    const y = conv(g, x, sub.weight, sub.bias, { stride: opts.stride, pad: opts.pad, name: `${opts.name}.${j}` });
    acc = acc === undefined ? y : add(g, acc, y, `${opts.name}.sum${j}`);
  });
  return acc!;
}

function foldedConv(sd: StateDict, convKey: string, bnKey: string, eps?: number): { weight: FloatTensor; bias: FloatTensor } {
  return foldBatchNorm(param(sd, `${convKey}.weight`), undefined, batchNormParams(sd, bnKey, eps));
}

/** The trunk with each stage's activations as two tensors (first C/n_div channels, the rest). */
function trunkTwoStream(g: Graph, sd: StateDict, o: FasterNetOptions, cfg: FasterNetConfig, p: string, need: number[]): string[] {
  const stageOut: string[] = [];
  const cp0 = Math.floor(cfg.embedDim / cfg.nDiv);
  const stem = foldedConv(sd, `${p}patch_embed.proj`, `${p}patch_embed.norm`, o.bnEps);
  let a = convSum(g, [[o.input, 0, 3]], stem.weight, stem.bias, 0, cp0, { stride: 4, name: `${p}patch_embed.proj.a` });
  let b = convSum(g, [[o.input, 0, 3]], stem.weight, stem.bias, cp0, cfg.embedDim, { stride: 4, name: `${p}patch_embed.proj.b` });
  for (let s = 0; s < cfg.depths.length; s++) {
    const dim = cfg.embedDim * 2 ** s;
    const cp = Math.floor(dim / cfg.nDiv);
    for (let i = 0; i < cfg.depths[s]; i++) {
      const key = `${p}stages.${2 * s}.blocks.${i}`;
      const a1 = conv(g, a, param(sd, `${key}.spatial_mixing.partial_conv3.weight`), undefined, { pad: 1, name: `${key}.spatial_mixing.partial_conv3` });
      const w0 = foldedConv(sd, `${key}.mlp.0`, `${key}.mlp.1`, o.bnEps);
      let h = convSum(g, [[b, cp, dim], [a1, 0, cp]], w0.weight, w0.bias, 0, 2 * dim, { name: `${key}.mlp.0` });
      h = activation(g, h, cfg.act, `${key}.mlp.2`);
      const w3 = mlp3Weight(sd, key);
      const ha = conv(g, h, subConv(w3, undefined, 0, cp, 0, 2 * dim).weight, undefined, { name: `${key}.mlp.3.a` });
      const hb = conv(g, h, subConv(w3, undefined, cp, dim, 0, 2 * dim).weight, undefined, { name: `${key}.mlp.3.b` });
      a = add(g, a, ha, `${key}.add.a`);
      b = add(g, b, hb, `${key}.add.b`);
    }
    if (need.includes(2 * s)) stageOut[2 * s] = concat(g, [a, b], 1, `${p}stages.${2 * s}.out`);
    if (s < cfg.depths.length - 1) {
      const r = foldedConv(sd, `${p}stages.${2 * s + 1}.reduction`, `${p}stages.${2 * s + 1}.norm`, o.bnEps);
      const cpn = Math.floor((2 * dim) / cfg.nDiv);
      const ins: Array<[string, number, number]> = [[a, 0, cp], [b, cp, dim]];
      const an = convSum(g, ins, r.weight, r.bias, 0, cpn, { stride: 2, name: `${p}stages.${2 * s + 1}.reduction.a` });
      const bn = convSum(g, ins, r.weight, r.bias, cpn, 2 * dim, { stride: 2, name: `${p}stages.${2 * s + 1}.reduction.b` });
      a = an;
      b = bn;
    }
  }
  return stageOut;
}

/** One MLP block in channels-last layout (x is [N, H, W, C]). */
function mlpBlockNhwc(g: Graph, x: string, sd: StateDict, key: string, dim: number, cfg: FasterNetConfig, o: FasterNetOptions): string {
  const dConv = Math.floor(dim / cfg.nDiv);
  const pk = `${key}.spatial_mixing.partial_conv3`;
  const [x1, x2] = split(g, x, [dConv, dim - dConv], 3, `${pk}.split`);
  let y1 = transpose(g, x1, [0, 3, 1, 2], `${pk}.to_nchw`);
  y1 = conv(g, y1, param(sd, `${pk}.weight`), undefined, { pad: 1, name: pk });
  y1 = transpose(g, y1, [0, 2, 3, 1], `${pk}.to_nhwc`);
  const mixed = concat(g, [y1, x2], 3, `${pk}.cat`);
  const w0 = param(sd, `${key}.mlp.0.weight`);
  const f = foldBatchNorm(w0, undefined, batchNormParams(sd, `${key}.mlp.1`, o.bnEps));
  let h = matmulLinear(g, mixed, { shape: f.weight.shape.slice(0, 2), data: f.weight.data }, f.bias, `${key}.mlp.0`);
  h = activation(g, h, cfg.act, `${key}.mlp.2`);
  const w3 = mlp3Weight(sd, key);
  h = matmulLinear(g, h, { shape: w3.shape.slice(0, 2), data: w3.data }, undefined, `${key}.mlp.3`);
  return add(g, x, h, `${key}.add`);
}

/** Runs patch_embed and stages 0..6; returns the output value of each stage index (NCHW). */
function trunk(g: Graph, sd: StateDict, o: FasterNetOptions, need: number[]): { stageOut: string[]; cfg: FasterNetConfig; p: string } {
  const { cfg, p } = resolveConfig(sd, o);
  if ((o.layout ?? defaultLayout(cfg)) === 'two_stream') return { stageOut: trunkTwoStream(g, sd, o, cfg, p, need), cfg, p };
  let x = convBn(g, o.input, sd, `${p}patch_embed.proj`, `${p}patch_embed.norm`, { stride: 4, bnEps: o.bnEps });
  const stageOut: string[] = [];
  for (let s = 0; s < cfg.depths.length; s++) {
    const dim = cfg.embedDim * 2 ** s;
    if (o.layout === 'nhwc') {
      x = transpose(g, x, [0, 2, 3, 1], `${p}stages.${2 * s}.to_nhwc`);
      for (let b = 0; b < cfg.depths[s]; b++) x = mlpBlockNhwc(g, x, sd, `${p}stages.${2 * s}.blocks.${b}`, dim, cfg, o);
      x = transpose(g, x, [0, 3, 1, 2], `${p}stages.${2 * s}.to_nchw`);
    } else {
      for (let b = 0; b < cfg.depths[s]; b++) x = mlpBlock(g, x, sd, `${p}stages.${2 * s}.blocks.${b}`, dim, cfg, o);
    }
    stageOut[2 * s] = x;
    if (s < cfg.depths.length - 1) {
      x = convBn(g, x, sd, `${p}stages.${2 * s + 1}.reduction`, `${p}stages.${2 * s + 1}.norm`, { stride: 2, bnEps: o.bnEps });
      stageOut[2 * s + 1] = x;
    }
  }
  return { stageOut, cfg, p };
}

/** forward_det: the four stage outputs through norm0/norm2/norm4/norm6 (strides 4, 8, 16, 32). */
export function fasternetFeatures(g: Graph, sd: StateDict, o: FasterNetOptions): BackboneFeatures {
  const { stageOut, cfg, p } = trunk(g, sd, o, [0, 2, 4, 6]);
  const features = [0, 2, 4, 6].map((i) => batchNorm(g, stageOut[i], sd, `${p}norm${i}`, o.bnEps));
  return { features, channels: [0, 1, 2, 3].map((s) => cfg.embedDim * 2 ** s), strides: [4, 8, 16, 32] };
}

/** forward_cls: logits [N, num_classes]. */
export function fasternetLogits(g: Graph, sd: StateDict, o: FasterNetOptions): string {
  const { stageOut, cfg, p } = trunk(g, sd, o, [6]);
  let x = globalAveragePool(g, stageOut[6], `${p}avgpool_pre_head.0`);
  x = conv(g, x, param(sd, `${p}avgpool_pre_head.1.weight`), undefined, { name: `${p}avgpool_pre_head.1` });
  x = activation(g, x, cfg.act, `${p}avgpool_pre_head.2`);
  x = flatten(g, x, 1, `${p}flatten`);
  return linear(g, x, param(sd, `${p}head.weight`), param(sd, `${p}head.bias`), `${p}head`);
}

function bnSpecs(key: string, c: number): ParamSpec[] {
  return ['weight', 'bias', 'running_mean', 'running_var'].map((n) => ({ key: `${key}.${n}`, shape: [c] }))
    .concat([{ key: `${key}.num_batches_tracked`, shape: [] }]);
}

/** The official model's state_dict keys and shapes, in its order (fork_feat=true: detection norms, no head). */
export function fasternetParamSpecs(variant: string | FasterNetConfig, o: { forkFeat?: boolean; numClasses?: number } = {}): ParamSpec[] {
  const cfg = typeof variant === 'string' ? FASTERNET_VARIANTS[fasternetVariantName(variant)] : variant;
  const e = cfg.embedDim;
  const specs: ParamSpec[] = [{ key: 'patch_embed.proj.weight', shape: [e, 3, 4, 4] }, ...bnSpecs('patch_embed.norm', e)];
  cfg.depths.forEach((depth, s) => {
    const dim = e * 2 ** s;
    const hidden = dim * cfg.mlpRatio;
    const dConv = Math.floor(dim / cfg.nDiv);
    for (let b = 0; b < depth; b++) {
      const k = `stages.${2 * s}.blocks.${b}`;
      specs.push({ key: `${k}.mlp.0.weight`, shape: [hidden, dim, 1, 1] }, ...bnSpecs(`${k}.mlp.1`, hidden),
        { key: `${k}.mlp.3.weight`, shape: [dim, hidden, 1, 1] },
        { key: `${k}.spatial_mixing.partial_conv3.weight`, shape: [dConv, dConv, 3, 3] });
    }
    if (s < cfg.depths.length - 1) {
      specs.push({ key: `stages.${2 * s + 1}.reduction.weight`, shape: [2 * dim, dim, 2, 2] },
        ...bnSpecs(`stages.${2 * s + 1}.norm`, 2 * dim));
    }
  });
  if (o.forkFeat) {
    [0, 2, 4, 6].forEach((i, s) => specs.push(...bnSpecs(`norm${i}`, e * 2 ** s)));
  } else {
    const nf = e * 2 ** (cfg.depths.length - 1);
    const nc = o.numClasses ?? 1000;
    specs.push({ key: 'avgpool_pre_head.1.weight', shape: [cfg.featureDim, nf, 1, 1] },
      { key: 'head.weight', shape: [nc, cfg.featureDim] }, { key: 'head.bias', shape: [nc] });
  }
  return specs;
}
