/**
 * The README's "Folders, streams and shards" examples, run as written and read from README.md (so the two cannot
 * drift): the GNU parallel block as a shell script, and the Kubernetes Indexed Job's container command (`command`
 * + `args` of the YAML) once per completion index with JOB_COMPLETION_INDEX set and the volumes' mount points on
 * temporary folders, one pod killed midway and restarted as `restartPolicy: OnFailure` does, then the README's
 * merge command. Both run in a fresh consumer project that installed this clone by path as the README says (so
 * `npx fasternet` is the compiled CLI, found the way a user's is), whose data/canvases_val holds the first 10 val
 * images and their GT. The merged results must be byte-identical to one unsharded `detect` run with the README's
 * own settings, and the merged evaluation's output the same as that run's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { packageRoot } from '../core/package.ts';
import { userShellEnv } from '../bench/startup.ts';

const execFileP = promisify(execFile);
const ROOT = packageRoot();
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const N_IMAGES = 10;
/** The subset's image ids: the val split's first ten, whose ids follow their file names' order. */
const IDS = Array.from({ length: N_IMAGES }, (_, k) => k + 1);
const HAS_PARALLEL = spawnSync('parallel', ['--version']).status === 0;

interface Run { code: number; stdout: string; stderr: string }
interface K8sContainer { command: string[]; args: string[]; volumeMounts: Array<{ name: string; mountPath: string }> }
interface K8sJob {
  kind: string;
  spec: { completions: number; parallelism: number; completionMode: string; template: { spec: { restartPolicy: string; containers: K8sContainer[] } } };
}

/** The README's 4-space-indented code block that has a line starting with `start`, unindented. */
export function indentedBlock(readme: string, start: string): string {
  const lines = readme.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`    ${start}`));
  if (at < 0) throw new Error(`README.md has no indented line starting with "${start}"`);
  let a = at;
  let b = at;
  while (a > 0 && lines[a - 1].startsWith('    ')) a--;
  while (b + 1 < lines.length && lines[b + 1].startsWith('    ')) b++;
  return `${lines.slice(a, b + 1).map((l) => l.slice(4)).join('\n')}\n`;
}

/** The first ```yaml block after the text `after`. */
function yamlBlockAfter(readme: string, after: string): string {
  const from = readme.indexOf(after);
  const m = from < 0 ? null : /```yaml\n([\s\S]*?)\n```/.exec(readme.slice(from));
  if (!m) throw new Error(`README.md has no yaml block after "${after}"`);
  return m[1];
}

