/**
 * FPN neck as ONNX graph nodes (torchvision FeaturePyramidNetwork + LastLevelMaxPool == mmdet FPN with
 * num_outs 5, add_extra_convs False):
 *   last = lateral[-1](C5); P5 = output[-1](last)
 *   for i = 2..0: last = lateral[i](Ci) + nearest(last, size of lateral[i]); Pi = output[i](last)
 *   P6 = max_pool2d(P5, kernel 1, stride 2)
 * Nearest resize to the lateral's size uses ONNX Resize(sizes = Shape(lateral), asymmetric, floor), which is
 * torch's nearest (src = floor(dst * in / out)).
 */
import type { ConvWeights } from '../core/tensor.ts';
import { add, addNode, attr, conv, maxPool, type Graph } from '../runtime/graph.ts';


export interface FpnWeights {
  /** 1x1 lateral convs (torchvision inner_blocks, mmdet lateral_convs), finest level first. */
  lateral: ConvWeights[];
  /** 3x3 output convs (torchvision layer_blocks, mmdet fpn_convs). */
  output: ConvWeights[];
}

/** Nearest-neighbour resize of `x` to the spatial size of `like` (F.interpolate(size=like.shape[-2:])). */
function resizeNearestLike(g: Graph, x: string, like: string, name: string): string {
  const [shape] = addNode(g, 'Shape', [like], {}, { name: `${name}.shape` });
  const [y] = addNode(g, 'Resize', [x, '', '', shape], {
    mode: attr.string('nearest'),
    coordinate_transformation_mode: attr.string('asymmetric'),
    nearest_mode: attr.string('floor'),
  }, { name });
  const ls = g.shapes.get(like), xs = g.shapes.get(x);
  if (ls && xs) g.shapes.set(y, [xs[0], xs[1], ls[2], ls[3]]);
  return y;
}

/** Adds the FPN to `g`; returns P2..P5 and the extra max-pooled P6 (highest resolution first). */
export function fpnGraph(g: Graph, features: readonly string[], w: FpnWeights, prefix = 'fpn'): string[] {
  const n = features.length;
  if (w.lateral.length !== n || w.output.length !== n) {
    throw new Error(`FPN has ${w.lateral.length} lateral and ${w.output.length} output convs for ${n} feature maps`);
  }
  w.lateral.forEach((l, i) => {
    if (l.weight.shape[2] !== 1 || l.weight.shape[3] !== 1) throw new Error(`FPN lateral conv ${i} is not 1x1`);
  });
  w.output.forEach((o, i) => {
    if (o.weight.shape[2] !== 3 || o.weight.shape[3] !== 3) throw new Error(`FPN output conv ${i} is not 3x3`);
  });
  const results: string[] = new Array(n);
  let last = conv(g, features[n - 1], w.lateral[n - 1].weight, w.lateral[n - 1].bias, { name: `${prefix}.lateral.${n - 1}` });
  results[n - 1] = conv(g, last, w.output[n - 1].weight, w.output[n - 1].bias, { pad: 1, name: `${prefix}.output.${n - 1}` });
  for (let i = n - 2; i >= 0; i--) {
    const lateral = conv(g, features[i], w.lateral[i].weight, w.lateral[i].bias, { name: `${prefix}.lateral.${i}` });
    const up = resizeNearestLike(g, last, lateral, `${prefix}.upsample.${i}`);
    last = add(g, lateral, up, `${prefix}.add.${i}`);
    results[i] = conv(g, last, w.output[i].weight, w.output[i].bias, { pad: 1, name: `${prefix}.output.${i}` });
  }
  const pool = maxPool(g, results[n - 1], 1, 2, 0, `${prefix}.pool`);
  return [...results, pool];
}
