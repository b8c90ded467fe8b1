// The Redis store's keys have one spelling each (store/redis/lua/names.ts,
// KEY): the Lua and the store's TypeScript take every key name from that
// table, and docs/SCALING.md's key layout says what each of them holds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEY } from '../../src/store/redis/lua.js';

const SERVER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REDIS_SRC = path.join(SERVER, 'src/store/redis');
const LUA_DIR = path.join(REDIS_SRC, 'lua');
const read = (file: string): string => readFileSync(file, 'utf8');

/** Lines of `text` matching `pattern`, as "file:line: text" for a failure message. */
function offending(file: string, pattern: RegExp): string[] {
  return read(file)
    .split('\n')
    .flatMap((line, i) => (pattern.test(line) ? [`${path.relative(SERVER, file)}:${i + 1}: ${line.trim()}`] : []));
}

describe('Redis key names', () => {
  it('are unique', () => {
    const values = Object.values(KEY);
    assert.equal(new Set(values).size, values.length);
  });

  it('are each described in the key layout of docs/SCALING.md', () => {
    const doc = read(path.join(SERVER, '../../docs/SCALING.md'));
    const layout = doc.slice(doc.indexOf('### Key layout'), doc.indexOf('###', doc.indexOf('### Key layout') + 1));
    const missing = Object.entries(KEY).filter(([, v]) => !layout.includes(`\`…:${v}`));
    assert.deepEqual(missing, [], 'every key has a row in the table');
  });

  it('are never spelled out by hand in the Lua', () => {
    const files = readdirSync(LUA_DIR)
      .filter((f) => f.endsWith('.ts') && f !== 'names.ts')
      .map((f) => path.join(LUA_DIR, f));
    assert.ok(files.length >= 5, 'the Lua fragments are where they were');
    // A key is the prefix P followed by a name: the name must come from KEY.
    const bad = files.flatMap((f) => offending(f, /P \.\. '(?!\$\{KEY\.)/));
    assert.deepEqual(bad, []);
    // Nor chosen among names written out (`P .. (cond and 'pm:' or 'ps:')`): no key name is quoted in the code (comments aside).
    const quoted = new RegExp(`'(?:${Object.values(KEY).map((v) => v.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('|')})'`);
    const spelled = files.flatMap((f) => offending(f, quoted).filter((l) => !/^\S+:\d+: --/.test(l)));
    assert.deepEqual(spelled, []);
  });

  it('are never spelled out by hand in the store', () => {
    const files = readdirSync(REDIS_SRC)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => path.join(REDIS_SRC, f));
    // The state's keys start with the base (`${this.base}`, or `${b}` for it): a name follows only through KEY.
    const bad = files.flatMap((f) => offending(f, /\$\{(?:this\.base|b)\}(?!\$\{KEY\.)[A-Za-z]/));
    assert.deepEqual(bad, []);
  });
});
