import { describe, expect, it } from 'vitest';
import { ModelProto } from '../runtime/onnx_proto.ts';
import {
  addInput, addOutput, attr, addNode, batchNorm, conv, convBn, createGraph, foldBatchNorm, gelu, linear, serializeModel,
} from '../runtime/graph.ts';
import { createSession, runSession } from '../runtime/session.ts';
import {
  imagenetPreprocess, metadataFromBytes, metadataProps, parseMetadata, readMetadataProps, readModelParts, splitModelBytes, type ModelMetadata,
} from '../runtime/metadata.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syntheticInput, syntheticStateDict, syntheticTensor } from '../backbones/synthetic.ts';
import { fasternetParamSpecs } from '../backbones/fasternet.ts';
import { featuresGraph } from '../backbones/model.ts';
import type { FloatTensor, StateDict } from '../core/tensor.ts';

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function bnStateDict(): StateDict {
  const sd: StateDict = new Map();
  for (const [k, shape] of [['conv.weight', [6, 4, 3, 3]], ['conv.bias', [6]], ['bn.weight', [6]], ['bn.bias', [6]],
    ['bn.running_mean', [6]], ['bn.running_var', [6]]] as Array<[string, number[]]>) sd.set(k, syntheticTensor(k, shape, 5));
  return sd;
}

