/**
 * Per-layer int8 sensitivity of a converted model (how the default float32 set of `fasternet quantize` was
 * chosen): calibrate every Conv/Gemm/MatMul of the three graphs, then quantize ONE layer at a time (all others
 * float) and measure the relative L2 error of that graph's outputs against float on a few calibration images:
 *   err = ||y_int8 - y_float|| / ||y_float||, the worst over the graph's outputs.
 * Also the default plan (stem and predictors float) and every layer int8, per graph.
 *
 *   npx tsx bench/quantize_sensitivity.ts MODEL.onnx --calib DIR [--calib-images 32] [--eval-images 4] [--json R.json]
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { calibrateModel } from '../api/quantize.ts';
import { readModelParts } from '../runtime/metadata.ts';
import { decodeModel, planQuantization, quantizeGraph, type QuantPlan, type Range } from '../runtime/quantize.ts';
import { createSession, runSession } from '../runtime/session.ts';
import type { FloatTensor } from '../core/tensor.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { calib: { type: 'string' }, 'calib-images': { type: 'string', default: '32' }, 'eval-images': { type: 'string', default: '4' }, json: { type: 'string' } },
});
const model = positionals[0];
if (!model || !values.calib) {
  console.error('usage: npx tsx bench/quantize_sensitivity.ts MODEL.onnx --calib DIR [--calib-images 32] [--eval-images 4] [--json R.json]');
  process.exit(2);
}
const evalImages = Number(values['eval-images']);
// Box-head RoIs are 1000 per image: the first 300 of each image keep the runs short.
const MAX_ROWS = 300;

const parts = await readModelParts(model);
const graphOutputs = (b: Uint8Array) => new Set(decodeModel(b).graph.output.map((o) => o.name));
const outputNames = new Map<string, Set<string>>([['main', graphOutputs(parts.graphBytes)]]);
for (const k of ['box', 'mask']) {
  const b64 = parts.props[`fasternet.${k}_head_onnx`];
  if (b64) outputNames.set(k, graphOutputs(Buffer.from(b64, 'base64')));
}
const captured = new Map<string, Array<{ feeds: Record<string, FloatTensor>; outs: Record<string, FloatTensor> }>>();
const calib = await calibrateModel(model, {
  calibDir: values.calib, calibImages: Number(values['calib-images']), method: 'minmax', keepSensitive: false,
  progress: (_p, _n, done, total) => { if (done === total) console.error(`calibrated on ${total} images`); },
  onRun: (key, feeds, outs) => {
    const list = captured.get(key) ?? [];
    captured.set(key, list);
    if (list.length >= evalImages) return;
    const names = outputNames.get(key)!;
    const clip = (t: FloatTensor): FloatTensor => (key === 'box' && t.shape[0] > MAX_ROWS
      ? { shape: [MAX_ROWS, ...t.shape.slice(1)], data: t.data.slice(0, MAX_ROWS * (t.data.length / t.shape[0])) }
      : { shape: t.shape, data: t.data.slice() });
    list.push({
      feeds: Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, clip(v)])),
      outs: Object.fromEntries(Object.entries(outs).filter(([k]) => names.has(k)).map(([k, v]) => [k, clip(v)])),
    });
  },
});

async function outputError(bytes: Uint8Array, key: string): Promise<number> {
  const s = await createSession(bytes, { memArena: false });
  let worst = 0;
  try {
    const acc = new Map<string, { d: number; n: number }>();
    for (const { feeds, outs } of captured.get(key) ?? []) {
      const q = await runSession(s, feeds, Object.keys(outs));
      for (const [k, f] of Object.entries(outs)) {
        const a = acc.get(k) ?? { d: 0, n: 0 };
        for (let i = 0; i < f.data.length; i++) { const e = q[k].data[i] - f.data[i]; a.d += e * e; a.n += f.data[i] * f.data[i]; }
        acc.set(k, a);
      }
    }
    for (const a of acc.values()) worst = Math.max(worst, Math.sqrt(a.d / Math.max(a.n, 1e-30)));
  } finally {
    await s.release();
  }
  return worst;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const rows: Array<{ graph: string; layer: string; opType: string; error: number }> = [];
for (const g of calib.graphs) {
  const m = decodeModel(g.bytes);
  const run = (plan: QuantPlan) => outputError(quantizeGraph(g.bytes, plan, g.ranges as Map<string, Range>).bytes, g.key);
  for (const q of g.plan.nodes) {
    const plan = planQuantization(m, { keepSensitive: false, keepFp32: [new RegExp(`^(?!${escape(q.name)}$)`)] });
    const error = await run(plan);
    rows.push({ graph: g.key, layer: q.name, opType: q.opType, error });
    console.log(`${g.key.padEnd(5)} ${q.name.padEnd(60)} ${error.toExponential(2)}`);
  }
  const imageInput = g.key === 'main' ? calib.meta.input : undefined;
  rows.push({ graph: g.key, layer: '(default plan: stem and predictors float)', opType: '', error: await run(planQuantization(m, { imageInput })) });
  rows.push({ graph: g.key, layer: '(every layer int8)', opType: '', error: await run(g.plan) });
  console.log(rows.slice(-2).map((r) => `${g.key.padEnd(5)} ${r.layer.padEnd(60)} ${r.error.toExponential(2)}`).join('\n'));
}
if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 1)}\n`);