/** The words of the script's line starting with `start` (backslash continuations joined; no quoting used). */
function commandLine(script: string, start: string): string[] {
  const line = script.replace(/\\\n\s*/g, '').split('\n').find((l) => l.startsWith(start));
  if (!line) throw new Error(`no line starting with "${start}" in:\n${script}`);
  expect(line, 'the parsing below splits on blanks').not.toMatch(/["'`$]/);
  return line.trim().split(/\s+/);
}

/** The same command without sharding and its per-shard outputs: what one process would run on everything. */
function unsharded(cmd: string[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < cmd.length; k++) {
    if (cmd[k] === '--resume') continue;
    if (['--shard', '--jsonl', '--json'].includes(cmd[k])) k++;
    else out.push(cmd[k]);
  }
  return out;
}

function finished(child: ChildProcess, out: { stdout: string; stderr: string }): Promise<Run & { signal: NodeJS.Signals | null }> {
  child.stdout?.on('data', (b: Buffer) => { out.stdout += b.toString(); });
  child.stderr?.on('data', (b: Buffer) => { out.stderr += b.toString(); });
  return new Promise((resolveRun) => child.on('close', (code, signal) => resolveRun({ code: code ?? -1, signal, ...out })));
}

async function sh(script: string, cwd: string, env: NodeJS.ProcessEnv = userShellEnv()): Promise<Run> {
  return finished(spawn('sh', ['-e', '-c', script], { cwd, env }), { stdout: '', stderr: '' });
}

describe("README's shard examples (GNU parallel, Kubernetes Indexed Job), run as written", () => {
  let dir: string;
  const refs = new Map<string, Promise<{ results: Buffer; evalStdout: string }>>();

  /**
   * One unsharded run of the detect command `cmd` (the README's, shards removed) and the evaluation `evalCmd`
   * (the README's merge, on that run's results); memoized on the absolute form of both, so the two examples share
   * it when their settings agree.
   */
  function reference(cmd: string[], evalCmd: string[], cwd: string): Promise<{ results: Buffer; evalStdout: string }> {
    const abs = (words: string[]) => words.map((w) => (existsSync(resolve(cwd, w)) ? resolve(cwd, w) : w));
    const det = abs(unsharded(cmd));
    const ev = abs(evalCmd);
    const key = JSON.stringify([det, ev.filter((_, k) => !['--results', '--out'].includes(ev[k - 1]) && !['--results', '--out'].includes(ev[k]))]);
    if (!refs.has(key)) {
      refs.set(key, (async () => {
        const file = join(dir, `ref${refs.size}.json`);
        const d = await execFileP(det[0], [...det.slice(1), '--json', file], { cwd: dir, env: userShellEnv() });
        expect([d.stdout, d.stderr]).toEqual(['', '']);
        const evalArgs = ev.flatMap((w, k) => (w === '--out' || ev[k - 1] === '--out' ? [] : ev[k - 1] === '--results' ? [file] : [w]));
        expect(evalArgs.filter((w) => w === file)).toHaveLength(1);
        const e = await execFileP(evalArgs[0], evalArgs.slice(1), { cwd: dir, env: userShellEnv() });
        expect(e.stderr).toBe('');
        return { results: readFileSync(file), evalStdout: e.stdout };
      })());
    }
    return refs.get(key)!;
  }

  /** What the merged evaluation printed, checked against the reference and for real numbers. */
  function expectSameEvaluation(stdout: string, ref: string): void {
    expect(stdout).toBe(ref);
    expect(stdout).toContain(`Evaluate annotation type *bbox* (`);
    expect(stdout).toMatch(new RegExp(`\\*segm\\* \\(\\d+ detections, ${N_IMAGES} images, \\d+ GT objects\\)`));
    const ap = [...stdout.matchAll(/\(AP\) @\[ IoU=0\.50:0\.95 \| area=   all \| maxDets=100 \] = (\d\.\d+)/g)].map((m) => Number(m[1]));
    expect(ap).toHaveLength(2);
    // The bundled model on val canvases: about 0.5 box and mask AP (README's table); empty results would give 0.
    for (const v of ap) expect(v).toBeGreaterThan(0.3);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'readme-shards-'));
    // The compiled CLI, as the README's first command builds it (.npmrc's ignore-scripts skips `prepare`).
    await execFileP('npm', ['run', 'build'], { cwd: ROOT });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    await execFileP('npm', ['install', ROOT, '--offline', '--no-audit', '--no-fund'], { cwd: dir, env: userShellEnv({ ONNXRUNTIME_NODE_INSTALL: 'skip' }) });
    const val = join(ROOT, 'data', 'canvases_val');
    const gt = JSON.parse(readFileSync(join(val, 'annotations.json'), 'utf8')) as { images: Array<{ id: number; file_name: string }>; annotations: Array<{ image_id: number }> };
    const images = gt.images.filter((i) => IDS.includes(i.id));
    expect(images.map((i) => i.file_name).sort()).toEqual(IDS.map((id) => `${String(id).padStart(6, '0')}.png`));
    const ids = new Set(IDS);
    const sub = join(dir, 'data', 'canvases_val');
    mkdirSync(join(sub, 'images'), { recursive: true });
    for (const i of images) copyFileSync(join(val, 'images', i.file_name), join(sub, 'images', i.file_name));
    writeFileSync(join(sub, 'annotations.json'), JSON.stringify({ ...gt, images, annotations: gt.annotations.filter((a) => ids.has(a.image_id)) }));
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('GNU parallel: 4 shards, then the merged evaluation, equal one unsharded run', async (ctx) => {
    ctx.skip(!HAS_PARALLEL, 'GNU parallel is not on PATH (Debian package `parallel`; .ci/run installs it)');
    const script = indentedBlock(README, 'parallel ');
    const detectCmd = commandLine(script, 'parallel ');
    const evalCmd = commandLine(script, 'npx fasternet eval ');
    const shards = detectCmd.slice(detectCmd.indexOf(':::') + 1);
    expect(detectCmd.slice(0, 5)).toEqual(['parallel', '-j4', 'npx', 'fasternet', 'detect']);
    expect(shards).toEqual(['0', '1', '2', '3']);

    const r = await sh(script, dir);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const ref = await reference(detectCmd.slice(2, detectCmd.indexOf(':::')), evalCmd, dir);
    expect(readFileSync(join(dir, 'out', 'all.json'))).toEqual(ref.results);
    expectSameEvaluation(r.stdout, ref.evalStdout);
    // Each shard took every 4th image of the sorted folder, in a stream of its own.
    for (const s of shards) {
      const i = Number(s);
      const mine = IDS.filter((id) => (id - 1) % shards.length === i);
      const results = JSON.parse(readFileSync(join(dir, 'out', `s${i}.json`), 'utf8')) as Array<{ image_id: number }>;
      expect([...new Set(results.map((e) => e.image_id))].sort((a, b) => a - b)).toEqual(mine);
      expect(readFileSync(join(dir, 'out', `s${i}.jsonl`), 'utf8').trim().split('\n')).toHaveLength(1 + mine.length);
    }
  }, 180_000);

  it('Kubernetes Indexed Job: every index run (one pod killed and restarted), merged, equals one unsharded run', async () => {
    const job = parseYaml(yamlBlockAfter(README, 'A Kubernetes Indexed Job')) as K8sJob;
    expect([job.kind, job.spec.completionMode, job.spec.template.spec.restartPolicy]).toEqual(['Job', 'Indexed', 'OnFailure']);
    const container = job.spec.template.spec.containers[0];
    const completions = job.spec.completions;
    // Pod 0 needs two images to be killed between them.
    expect(completions).toBeLessThan(N_IMAGES);
    expect(container.args).toHaveLength(1);
    // The volumes' mount points become temporary folders: data = the val subset, out = an empty folder.
    const hostOf: Record<string, string> = { data: join(dir, 'data', 'canvases_val'), out: join(dir, 'k8s-out') };
    mkdirSync(hostOf.out);
    const mount = (cmd: string) => container.volumeMounts.reduce((s, m) => {
      const re = new RegExp(`(?<=^|\\s)${m.mountPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(?=/)`, 'g');
      expect(s, `${m.mountPath} is used`).toMatch(re);
      return s.replace(re, hostOf[m.name]);
    }, cmd);
    const podCommand = mount(container.args[0]);
    expect(podCommand).not.toMatch(/(^|\s)\/(data|out)\//);
    expect(podCommand).toContain(`--shard auto/${completions}`);

    // A pod: the container's command with the index in its environment, in a process group of its own (its kill
    // takes npx, npm and node down together, as a container's does).
    const pod = (i: number) => {
      const child = spawn(container.command[0], [...container.command.slice(1), podCommand], {
        cwd: dir, env: userShellEnv({ JOB_COMPLETION_INDEX: String(i) }), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      });
      return { child, done: finished(child, { stdout: '', stderr: '' }) };
    };

    // Pod 0 (images 1 and 1 + completions) is killed as soon as its first image is in its stream (header + 1 line).
    const stream0 = join(hostOf.out, 's0.jsonl');
    const lines = () => (existsSync(stream0) ? readFileSync(stream0, 'utf8').split('\n').length - 1 : 0);
    const first = pod(0);
    await new Promise<void>((resolveWait, reject) => {
      const timer = setInterval(() => {
        if (lines() >= 2) {
          clearInterval(timer);
          process.kill(-first.child.pid!, 'SIGKILL');
          resolveWait();
        } else if (first.child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error('pod 0 ended before it could be killed'));
        }
      }, 10);
    });
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    const beforeRestart = readFileSync(stream0, 'utf8');
    expect(beforeRestart.split('\n')).toHaveLength(3);
    expect(existsSync(join(hostOf.out, 's0.json'))).toBe(false);

    // The restart of pod 0 and the other pods, two at a time (this machine's cores; the Job allows 8).
    const queue = [0, ...Array.from({ length: completions - 1 }, (_, k) => k + 1)];
    const runs: Run[] = [];
    await Promise.all([0, 1].map(async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) runs[i] = await pod(i).done;
    }));
    expect(runs.map((r) => [r.code, r.stdout, r.stderr])).toEqual(Array(completions).fill([0, '', '']));
    // The restarted pod kept the killed one's finished image and added only the other.
    const after = readFileSync(stream0, 'utf8');
    expect(after.startsWith(beforeRestart)).toBe(true);
    expect(after.split('\n')).toHaveLength(4);
    for (let i = 0; i < completions; i++) {
      const ids = (JSON.parse(readFileSync(join(hostOf.out, `s${i}.json`), 'utf8')) as Array<{ image_id: number }>).map((e) => e.image_id);
      expect([...new Set(ids)].sort((a, b) => a - b), `shard ${i}`).toEqual(IDS.filter((id) => (id - 1) % completions === i));
    }

    const merge = mount(indentedBlock(README, 'npx fasternet eval --gt /data/').trim());
    const m = await sh(merge, dir);
    expect([m.code, m.stderr]).toEqual([0, '']);
    const ref = await reference(
      commandLine(podCommand.replace(/\$JOB_COMPLETION_INDEX/g, 'I'), 'npx fasternet detect '),
      commandLine(merge, 'npx fasternet eval '), dir,
    );
    expect(readFileSync(join(hostOf.out, 'all.json'))).toEqual(ref.results);
    expectSameEvaluation(m.stdout, ref.evalStdout);
  }, 180_000);
});
