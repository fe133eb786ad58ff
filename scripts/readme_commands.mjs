#!/usr/bin/env node
// Runs the shell commands of README.md's indented code blocks, as written, from the repository root: `.ci/run`
// calls it on a clean clone so that a README command that no longer works fails CI. The README's second
// command (`npm test`) is left to `.ci/run`, which needs its report; blocks whose inputs do not exist offline
// (official checkpoints, COCO val2017) and the GNU parallel block (run by test/readme_shards.test.ts) are
// listed as skipped with the reason. Usage: node scripts/readme_commands.mjs [--list]
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** Commands of the 4-space indented blocks: `#` comments dropped, `\` continuations joined. */
export function readmeCommands(text) {
  const cmds = [];
  let cur = '';
  let inFence = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    if (inFence || !line.startsWith('    ')) {
      if (cur) cmds.push(cur);
      cur = '';
      continue;
    }
    const body = line.slice(4).trim();
    if (!body || body.startsWith('#')) continue;
    cur = cur ? `${cur} ${body}` : body;
    if (cur.endsWith('\\')) cur = cur.slice(0, -1).trimEnd();
    else {
      cmds.push(cur);
      cur = '';
    }
  }
  if (cur) cmds.push(cur);
  // Synopsis lines (`fasternet detect IMAGE|DIR...`) and the like are not commands to run.
  return cmds.filter((c) => /^(npx|npm|node|parallel|mkdir) /.test(c));
}

/** Inputs that the README builds with a command of its own prose, made first when missing. */
const PREREQUISITES = {
  '/tmp/canvases_calib/images': 'npx tsx scripts/make_canvases.ts train /tmp/canvases_calib 100 3',
};

function skipReason(cmd) {
  if (cmd === 'npm test') return 'the test command: .ci/run runs it for its report';
  if (cmd.startsWith('parallel ') || cmd.includes('--results out/s?.json') || cmd.startsWith('mkdir -p out')) {
    return 'the GNU parallel block: run as written by test/readme_shards.test.ts';
  }
  if (cmd.includes(' /data/') || cmd.includes(' /out/')) return 'the Kubernetes Job\'s merge: run by test/readme_shards.test.ts';
  if (/\.pth\b/.test(cmd)) return 'needs an official checkpoint, which cannot exist offline';
  if (/\bval2017\b/.test(cmd)) return 'needs COCO val2017, which cannot exist offline';
  return undefined;
}

const list = process.argv.includes('--list');
let ran = 0, failed = 0, skipped = 0;
for (const cmd of readmeCommands(README)) {
  const why = skipReason(cmd);
  if (why) {
    skipped++;
    console.log(`skip  ${cmd}\n      (${why})`);
    continue;
  }
  if (list) {
    console.log(`run   ${cmd}`);
    continue;
  }
  for (const [path, pre] of Object.entries(PREREQUISITES)) {
    if (cmd.includes(path) && !existsSync(path)) {
      if (!README.includes(pre)) throw new Error(`README no longer says how to make ${path} (${pre})`);
      console.log(`pre   ${pre}`);
      execSync(pre, { stdio: 'inherit' });
    }
  }
  console.log(`run   ${cmd}`);
  const t0 = Date.now();
  const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 28, timeout: 15 * 60_000 });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  ran++;
  if (r.status === 0) {
    const last = (r.stdout || r.stderr).trim().split('\n').slice(-1)[0] ?? '';
    console.log(`ok    ${secs} s: ${last.slice(0, 160)}`);
  } else {
    failed++;
    console.log(`FAIL  ${secs} s, exit ${r.status ?? r.signal}\n${(r.stdout + r.stderr).trim().split('\n').slice(-15).join('\n')}`);
  }
}
console.log(`README commands: ${ran} ran, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
