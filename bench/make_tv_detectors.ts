/**
 * Writes synthetic-weight torchvision-flavor Mask R-CNN models for `fasternet bench detect`:
 *   tsx bench/make_tv_detectors.ts OUT_DIR [arch...]     (arch: resnet50, s, m, l, t0, ...; default resnet50 s)
 * Weights come from backbones/synthetic.ts; the classifier is scaled up so that many boxes pass 0.05 and the
 * mask head sees a realistic load (up to 100 detections). Timing does not depend on the values otherwise.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticStateDict } from '../backbones/synthetic.ts';
import { fasternetParamSpecs, FASTERNET_VARIANTS, fasternetVariantName } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { convertTorchvisionDetector, torchvisionHeadSpecs } from '../convert/detection.ts';

const [out, ...archs] = process.argv.slice(2);
if (!out) throw new Error('usage: make_tv_detectors.ts OUT_DIR [arch...]');
mkdirSync(out, { recursive: true });
for (const arch of archs.length ? archs : ['resnet50', 's']) {
  const r50 = arch === 'resnet50';
  const name = r50 ? 'resnet50' : fasternetVariantName(arch);
  const body = r50 ? resnet50ParamSpecs(0) : fasternetParamSpecs(name, { forkFeat: true });
  const e = r50 ? 0 : FASTERNET_VARIANTS[name].embedDim;
  const inCh = r50 ? [256, 512, 1024, 2048] : [e, 2 * e, 4 * e, 8 * e];
  const sd = new Map([
    ...syntheticStateDict(body, 1, 'backbone.body.'),
    ...syntheticStateDict(torchvisionHeadSpecs(inCh), 1),
  ]);
  // Synthetic residual branches at full scale make deep FasterNets overflow; trained ones stay bounded.
  for (const [k, t] of sd) if (k.endsWith('.mlp.3.weight')) (t.data as Float32Array).forEach((v, i, a) => { a[i] = v * 0.3; });
  const cls = sd.get('roi_heads.box_predictor.cls_score.weight')!.data as Float32Array;
  for (let i = 0; i < cls.length; i++) cls[i] *= 40;
  const file = join(out, `mask_rcnn_${name}_tv.onnx`);
  writeFileSync(file, convertTorchvisionDetector(sd).bytes);
  process.stdout.write(`${file}\n`);
}
