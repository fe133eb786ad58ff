// Checks that the ONNX files this project writes run unchanged in onnxruntime-web (wasm backend, in Node) and
// give the PyTorch parity fixtures' outputs; also writes them to OUT for scripts/onnx_portability/onnx_check.py.
// onnxruntime-web is not a project dependency: install it anywhere and pass that folder.
//   mkdir /tmp/ortweb && (cd /tmp/ortweb && npm init -y && npm install onnxruntime-web)
//   npx tsx scripts/onnx_portability/web_check.ts /tmp/ortweb /tmp/onnxcheck
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticInput, syntheticStateDict } from '../../backbones/synthetic.ts';
import { fasternetParamSpecs } from '../../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../../backbones/resnet.ts';
import { featuresGraph, imagenetModel } from '../../backbones/model.ts';
import { serializeModel } from '../../runtime/graph.ts';

const [webDir = '/tmp/ortweb', out = '/tmp/onnxcheck'] = process.argv.slice(2);
const ort = createRequire(join(webDir, 'package.json'))('onnxruntime-web');
ort.env.wasm.numThreads = 1;
mkdirSync(out, { recursive: true });
const fixtures = new URL('../../test/fixtures/backbones/', import.meta.url).pathname;
const index = JSON.parse(readFileSync(join(fixtures, 'index.json'), 'utf8'));
const blob = readFileSync(join(fixtures, 'expected.bin'));
const wanted = ['fasternet_t0_cls', 'fasternet_t0_det', 'fasternet_s_det', 'resnet50_cls', 'resnet50_caffe_det'];
let worst = 0;
for (const c of index.cases.filter((x: { name: string }) => wanted.includes(x.name))) {
  const specs = c.arch === 'resnet50' ? resnet50ParamSpecs(c.mode === 'logits' ? 1000 : 0) : fasternetParamSpecs(c.arch, { forkFeat: c.mode === 'features' });
  const sd = syntheticStateDict(specs, c.seed);
  const bytes = c.mode === 'logits' ? imagenetModel(sd, { arch: c.arch }).bytes : serializeModel(featuresGraph(sd, { arch: c.arch, style: c.style }).graph);
  writeFileSync(join(out, `${c.name}.onnx`), bytes);
  const s = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const res = await s.run({ input: new ort.Tensor('float32', syntheticInput(c.input, c.seed).data, c.input) });
  const parts: string[] = [];
  for (const o of c.outputs) {
    const n = o.shape.reduce((a: number, b: number) => a * b, 1);
    const ref = new Float32Array(blob.buffer.slice(blob.byteOffset + o.offset, blob.byteOffset + o.offset + 4 * n));
    const got = res[o.name].data as Float32Array;
    let lo = Infinity, hi = -Infinity, err = 0;
    for (let i = 0; i < n; i++) { lo = Math.min(lo, ref[i]); hi = Math.max(hi, ref[i]); err = Math.max(err, Math.abs(got[i] - ref[i])); }
    worst = Math.max(worst, err / (hi - lo));
    parts.push(`${o.name} [${res[o.name].dims}] rel err ${(err / (hi - lo)).toExponential(2)}`);
  }
  console.log(`onnxruntime-web ${ort.env.versions?.web ?? ''} (wasm) ${c.name}: ${parts.join(', ')}`);
}
console.log(worst < 1e-4 ? `ok: worst relative error ${worst.toExponential(2)}` : `FAILED: worst relative error ${worst.toExponential(2)}`);
process.exitCode = worst < 1e-4 ? 0 : 1;
