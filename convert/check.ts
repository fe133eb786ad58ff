/**
 * One check of a state dict against the architecture a flavor builds, shared by every flavor: the keys
 * (missing and unexpected listed, as load_state_dict(strict=True)), every tensor's shape, dtype (floating
 * point) and values (finite). A checkpoint that passes cannot give an ONNX Runtime shape error or silently
 * wrong detections from a mis-shaped tensor.
 */
import { checkKeys, checkShapes } from '../checkpoint/load.ts';
import { UserError } from '../core/errors.ts';
import type { StateDict } from '../core/tensor.ts';

/** A key and the shape the architecture gives it. */
export type Spec = readonly [key: string, shape: readonly number[]];

const ignoreBnCounter = (k: string): boolean => k.endsWith('num_batches_tracked');

function listed(items: string[], max = 5): string {
  return items.length > max ? `${items.slice(0, max).join(', ')}, ... ${items.length - max} more` : items.join(', ');
}

/** Keys, shapes, dtypes and finiteness of `sd` against `specs`; BatchNorm num_batches_tracked buffers are ignored. */
export function checkStateDict(sd: StateDict, specs: readonly Spec[], what: string): void {
  checkKeys(sd, specs.map((s) => s[0]), what, { ignore: ignoreBnCounter });
  const real = specs.filter((s) => !ignoreBnCounter(s[0]));
  checkShapes(sd, real.map(([k, shape]) => [k, [...shape]] as [string, number[]]), what);
  const notFloat: string[] = [];
  const notFinite: string[] = [];
  for (const [k] of real) {
    const t = sd.get(k);
    if (!t) continue;
    if (!(t.data instanceof Float32Array)) {
      notFloat.push(`${k}: ${t.sourceDtype ?? t.data.constructor.name}`);
      continue;
    }
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      // v - v is NaN exactly for NaN and +-Infinity: one subtraction per element.
      if (d[i] - d[i] !== 0) {
        notFinite.push(k);
        break;
      }
    }
  }
  if (notFloat.length) throw new UserError(`${what}: ${notFloat.length} tensor${notFloat.length === 1 ? ' is' : 's are'} not floating point (${listed(notFloat.sort())})`);
  if (notFinite.length) throw new UserError(`${what}: ${notFinite.length} tensor${notFinite.length === 1 ? ' holds' : 's hold'} NaN or infinite values (${listed(notFinite.sort())})`);
}

/** Prefixes `key` of each spec. */
export function prefixed(prefix: string, specs: ReadonlyArray<{ key: string; shape: number[] }>): Spec[] {
  return specs.map((s) => [prefix + s.key, s.shape]);
}

/** The Mask R-CNN parts above the backbone, by the key prefix each flavor gives them. */
export interface HeadNames {
  lateral: string[];
  output: string[];
  rpnConv: string;
  rpnCls: string;
  rpnReg: string;
  fc6: string;
  fc7: string;
  cls: string;
  reg: string;
  maskConvs: string[];
  upsample: string;
  logits: string;
}

/** Widths read from a few tensors; every other tensor must agree with them. */
export interface HeadDims {
  inChannels: number[];
  fpn: number;
  anchors: number;
  /** Box head representation size (fc6 rows). */
  hidden: number;
  clsRows: number;
  regRows: number;
  maskWidth: number;
  maskClasses: number;
}

export function headSpecs(n: HeadNames, d: HeadDims): Spec[] {
  const s: Spec[] = [];
  const conv = (p: string, cout: number, cin: number, k: number): void => {
    s.push([`${p}.weight`, [cout, cin, k, k]], [`${p}.bias`, [cout]]);
  };
  const fc = (p: string, rows: number, cols: number): void => {
    s.push([`${p}.weight`, [rows, cols]], [`${p}.bias`, [rows]]);
  };
  n.lateral.forEach((p, i) => conv(p, d.fpn, d.inChannels[i], 1));
  n.output.forEach((p) => conv(p, d.fpn, d.fpn, 3));
  conv(n.rpnConv, d.fpn, d.fpn, 3);
  conv(n.rpnCls, d.anchors, d.fpn, 1);
  conv(n.rpnReg, 4 * d.anchors, d.fpn, 1);
  fc(n.fc6, d.hidden, d.fpn * 49);
  fc(n.fc7, d.hidden, d.hidden);
  fc(n.cls, d.clsRows, d.hidden);
  fc(n.reg, d.regRows, d.hidden);
  n.maskConvs.forEach((p, i) => conv(p, d.maskWidth, i === 0 ? d.fpn : d.maskWidth, 3));
  conv(n.upsample, d.maskWidth, d.maskWidth, 2); // ConvTranspose2d: [in, out, 2, 2]
  conv(n.logits, d.maskClasses, d.maskWidth, 1);
  return s;
}

/**
 * The output width of layer `prefix`, read from its bias (then its weight), or `fallback` when absent: a
 * bias is 1-D, so one mis-shaped weight is reported alone instead of shifting every width derived from it.
 */
export function widthOf(sd: StateDict, prefix: string, fallback: number): number {
  for (const k of [`${prefix}.bias`, `${prefix}.weight`]) {
    const t = sd.get(k);
    if (t && t.shape.length > 0) return t.shape[0];
  }
  return fallback;
}
