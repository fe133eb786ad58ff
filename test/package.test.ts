/**
 * The package as a user gets it: `npm run build`, `npm pack`, the tarball installed into a fresh project
 * (onnxruntime-node's CUDA download skipped with ONNXRUNTIME_NODE_INSTALL=skip, as the README says; dependencies from the npm cache when it has
 * them), then three consumers there: (a) plain `node app.mjs` (ESM), (b) `node app.js` in a CommonJS project
 * (`require('fasternet')`), (c) `tsc --noEmit` on strict nodenext TypeScript, both module kinds, with the
 * consumer's own type packages only (nothing of this repository's devDependencies). (a) and (b) run detect()
 * on an example image, annotate() and evaluate(); their numbers must equal the same calls made here on the
 * sources. Also: the tarball's file list (no test/, training/, scripts/; size) and the installed bin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { detect, release } from '../api/detect.ts';
import { annotate } from '../api/annotate.ts';
import { evaluate } from '../eval/index.ts';
import { packageRoot } from '../core/package.ts';

const run = promisify(execFile);
const ROOT = packageRoot();
const IMAGE = join(ROOT, 'examples', 'canvas_000001.png');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface PackInfo { filename: string; size: number; unpackedSize: number; files: Array<{ path: string; size: number }> }
interface ConsumerReport { n: number; first: unknown; pngSignature: string; stats: number[] }

/** What every consumer prints: the detections, annotate's PNG signature and evaluate's 12 stats. */
const BODY = `
  const r = await detect(image);
  const png = await annotate(image, r, { scoreThreshold: 0.5 });
  const results = r.detections.map((d) => ({ image_id: 1, category_id: d.categoryId, bbox: d.bbox, score: d.score, segmentation: d.mask }));
  const e = evaluate(gt, results, { iouType: 'segm' });
  process.stdout.write(JSON.stringify({ n: r.detections.length, first: r.detections[0], pngSignature: png.subarray(1, 4).toString('latin1'), stats: e.stats }));
  await release();
`;

const TS_CONSUMER = `
import { annotate, detect, evaluate, release, type Detection, type DetectResult } from 'fasternet';

async function main(image: string, gt: string): Promise<void> {
  const r: DetectResult = await detect(image, { scoreThreshold: 0.3, worker: true });
  const first: Detection | undefined = r.detections[0];
  const score: number = first?.score ?? 0;
  const png: Buffer = await annotate(image, r);
  const stats: number[] = evaluate(gt, [], { iouType: 'bbox' }).stats;
  // @ts-expect-error: an image is a path, bytes or RGB pixels, not a number
  await detect(42);
  // @ts-expect-error: iouType is 'bbox' | 'segm'
  evaluate(gt, [], { iouType: 'keypoints' });
  console.log(score, png.length, stats.length);
  await release();
}
void main(process.argv[2]!, process.argv[3]!);
`;

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run(NPM, args, { cwd, maxBuffer: 1 << 26, env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  return stdout;
}

describe('npm package: pack, install into a fresh project, use from ESM, CommonJS and TypeScript', () => {
  let dir: string;
  let pack: PackInfo;
  let gt: string;
  let expected: ConsumerReport;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fasternet-pack-'));
    // .npmrc's ignore-scripts also skips prepack, so the build runs explicitly, as the README's first command does.
    await npm(['run', 'build'], ROOT);
    pack = (JSON.parse(await npm(['pack', '--json', '--pack-destination', dir], ROOT)) as PackInfo[])[0];
    const app = join(dir, 'app');
    await run(process.execPath, ['-e', 'require("fs").mkdirSync(process.argv[1])', app]);
    // What `npm init -y` writes: no "type", so .js files are CommonJS.
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    await npm(['install', join(dir, pack.filename), '--prefer-offline', '--no-audit', '--no-fund'], app);
    copyFileSync(IMAGE, join(app, 'image.png'));
    // Ground truth of the example image (val image 1) alone.
    const all = JSON.parse(readFileSync(join(ROOT, 'data', 'canvases_val', 'annotations.json'), 'utf8'));
    gt = join(app, 'gt.json');
    writeFileSync(gt, JSON.stringify({
      ...all, images: all.images.filter((i: { id: number }) => i.id === 1), annotations: all.annotations.filter((a: { image_id: number }) => a.image_id === 1),
    }));

    const r = await detect(IMAGE);
    const png = await annotate(IMAGE, r, { scoreThreshold: 0.5 });
    const results = r.detections.map((d) => ({ image_id: 1, category_id: d.categoryId, bbox: d.bbox, score: d.score, segmentation: d.mask }));
    expected = { n: r.detections.length, first: r.detections[0], pngSignature: png.subarray(1, 4).toString('latin1'), stats: evaluate(gt, results, { iouType: 'segm' }).stats };
    await release();
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the tarball holds the compiled code, types, model, README and LICENSE; no tests, training or scripts', () => {
    const paths = pack.files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'models/fasternet_t0_canvases.onnx', 'README.md', 'LICENSE', 'package.json', 'data/imagenet_classes.json']));
    expect(paths.filter((p) => /^(test|training|scripts|examples)\/|\.ts$(?<!\.d\.ts)|\.py$/.test(p))).toEqual([]);
    const model = pack.files.filter((f) => f.path.endsWith('.onnx')).reduce((s, f) => s + f.size, 0);
    expect(pack.unpackedSize - model).toBeLessThan(20e6);
  });

  it('(a) ESM: node app.mjs', async () => {
    const app = join(dir, 'app');
    writeFileSync(join(app, 'app.mjs'), `import { annotate, detect, evaluate, release } from 'fasternet';\nconst [image, gt] = process.argv.slice(2);\n${BODY}`);
    const { stdout } = await run(process.execPath, ['app.mjs', 'image.png', gt], { cwd: app });
    expect(JSON.parse(stdout)).toEqual(expected);
    expect(expected.n).toBeGreaterThan(0);
    expect(expected.pngSignature).toBe('PNG');
  }, 120_000);

  it('(b) CommonJS: require(\'fasternet\')', async () => {
    const app = join(dir, 'app');
    writeFileSync(join(app, 'app.js'), `const { annotate, detect, evaluate, release } = require('fasternet');\nconst [image, gt] = process.argv.slice(2);\n(async () => {${BODY}})();`);
    const { stdout, stderr } = await run(process.execPath, ['app.js', 'image.png', gt], { cwd: app });
    expect(JSON.parse(stdout)).toEqual(expected);
    expect(stderr).not.toMatch(/Error/);
  }, 120_000);

  it('(c) TypeScript, strict nodenext, CommonJS and ESM files: tsc --noEmit', async () => {
    const app = join(dir, 'app');
    writeFileSync(join(app, 'app.ts'), TS_CONSUMER);
    writeFileSync(join(app, 'app.mts'), TS_CONSUMER);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false,
        // @types/node from this repository (a consumer has its own); nothing else of it is visible to the consumer.
        types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
      },
      files: ['app.ts', 'app.mts'],
    }));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((e: { stdout: string }) => e);
    expect(r.stdout).toBe('');
  }, 120_000);

  it('the installed bin runs the compiled CLI and reports the package version', async () => {
    const app = join(dir, 'app');
    const { stdout } = await run(join(app, 'node_modules', '.bin', 'fasternet'), ['--version'], { cwd: app });
    expect(stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });
});
