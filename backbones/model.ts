/**
 * Whole graphs from a state dict: the ImageNet classifier that `fasternet convert --flavor imagenet` writes, and
 * a features-only graph (used by parity tests and benchmarks; detection graphs call the backbone functions
 * directly on their own Graph).
 */
import type { StateDict } from '../core/tensor.ts';
import { addInput, addOutput, createGraph, serializeModel, type Dim, type Graph } from '../runtime/graph.ts';
import { imagenetPreprocess, metadataProps, type ModelMetadata } from '../runtime/metadata.ts';
import { UserError } from '../core/errors.ts';
import {
  FASTERNET_VARIANTS, detectFasterNetVariant, fasternetFeatures, fasternetLogits, fasternetVariantName,
  type BackboneFeatures, type FasterNetLayout, type PConvImpl,
} from './fasternet.ts';
import { resnet50Features, resnet50Logits } from './resnet.ts';

export const ARCHS = [...Object.keys(FASTERNET_VARIANTS), 'resnet50'];

/** 'resnet50' or a FasterNet variant ('t0', 'fasternet_s', ...), normalized to its canonical name. */
export function archName(name: string): string {
  const n = name.toLowerCase();
  return n === 'resnet50' || n === 'resnet-50' ? 'resnet50' : fasternetVariantName(n);
}

/** The architecture of a checkpoint, from its keys and shapes. */
export function detectArch(sd: StateDict, prefix = ''): string {
  if (sd.has(`${prefix}patch_embed.proj.weight`)) return detectFasterNetVariant(sd, prefix);
  if (sd.has(`${prefix}layer1.0.conv1.weight`)) {
    if (sd.has(`${prefix}layer3.5.conv1.weight`) && !sd.has(`${prefix}layer3.6.conv1.weight`)
      && sd.get(`${prefix}layer1.0.conv3.weight`)?.shape[0] === 256) return 'resnet50';
    throw new UserError('checkpoint is a ResNet but not a ResNet50 (only ResNet50 is supported)');
  }
  throw new UserError(`checkpoint is neither FasterNet nor ResNet50 (no ${prefix}patch_embed.proj.weight or ${prefix}layer1.0.conv1.weight)`);
}

export interface GraphInputOptions {
  arch?: string;
  prefix?: string;
  /** Input dims; symbolic by default ('N', 3, 'H', 'W'). */
  dims?: [Dim, Dim, Dim, Dim];
  inputName?: string;
  pconv?: PConvImpl;
  layout?: FasterNetLayout;
  style?: 'pytorch' | 'caffe';
  bnEps?: number;
}

/** The graph with its input, for the architecture `o.arch` names or the checkpoint's own. */
function startGraph(sd: StateDict, o: GraphInputOptions): { g: Graph; arch: string; common: { input: string; prefix?: string; bnEps?: number } } {
  const arch = o.arch ? archName(o.arch) : detectArch(sd, o.prefix);
  const g = createGraph(arch);
  const input = addInput(g, o.inputName ?? 'input', o.dims ?? ['N', 3, 'H', 'W']);
  return { g, arch, common: { input, prefix: o.prefix, bnEps: o.bnEps } };
}

/** Classifier graph: input -> logits. */
export function classifierGraph(sd: StateDict, o: GraphInputOptions = {}): { graph: Graph; arch: string; numClasses: number } {
  const { g, arch, common } = startGraph(sd, o);
  const logits = arch === 'resnet50'
    ? resnet50Logits(g, sd, { ...common, style: o.style })
    : fasternetLogits(g, sd, { ...common, variant: arch, pconv: o.pconv, layout: o.layout });
  const head = sd.get(`${o.prefix ?? ''}${arch === 'resnet50' ? 'fc' : 'head'}.bias`);
  addOutput(g, logits, 'logits', [g.inputs[0].dims[0], head ? head.shape[0] : 'classes']);
  return { graph: g, arch, numClasses: head ? head.shape[0] : 0 };
}

/** Backbone-only graph: input -> feature maps (FasterNet norm0..norm6, ResNet50 C2..C5). */
export function featuresGraph(sd: StateDict, o: GraphInputOptions = {}): { graph: Graph; arch: string; features: BackboneFeatures } {
  const { g, arch, common } = startGraph(sd, o);
  const f = arch === 'resnet50'
    ? resnet50Features(g, sd, { ...common, style: o.style })
    : fasternetFeatures(g, sd, { ...common, variant: arch, pconv: o.pconv, layout: o.layout });
  const names = arch === 'resnet50' ? ['C2', 'C3', 'C4', 'C5'] : ['norm0', 'norm2', 'norm4', 'norm6'];
  f.features = f.features.map((v, i) => addOutput(g, v, names[i], [g.inputs[0].dims[0], f.channels[i], `${names[i]}_h`, `${names[i]}_w`]));
  return { graph: g, arch, features: f };
}

/** The ONNX bytes `fasternet convert --flavor imagenet` writes: classifier + metadata for `classify`. */
export function imagenetModel(sd: StateDict, o: GraphInputOptions = {}): { bytes: Uint8Array; meta: ModelMetadata } {
  const { graph, arch, numClasses } = classifierGraph(sd, o);
  if (numClasses === 0) throw new UserError('checkpoint has no classifier head (a detection backbone?)');
  const meta: ModelMetadata = {
    arch, flavor: 'imagenet', numClasses, preprocess: imagenetPreprocess(224, 0.9), input: graph.inputs[0].name,
    outputs: graph.outputs.map((x) => x.name),
  };
  return { bytes: serializeModel(graph, { metadata: metadataProps(meta), docString: `${arch} ImageNet classifier` }), meta };
}
