/**
 * `fasternet bench detect` on the bundled default model (256x256 canvases): the stage timings add up to the
 * total, the detections equal what detect() returns, and --compare runs the second model in its own process and
 * reports the ratio. No timing thresholds (speed targets live in the benchmark's output, not in tests).
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchDetect } from '../bench/detect.ts';
import { DEFAULT_MODEL_PATH, detect, releaseDetectModels } from '../api/detect.ts';

const run = promisify(execFile);
const IMAGE = 'data/canvases_val/images/000001.png';

describe('bench detect', () => {
  it('times every stage of the default model and finds what detect() finds', async () => {
    const r = await benchDetect(DEFAULT_MODEL_PATH, IMAGE, { runs: 2, threads: 1 });
    expect(Object.keys(r.stages)).toEqual(['preprocess', 'backbone_fpn_rpn', 'proposals', 'roi_align', 'box_head', 'nms', 'mask_head', 'mask_paste']);
    const sum = Object.values(r.stages).reduce((a, b) => a + b, 0);
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThanOrEqual(r.ms_median * 1.5 + 5); // medians per stage vs median total
    expect(r.inputSize).toEqual([256, 256]);
    const d = await detect(IMAGE, { threads: 1 });
    expect(r.detections).toBe(d.detections.length);
    expect(r.detections).toBeGreaterThan(0);
    expect(r.peak_rss_mb).toBeGreaterThan(50);
    await releaseDetectModels();
  });

  it('--compare runs both models in one invocation and writes the ratio', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fasternet-bench-detect-test-'));
    const out = join(dir, 'r.json');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'bench', 'detect', '--model', DEFAULT_MODEL_PATH,
      '--compare', DEFAULT_MODEL_PATH, '--image', IMAGE, '--runs', '1', '--threads', '1', '--no-torch', '--json', out]);
    expect(stdout).toMatch(/ratios \(median, same run/);
    const r = JSON.parse(readFileSync(out, 'utf8'));
    expect(r.compare.arch).toBe('fasternet_t0');
    expect(r.compare.detections).toBe(r.detections);
    // The default model is the int8 one: bench detect labels it <arch>_int8.
    expect(r.ratios['fasternet_t0_int8_ms / fasternet_t0_int8_ms']).toBeCloseTo(r.compare.ms_median / r.ms_median, 10);
    expect(r.torch).toBeUndefined();
  });
});
