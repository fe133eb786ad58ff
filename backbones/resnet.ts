/**
 * ResNet50 (torchvision.models.resnet50 keys: conv1, bn1, layer1.0.conv1, ..., downsample.0/1, fc).
 * style 'pytorch' puts the stride of a stage's first bottleneck on its 3x3 conv (torchvision, mmdet style
 * 'pytorch'); style 'caffe' puts it on the first 1x1 conv (mmdet style 'caffe', Detectron weights).
 * Every BatchNorm is folded into its conv; bnEps is a parameter because frozen-BN checkpoints differ.
 */
import type { StateDict } from '../core/tensor.ts';
import { add, convBn, flatten, globalAveragePool, linear, maxPool, param, relu, type Graph } from '../runtime/graph.ts';
import type { BackboneFeatures } from './fasternet.ts';
import type { ParamSpec } from './synthetic.ts';

export const RESNET50_DEPTHS = [3, 4, 6, 3];

export interface ResNetOptions {
  input: string;
  /** Key prefix ('' for torchvision classifiers, 'backbone.' mmdet, 'backbone.body.' torchvision detection). */
  prefix?: string;
  style?: 'pytorch' | 'caffe';
  bnEps?: number;
}

function bottleneck(g: Graph, x: string, sd: StateDict, k: string, stride: number, o: ResNetOptions): string {
  const caffe = o.style === 'caffe';
  const e = { bnEps: o.bnEps };
  let h = relu(g, convBn(g, x, sd, `${k}.conv1`, `${k}.bn1`, { ...e, stride: caffe ? stride : 1 }), `${k}.relu1`);
  h = relu(g, convBn(g, h, sd, `${k}.conv2`, `${k}.bn2`, { ...e, stride: caffe ? 1 : stride, pad: 1 }), `${k}.relu2`);
  h = convBn(g, h, sd, `${k}.conv3`, `${k}.bn3`, e);
  const shortcut = sd.has(`${k}.downsample.0.weight`)
    ? convBn(g, x, sd, `${k}.downsample.0`, `${k}.downsample.1`, { ...e, stride })
    : x;
  return relu(g, add(g, h, shortcut, `${k}.add`), `${k}.relu`);
}

/** Stem and layer1..layer4; returns C2..C5 (strides 4, 8, 16, 32). */
export function resnet50Features(g: Graph, sd: StateDict, o: ResNetOptions): BackboneFeatures {
  const p = o.prefix ?? '';
  let x = relu(g, convBn(g, o.input, sd, `${p}conv1`, `${p}bn1`, { stride: 2, pad: 3, bnEps: o.bnEps }), `${p}relu`);
  x = maxPool(g, x, 3, 2, 1, `${p}maxpool`);
  const features: string[] = [];
  RESNET50_DEPTHS.forEach((depth, s) => {
    for (let b = 0; b < depth; b++) {
      x = bottleneck(g, x, sd, `${p}layer${s + 1}.${b}`, b === 0 && s > 0 ? 2 : 1, o);
    }
    features.push(x);
  });
  return { features, channels: [256, 512, 1024, 2048], strides: [4, 8, 16, 32] };
}

/** torchvision resnet50 forward: logits [N, 1000]. */
export function resnet50Logits(g: Graph, sd: StateDict, o: ResNetOptions): string {
  const p = o.prefix ?? '';
  const { features } = resnet50Features(g, sd, o);
  let x = globalAveragePool(g, features[3], `${p}avgpool`);
  x = flatten(g, x, 1, `${p}flatten`);
  return linear(g, x, param(sd, `${p}fc.weight`), param(sd, `${p}fc.bias`), `${p}fc`);
}

function bnSpecs(key: string, c: number): ParamSpec[] {
  return ['weight', 'bias', 'running_mean', 'running_var'].map((n) => ({ key: `${key}.${n}`, shape: [c] }))
    .concat([{ key: `${key}.num_batches_tracked`, shape: [] }]);
}

/** torchvision resnet50 state_dict keys and shapes, in its order (fc omitted with numClasses 0). */
export function resnet50ParamSpecs(numClasses = 1000): ParamSpec[] {
  const specs: ParamSpec[] = [{ key: 'conv1.weight', shape: [64, 3, 7, 7] }, ...bnSpecs('bn1', 64)];
  let inC = 64;
  RESNET50_DEPTHS.forEach((depth, s) => {
    const w = 64 * 2 ** s;
    for (let b = 0; b < depth; b++) {
      const k = `layer${s + 1}.${b}`;
      specs.push({ key: `${k}.conv1.weight`, shape: [w, inC, 1, 1] }, ...bnSpecs(`${k}.bn1`, w),
        { key: `${k}.conv2.weight`, shape: [w, w, 3, 3] }, ...bnSpecs(`${k}.bn2`, w),
        { key: `${k}.conv3.weight`, shape: [4 * w, w, 1, 1] }, ...bnSpecs(`${k}.bn3`, 4 * w));
      if (b === 0) specs.push({ key: `${k}.downsample.0.weight`, shape: [4 * w, inC, 1, 1] }, ...bnSpecs(`${k}.downsample.1`, 4 * w));
      inC = 4 * w;
    }
  });
  if (numClasses > 0) specs.push({ key: 'fc.weight', shape: [numClasses, 2048] }, { key: 'fc.bias', shape: [numClasses] });
  return specs;
}
