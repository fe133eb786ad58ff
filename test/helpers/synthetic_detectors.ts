/** Small synthetic Mask R-CNN state dicts (FasterNet-T0 bodies, 64-wide FPN) in the torchvision and mmdet layouts. */
import { syntheticStateDict, type ParamSpec } from '../../backbones/synthetic.ts';
import { fasternetParamSpecs } from '../../backbones/fasternet.ts';
import { torchvisionHeadSpecs } from '../../convert/detection.ts';
import type { StateDict } from '../../core/tensor.ts';

const T0_WIDTHS = [40, 80, 160, 320];

export function tvStateDict(): StateDict {
  return new Map([
    ...syntheticStateDict(fasternetParamSpecs('fasternet_t0', { forkFeat: true }), 1, 'backbone.body.'),
    ...syntheticStateDict(torchvisionHeadSpecs(T0_WIDTHS, 11, 64), 1),
  ]);
}

/** mmdet 2.x names (written out here, independently of the converter): 64-wide FPN, 4 classes + background. */
export function mmdetHeadSpecs(inChannels: number[], classes: number, c = 64, hidden = 128): ParamSpec[] {
  const s: ParamSpec[] = [];
  const conv = (k: string, cout: number, cin: number, ks: number) => s.push({ key: `${k}.weight`, shape: [cout, cin, ks, ks] }, { key: `${k}.bias`, shape: [cout] });
  const fc = (k: string, rows: number, cols: number) => s.push({ key: `${k}.weight`, shape: [rows, cols] }, { key: `${k}.bias`, shape: [rows] });
  inChannels.forEach((cin, i) => conv(`neck.lateral_convs.${i}.conv`, c, cin, 1));
  inChannels.forEach((_, i) => conv(`neck.fpn_convs.${i}.conv`, c, c, 3));
  conv('rpn_head.rpn_conv', c, c, 3);
  conv('rpn_head.rpn_cls', 3, c, 1);
  conv('rpn_head.rpn_reg', 12, c, 1);
  fc('roi_head.bbox_head.shared_fcs.0', hidden, c * 49);
  fc('roi_head.bbox_head.shared_fcs.1', hidden, hidden);
  fc('roi_head.bbox_head.fc_cls', classes + 1, hidden);
  fc('roi_head.bbox_head.fc_reg', 4 * classes, hidden);
  for (let i = 0; i < 4; i++) conv(`roi_head.mask_head.convs.${i}.conv`, c, c, 3);
  conv('roi_head.mask_head.upsample', c, c, 2);
  conv('roi_head.mask_head.conv_logits', classes, c, 1);
  return s;
}

export function mmdetStateDict(): StateDict {
  return new Map([
    ...syntheticStateDict(fasternetParamSpecs('fasternet_t0', { forkFeat: true }), 2, 'backbone.'),
    ...syntheticStateDict(mmdetHeadSpecs(T0_WIDTHS, 4), 2),
  ]);
}

