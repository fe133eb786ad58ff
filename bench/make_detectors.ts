/**
 * Writes synthetic-weight Mask R-CNN models for `fasternet bench detect`:
 *   tsx bench/make_detectors.ts OUT_DIR [--flavor torchvision|mmdet] [arch...]
 *   (arch: resnet50, s, m, l, t0, ...; default resnet50 s)
 * torchvision flavor: torchvision key names, 91 COCO labels. mmdet flavor: mmdetection 2.x key names with the
 * backbone under `backbone.` (FasterNet's official names; ResNet50 pytorch style), 80 COCO classes, as
 * `fasternet convert --flavor mmdet` reads a released checkpoint.
 * Weights come from backbones/synthetic.ts; the classifier is scaled up so that many boxes pass 0.05 and the
 * mask head sees a realistic load (up to 100 detections). Timing does not depend on the values otherwise.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StateDict } from '../core/tensor.ts';
import { syntheticStateDict } from '../backbones/synthetic.ts';
import { fasternetParamSpecs, FASTERNET_VARIANTS, fasternetVariantName } from '../backbones/fasternet.ts';
import { resnet50ParamSpecs } from '../backbones/resnet.ts';
import { convertTorchvisionDetector, torchvisionHeadSpecs } from '../convert/detection.ts';
import { COCO_CLASSES, convertMmdetDetector } from '../convert/mmdet.ts';

type Spec = { key: string; shape: number[] };

/** mmdetection 2.x Mask R-CNN neck and heads (FPN 256, shared 2fc box head, 4-conv mask head). */
function mmdetHeadSpecs(inChannels: number[], numClasses = 80, c = 256): Spec[] {
  const s = (key: string, ...shape: number[]): Spec => ({ key, shape });
  const conv = (p: string, o: number, i: number, k: number) => [s(`${p}.weight`, o, i, k, k), s(`${p}.bias`, o)];
  return [
    ...inChannels.flatMap((ch, i) => conv(`neck.lateral_convs.${i}.conv`, c, ch, 1)),
    ...inChannels.flatMap((_, i) => conv(`neck.fpn_convs.${i}.conv`, c, c, 3)),
    ...conv('rpn_head.rpn_conv', c, c, 3), ...conv('rpn_head.rpn_cls', 3, c, 1), ...conv('rpn_head.rpn_reg', 12, c, 1),
    s('roi_head.bbox_head.shared_fcs.0.weight', 1024, c * 49), s('roi_head.bbox_head.shared_fcs.0.bias', 1024),
    s('roi_head.bbox_head.shared_fcs.1.weight', 1024, 1024), s('roi_head.bbox_head.shared_fcs.1.bias', 1024),
    s('roi_head.bbox_head.fc_cls.weight', numClasses + 1, 1024), s('roi_head.bbox_head.fc_cls.bias', numClasses + 1),
    s('roi_head.bbox_head.fc_reg.weight', 4 * numClasses, 1024), s('roi_head.bbox_head.fc_reg.bias', 4 * numClasses),
    ...[0, 1, 2, 3].flatMap((i) => conv(`roi_head.mask_head.convs.${i}.conv`, c, c, 3)),
    s('roi_head.mask_head.upsample.weight', c, c, 2, 2), s('roi_head.mask_head.upsample.bias', c),
    ...conv('roi_head.mask_head.conv_logits', numClasses, c, 1),
  ];
}

function scale(sd: StateDict, key: string, f: number): void {
  const t = sd.get(key);
  if (t) (t.data as Float32Array).forEach((v, i, a) => { a[i] = v * f; });
}

function syntheticDetector(arch: string, flavor: 'torchvision' | 'mmdet'): { name: string; bytes: Uint8Array } {
  const r50 = arch === 'resnet50';
  const name = r50 ? 'resnet50' : fasternetVariantName(arch);
  const body = r50 ? resnet50ParamSpecs(0) : fasternetParamSpecs(name, { forkFeat: true });
  const e = r50 ? 0 : FASTERNET_VARIANTS[name].embedDim;
  const inCh = r50 ? [256, 512, 1024, 2048] : [e, 2 * e, 4 * e, 8 * e];
  const tv = flavor === 'torchvision';
  const sd: StateDict = new Map([
    ...syntheticStateDict(body, 1, tv ? 'backbone.body.' : 'backbone.'),
    ...syntheticStateDict(tv ? torchvisionHeadSpecs(inCh) : mmdetHeadSpecs(inCh), 1),
  ]);
  // Synthetic residual branches at full scale make deep FasterNets overflow; trained ones stay bounded.
  for (const k of sd.keys()) if (k.endsWith('.mlp.3.weight')) scale(sd, k, 0.3);
  scale(sd, tv ? 'roi_heads.box_predictor.cls_score.weight' : 'roi_head.bbox_head.fc_cls.weight', 40);
  const bytes = tv
    ? convertTorchvisionDetector(sd).bytes
    : convertMmdetDetector(sd, { CLASSES: COCO_CLASSES }, { resnetStyle: 'pytorch' }).bytes;
  return { name, bytes };
}

const args = process.argv.slice(2);
const fi = args.indexOf('--flavor');
const flavor = fi >= 0 ? args.splice(fi, 2)[1] : 'torchvision';
const [out, ...archs] = args;
if (!out || (flavor !== 'torchvision' && flavor !== 'mmdet')) {
  throw new Error('usage: make_detectors.ts OUT_DIR [--flavor torchvision|mmdet] [arch...]');
}
mkdirSync(out, { recursive: true });
for (const arch of archs.length ? archs : ['resnet50', 's']) {
  const { name, bytes } = syntheticDetector(arch, flavor);
  const file = join(out, `mask_rcnn_${name}_${flavor === 'mmdet' ? 'mmdet' : 'tv'}.onnx`);
  writeFileSync(file, bytes);
  process.stdout.write(`${file}\n`);
}
