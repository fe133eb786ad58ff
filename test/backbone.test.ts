import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createSession, runSession } from '../runtime/session.ts';
import { serializeModel } from '../runtime/graph.ts';
import { syntheticInput, syntheticStateDict, syntheticTensor } from '../backbones/synthetic.ts';
import { fasternetParamSpecs } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { classifierGraph, detectArch, featuresGraph } from '../backbones/model.ts';

const dir = new URL('./fixtures/backbones/', import.meta.url);
const index = JSON.parse(readFileSync(new URL('index.json', dir), 'utf8'));
const blob = readFileSync(new URL('expected.bin', dir));

interface Case {
  name: string; arch: string; mode: 'logits' | 'features'; seed: number; input: number[]; style?: 'pytorch' | 'caffe';
  outputs: Array<{ name: string; shape: number[]; offset: number }>;
}

function expected(o: { shape: number[]; offset: number }): Float32Array {
  const n = o.shape.reduce((a, b) => a * b, 1);
  return new Float32Array(blob.buffer.slice(blob.byteOffset + o.offset, blob.byteOffset + o.offset + 4 * n));
}

/** max |a - b| relative to the reference's range. */
function relErr(a: Float32Array, b: Float32Array): number {
  let lo = Infinity, hi = -Infinity, err = 0;
  for (let i = 0; i < b.length; i++) {
    lo = Math.min(lo, b[i]); hi = Math.max(hi, b[i]);
    err = Math.max(err, Math.abs(a[i] - b[i]));
  }
  return err / (hi - lo);
}

describe('synthetic weight generator matches the Python fixture generator', () => {
  for (const c of index.generator_check as Array<{ key: string; shape: number[]; seed: number; head: number[]; sum: number }>) {
    it(`${c.key} seed ${c.seed}`, () => {
      const t = c.key === 'input' ? syntheticInput(c.shape, c.seed) : syntheticTensor(c.key, c.shape, c.seed);
      const d = t.data as Float32Array;
      expect(Array.from(d.slice(0, 8))).toEqual(c.head);
      let s = 0;
      for (const v of d) s += v;
      expect(s).toBeCloseTo(c.sum, 9);
    });
  }
});

describe('backbone parity with the official PyTorch models', () => {
  for (const c of index.cases as Case[]) {
    it(c.name, async () => {
      const specs = c.arch === 'resnet50' ? resnet50ParamSpecs(c.mode === 'logits' ? 1000 : 0)
        : fasternetParamSpecs(c.arch, { forkFeat: c.mode === 'features' });
      const sd = syntheticStateDict(specs, c.seed);
      if (c.mode === 'logits') expect(detectArch(sd)).toBe(c.arch);
      // The default form per variant (two_stream for T1/T2/S/L, nchw for T0/M), and for S both forms explicitly.
      const layouts = c.arch === 'fasternet_s' ? ([undefined, 'nchw', 'two_stream'] as const) : ([undefined] as const);
      for (const layout of layouts) {
        const { graph } = c.mode === 'logits'
          ? classifierGraph(sd, { dims: ['N', 3, 'H', 'W'], layout })
          : featuresGraph(sd, { arch: c.arch, style: c.style, layout });
        const session = await createSession(serializeModel(graph));
        const out = await runSession(session, { input: syntheticInput(c.input, c.seed) });
        for (const o of c.outputs) {
          const got = out[o.name];
          expect(got.shape).toEqual(o.shape);
          const err = relErr(got.data, expected(o));
          if (process.env.PARITY_LOG) console.log(`${c.name} ${layout ?? 'default'} ${o.name} rel err ${err.toExponential(2)}`);
          expect(err).toBeLessThan(1e-4);
        }
        await session.release();
      }
    });
  }
});
