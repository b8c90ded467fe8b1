// The server turns off V8's allocation-site pretenuring (src/ops/young-gen.ts),
// first of all: seen through V8's cachedDataVersionTag, which hashes the
// flags in force, in fresh processes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/ops/young-gen.ts', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** V8's flag hash in a new process started with `nodeArgs`, after importing `module` if given. */
function flagTag(nodeArgs: string[], module?: string): string {
  const load = module ? `await import(${JSON.stringify(module)});` : '';
  const script = `${load} const v8 = await import('node:v8'); process.stdout.write(String(v8.cachedDataVersionTag()));`;
  return execFileSync(process.execPath, ['--import', 'tsx', ...nodeArgs, '--input-type=module', '-e', script], { encoding: 'utf8' });
}

describe('V8 pretenuring off', () => {
  it('the module puts V8 in the state of --no-allocation-site-pretenuring, which differs from the default', () => {
    const plain = flagTag([]);
    const flagged = flagTag(['--no-allocation-site-pretenuring']);
    assert.notEqual(plain, flagged, 'the tag does not show this flag: the check below would prove nothing');
    assert.equal(flagTag([], MODULE), flagged);
  });

  it('main imports it before anything else', () => {
    const first = /^import\s[^;]*?['"]([^'"]+)['"]/m.exec(readFileSync(MAIN, 'utf8'));
    assert.equal(first?.[1], './ops/young-gen.js');
  });
});
