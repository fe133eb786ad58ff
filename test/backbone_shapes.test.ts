import { describe, expect, it } from 'vitest';
import type { StateDict } from '../core/tensor.ts';
import { fasternetParamSpecs } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { classifierGraph, detectArch, featuresGraph } from '../backbones/model.ts';
import { opStackGraph } from '../bench/backbones.ts';
import type { ParamSpec } from '../backbones/synthetic.ts';

function zeros(specs: ParamSpec[], prefix = ''): StateDict {
  const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return new Map(specs.map((s) => [prefix + s.key, s.key.endsWith('num_batches_tracked')
    ? { shape: s.shape, data: new BigInt64Array(1) } : { shape: s.shape, data: new Float32Array(n(s.shape)) }]));
}

const learnable = (sd: StateDict) => [...sd].filter(([k]) => !/running_|num_batches/.test(k)).reduce((a, [, t]) => a + t.data.length, 0);

// FasterNet paper Table 2 / README (params M, FLOPs G = MACs at 224), torchvision ResNet50 (25.6M, 4.1G).
const PAPER: Record<string, [number, number]> = {
  fasternet_t0: [3.9, 0.34], fasternet_t1: [7.6, 0.85], fasternet_t2: [15.0, 1.91], fasternet_s: [31.1, 4.56],
  fasternet_m: [53.5, 8.74], fasternet_l: [93.5, 15.52], resnet50: [25.6, 4.1],
};

describe('model size and FLOPs match the published numbers', () => {
  for (const [arch, [params, gflops]] of Object.entries(PAPER)) {
    it(arch, () => {
      const sd = zeros(arch === 'resnet50' ? resnet50ParamSpecs() : fasternetParamSpecs(arch));
      expect(detectArch(sd)).toBe(arch);
      const { graph, numClasses } = classifierGraph(sd, { dims: [1, 3, 224, 224] });
      expect(numClasses).toBe(1000);
      expect(Math.abs(learnable(sd) / 1e6 - params) / params).toBeLessThan(0.01);
      // The published FLOPs also count BatchNorm/activation/pooling ops; conv+linear MACs are within 2%.
      expect(Math.abs(graph.macs / 1e9 - gflops) / gflops).toBeLessThan(0.02);
      expect(graph.shapes.get('logits')).toEqual([1, 1000]);
    });
  }
});

describe('detection backbones', () => {
  it('FasterNet under an mmdet prefix returns stride 4..32 features through norm0..norm6', () => {
    const sd = zeros(fasternetParamSpecs('s', { forkFeat: true }), 'backbone.');
    expect(detectArch(sd, 'backbone.')).toBe('fasternet_s');
    const { graph, features } = featuresGraph(sd, { prefix: 'backbone.', dims: [1, 3, 800, 1216] });
    expect(features.channels).toEqual([128, 256, 512, 1024]);
    expect(features.features.map((f) => graph.shapes.get(f))).toEqual([
      [1, 128, 200, 304], [1, 256, 100, 152], [1, 512, 50, 76], [1, 1024, 25, 38]]);
    expect(graph.nodes.filter((n) => n.opType === 'BatchNormalization').map((n) => n.name))
      .toEqual(['backbone.norm0', 'backbone.norm2', 'backbone.norm4', 'backbone.norm6']);
  });

  it('ResNet50 under a torchvision detection prefix returns C2..C5', () => {
    const sd = zeros(resnet50ParamSpecs(0), 'backbone.body.');
    const { graph, features } = featuresGraph(sd, { prefix: 'backbone.body.', style: 'caffe', dims: [1, 3, 800, 1216] });
    expect(features.features.map((f) => graph.shapes.get(f))).toEqual([
      [1, 256, 200, 304], [1, 512, 100, 152], [1, 1024, 50, 76], [1, 2048, 25, 38]]);
  });

  it('names the missing tensor', () => {
    const sd = zeros(fasternetParamSpecs('t0'));
    sd.delete('stages.4.blocks.3.mlp.1.running_var');
    expect(() => classifierGraph(sd)).toThrow(/checkpoint has no stages\.4\.blocks\.3\.mlp\.1\.running_var/);
    expect(() => detectArch(new Map())).toThrow(/neither FasterNet nor ResNet50/);
  });
});

describe('Table 1 op stacks', () => {
  it('PConv (r = 1/4) has 1/16 of the Conv FLOPs, GConv 1/16, DWConv 1/c', () => {
    const macs = (op: 'conv' | 'gconv' | 'dwconv' | 'pconv') => opStackGraph(op, [96, 56, 56]).macs;
    expect(macs('conv')).toBe(10 * 56 * 56 * 9 * 96 * 96);
    expect(macs('pconv')).toBe(macs('conv') / 16);
    expect(macs('gconv')).toBe(macs('conv') / 16);
    expect(macs('dwconv')).toBe(macs('conv') / 96);
  });
});

describe('bench backbones rows', () => {
  it('have the documented fields, FLOPs = 2 x MACs of the graph', async () => {
    const { benchBackbones } = await import('../bench/backbones.ts');
    const [row] = await benchBackbones(['t0'], [64, 96], 1, { iters: 1, warmup: 0 });
    const { graph } = featuresGraph(zeros(fasternetParamSpecs('t0', { forkFeat: true })), { dims: [1, 3, 64, 96] });
    expect(row).toMatchObject({ arch: 'fasternet_t0', input: [64, 96], threads: 1, macs: graph.macs, flops: 2 * graph.macs, graph: 'features' });
    expect(row.params).toBe(learnable(zeros(fasternetParamSpecs('t0', { forkFeat: true }))));
    expect(row.gflops).toBeCloseTo(row.flops / (row.ms_median * 1e6), 6);
  });
});
