/**
 * Worker threads running one of the package's own modules. A worker does not inherit the parent's module
 * loader: when the package runs from its TypeScript sources (tsx, vitest) the worker registers tsx's loader
 * before importing the entry; compiled JavaScript is imported as it is.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * The module `name` (no extension) next to `callerUrl` (the caller's import.meta.url), with the caller's own
 * extension: `.ts` when running from the sources, `.js` from dist/ (tsc rewrites import specifiers, not URLs).
 */
export function siblingModule(name: string, callerUrl: string): URL {
  const ext = /\.[cm]?[jt]s$/.exec(new URL(callerUrl).pathname)?.[0] ?? '.js';
  return new URL(`${name}${ext}`, callerUrl);
}

/** Starts a worker importing `entry` (a URL next to the caller, e.g. new URL('./x_worker.ts', import.meta.url)). */
export function startModuleWorker(entry: URL, workerData?: unknown): Worker {
  const href = JSON.stringify(entry.href);
  let boot = `import(${href});`;
  if (/\.[cm]?ts$/.test(entry.pathname)) {
    // createRequire rather than import.meta.resolve: the latter is missing where a test runner transforms modules.
    const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
    boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${href}); });`;
  }
  return new Worker(boot, { eval: true, workerData });
}