describe('graph builder', () => {
  it('writes float attributes as FLOAT even when integral, ints as INT', () => {
    const g = createGraph();
    const x = addInput(g, 'x', [2, 3]);
    const w: FloatTensor = { shape: [4, 3], data: new Float32Array(12) };
    addOutput(g, linear(g, x, w, undefined, 'fc'));
    addNode(g, 'LeakyRelu', [x], { alpha: attr.float(1) }, { name: 'lr' });
    const m = ModelProto.toObject(ModelProto.decode(serializeModel(g)), { longs: Number }) as {
      graph: { node: Array<{ opType: string; attribute: Array<{ name: string; type: number; f?: number; i?: number }> }> };
    };
    const gemm = m.graph.node.find((n) => n.opType === 'Gemm')!;
    expect(gemm.attribute.find((a) => a.name === 'alpha')).toMatchObject({ type: 1, f: 1 });
    expect(gemm.attribute.find((a) => a.name === 'transB')).toMatchObject({ type: 2, i: 1 });
    expect(m.graph.node.find((n) => n.opType === 'LeakyRelu')!.attribute[0]).toMatchObject({ name: 'alpha', type: 1, f: 1 });
  });

  it('folds BatchNorm into the conv (same output as Conv -> BatchNormalization in ORT)', async () => {
    const sd = bnStateDict();
    for (const eps of [1e-5, 1e-3]) {
      const g = createGraph();
      const x = addInput(g, 'x', [1, 4, 7, 5]);
      const w = sd.get('conv.weight') as FloatTensor, b = sd.get('conv.bias') as FloatTensor;
      addOutput(g, batchNorm(g, conv(g, x, w, b, { pad: 1, name: 'conv' }), sd, 'bn', eps), 'ref');
      addOutput(g, convBn(g, x, sd, 'conv', 'bn', { pad: 1, bnEps: eps, name: 'folded' }), 'folded');
      const s = await createSession(serializeModel(g), { optimization: 'disabled' });
      const out = await runSession(s, { x: syntheticInput([1, 4, 7, 5], 3) });
      expect(maxAbsDiff(out.ref.data, out.folded.data)).toBeLessThan(1e-5);
      await s.release();
    }
    const folded = foldBatchNorm(sd.get('conv.weight') as FloatTensor, undefined, {
      weight: new Float32Array(6).fill(2), bias: new Float32Array(6).fill(1), runningMean: new Float32Array(6).fill(0.5),
      runningVar: new Float32Array(6).fill(3), eps: 1,
    });
    expect(folded.bias.data[0]).toBeCloseTo(1 - 0.5 * 2 / 2, 6);
    expect(folded.weight.data[0]).toBeCloseTo((sd.get('conv.weight')!.data as Float32Array)[0], 6);
  });

  it('gelu is the exact erf GELU', async () => {
    const g = createGraph();
    const x = addInput(g, 'x', [5]);
    addOutput(g, gelu(g, x), 'y');
    const s = await createSession(serializeModel(g));
    const xs = new Float32Array([-3, -1, 0, 0.5, 2]);
    const y = (await runSession(s, { x: { shape: [5], data: xs } })).y.data;
    // torch.nn.functional.gelu(torch.tensor([-3, -1, 0, 0.5, 2.])) in float32
    const ref = [-0.004049867391586304, -0.1586552858352661, 0, 0.3457311987876892, 1.9544999599456787];
    ref.forEach((r, i) => expect(y[i]).toBeCloseTo(r, 6));
  });

  it('tracks static shapes and counts MACs', () => {
    const g = createGraph();
    const x = addInput(g, 'x', [1, 4, 7, 5]);
    const y = conv(g, x, syntheticTensor('w', [6, 4, 3, 3], 1) as FloatTensor, undefined, { stride: 2, pad: 1 });
    expect(g.shapes.get(y)).toEqual([1, 6, 4, 3]);
    expect(g.macs).toBe(6 * 4 * 3 * 4 * 3 * 3);
  });

  it('PConv as Split, Slice or identity-padded group conv, channels-last MatMul blocks, or two streams give the same features', async () => {
    const sd = syntheticStateDict(fasternetParamSpecs('t0', { forkFeat: true }), 9);
    const input = syntheticInput([1, 3, 64, 64], 9);
    const outs = [];
    const forms = [{ pconv: 'split_cat' }, { pconv: 'slice_cat' }, { pconv: 'group_identity' }, { layout: 'nhwc' }, { layout: 'two_stream' }] as const;
    for (const f of forms) {
      const s = await createSession(serializeModel(featuresGraph(sd, { arch: 't0', ...f }).graph));
      outs.push(await runSession(s, { input }));
      await s.release();
    }
    for (const k of ['norm0', 'norm2', 'norm4', 'norm6']) {
      expect(maxAbsDiff(outs[0][k].data, outs[1][k].data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(outs[0][k].data, outs[2][k].data)).toBeLessThan(1e-4);
      expect(maxAbsDiff(outs[0][k].data, outs[3][k].data)).toBeLessThan(1e-4);
      expect(maxAbsDiff(outs[0][k].data, outs[4][k].data)).toBeLessThan(1e-4);
    }
  });
});

describe('model metadata', () => {
  const meta: ModelMetadata = {
    arch: 'fasternet_s', flavor: 'imagenet', numClasses: 1000, preprocess: imagenetPreprocess(), input: 'input', outputs: ['logits'],
  };

  it('round-trips through metadata_props of a serialized model', () => {
    const g = createGraph();
    addOutput(g, addInput(g, 'input', [1]));
    const props = metadataFromBytes(serializeModel(g, { metadata: metadataProps(meta) }));
    expect(parseMetadata(props)).toEqual(meta);
    expect(meta.preprocess).toMatchObject({ resize: 248, crop: 224 });
  });

  it('is read by seeking past the graph, and the model without it runs the same', async () => {
    const g = createGraph();
    const x = addInput(g, 'input', [1, 4, 5, 5]);
    addOutput(g, convBn(g, x, bnStateDict(), 'conv', 'bn', { pad: 1 }));
    const big = { ...metadataProps(meta), 'fasternet.blob': 'A'.repeat(300_000) };
    const bytes = serializeModel(g, { metadata: big });
    const dir = mkdtempSync(join(tmpdir(), 'fasternet-meta-'));
    const file = join(dir, 'm.onnx');
    writeFileSync(file, bytes);
    const full = ModelProto.decode(bytes) as unknown as { metadataProps: unknown[]; graph: unknown; opsetImport: unknown };
    for (const parts of [await readModelParts(file), await splitModelBytes(bytes)]) {
      expect(parts.props).toEqual(big);
      const stripped = ModelProto.decode(parts.graphBytes) as unknown as typeof full;
      expect(stripped.metadataProps).toEqual([]);
      expect(stripped.graph).toEqual(full.graph);
      expect(stripped.opsetImport).toEqual(full.opsetImport);
      expect(parts.graphBytes.length).toBeLessThan(bytes.length - 300_000);
    }
    expect(await readMetadataProps(file)).toEqual(big);
    const input = syntheticInput([1, 4, 5, 5], 3);
    const a = await runSession(await createSession(bytes, { threads: 1 }), { input });
    const b = await runSession(await createSession((await readModelParts(file)).graphBytes, { threads: 1, memArena: false }), { input });
    expect(maxAbsDiff(Object.values(a)[0].data, Object.values(b)[0].data)).toBe(0);
    // Truncated anywhere, a directory, or a non-ONNX file: one clear error.
    for (const cut of [1, 7, bytes.length - 1000, bytes.length - 1]) {
      writeFileSync(file, bytes.subarray(0, cut));
      await expect(readModelParts(file)).rejects.toThrow(/is not an ONNX model/);
    }
    writeFileSync(file, '');
    await expect(readMetadataProps(file)).rejects.toThrow(/not an ONNX model \(empty\)/);
    await expect(readModelParts(dir)).rejects.toThrow(/is a directory/);
    await expect(readModelParts(join(dir, 'missing.onnx'))).rejects.toThrow(/cannot read model/);
  });

  it('refuses models without it', () => {
    expect(() => parseMetadata({}, 'm.onnx')).toThrow(/m.onnx was not written by fasternet convert/);
    expect(() => parseMetadata({ ...metadataProps(meta), 'fasternet.numClasses': '"x"' })).toThrow(/^model: metadata: numClasses: Invalid input: expected number, received string$/);
  });
});

describe('session', () => {
  it('rejects bad thread counts and bad models with one-line errors', async () => {
    await expect(createSession(new Uint8Array([1, 2, 3]), { threads: 0 })).rejects.toThrow('threads must be an integer in [1, 256], got 0');
    await expect(createSession(new Uint8Array([1, 2, 3]))).rejects.toThrow(/cannot load ONNX model/);
    await expect(createSession('/nonexistent.onnx')).rejects.toThrow(/cannot read model/);
  });
});
