import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultMaxConnections } from '../../src/http/connections.js';

const limitsFile = (text: string): string => {
  const file = join(mkdtempSync(join(tmpdir(), 'dyad-limits-')), 'limits');
  writeFileSync(file, text);
  return file;
};

describe('MAX_CONNECTIONS by default', () => {
  it('is 90% of the soft open-file limit, as Linux shows it in /proc/self/limits', () => {
    const file = limitsFile(
      'Limit                     Soft Limit           Hard Limit           Units     \nMax processes             unlimited            unlimited            processes \nMax open files            20000                40000                files     \n',
    );
    assert.equal(defaultMaxConnections(file), 18_000);
  });

  it('is unlimited where the limit cannot be read or has none', () => {
    assert.equal(defaultMaxConnections(join(tmpdir(), 'no-such-dyad-limits-file')), Number.POSITIVE_INFINITY);
    assert.equal(defaultMaxConnections(limitsFile('Max open files            unlimited            unlimited            files\n')), Number.POSITIVE_INFINITY);
  });

  it('reads this process\'s own limit here', () => {
    const n = defaultMaxConnections();
    assert.ok(n > 0, `a positive limit, got ${n}`);
  });
});
