/**
 * Side-by-side report of two results sets evaluated on the same GT (e.g. FasterNet vs the ResNet50
 * baseline): each of the 12 COCO stats for both and their difference.
 */
import type { EvalResult } from './index.ts';
import { formatFixed3 } from './summary.ts';

/** Stat labels as pycocotools prints them, without the value: "Average Precision  (AP) @[ ... ]". */
function label(line: string): string {
  const eq = line.lastIndexOf(' = ');
  return eq < 0 ? line : line.slice(0, eq);
}

function signed(d: number): string {
  const s = formatFixed3(Math.abs(d));
  return (d < 0 && s !== '0.000' ? '-' : '+') + s;
}

/** Per-stat difference a - b; NaN where either side is -1 (nothing to average). */
export function statDifferences(a: readonly number[], b: readonly number[]): number[] {
  return a.map((v, i) => (v === -1 || b[i] === -1 ? NaN : v - b[i]));
}

/** The 12 summary lines with columns for the results, the baseline and results - baseline. */
export function comparisonLines(a: EvalResult, b: EvalResult, names: [string, string] = ['results', 'baseline']): string[] {
  const labels = a.summary.map(label);
  const width = Math.max(...labels.map((l) => l.length));
  const col = (s: string): string => s.padStart(Math.max(9, names[0].length, names[1].length) + 2);
  const diffs = statDifferences(a.stats, b.stats);
  const head = `${' '.repeat(width)}${col(names[0])}${col(names[1])}${col('diff')}`;
  return [
    head,
    ...labels.map(
      (l, i) =>
        `${l.padEnd(width)}${col(formatFixed3(a.stats[i]))}${col(formatFixed3(b.stats[i]))}${col(Number.isNaN(diffs[i]) ? 'n/a' : signed(diffs[i]))}`,
    ),
  ];
}
