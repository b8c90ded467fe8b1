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

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('MAX_CONNECTIONS by default', () => {
  it('is 90% of the soft open-file limit, as Linux shows it in /proc/self/limits', () => {
    const file = limitsFile(
      'Limit                     Soft Limit           Hard Limit           Units     \nMax processes             unlimited            unlimited            processes \nMax open files            20000                40000                files     \n',
    );
    assert.equal(defaultMaxConnections(file, 64 * GiB, 16 * GiB), 18_000);
  });

  it('is no more than a quarter of the memory (20 KB a connection) and of the heap (6 KB) hold, however many files are allowed', () => {
    const million = limitsFile('Max open files            1048576              1048576              files\n');
    assert.equal(defaultMaxConnections(million, 2 * GiB, 16 * GiB), 26_214, 'a container of 2 GiB');
    assert.equal(defaultMaxConnections(million, 64 * GiB, 512 * MiB), 21_845, 'a heap of 512 MiB');
    assert.equal(defaultMaxConnections(million, 64 * GiB, 16 * GiB), 699_050, 'room for more than the files allow');
  });

  it('is bounded by the memory alone where the open-file limit cannot be read or has none', () => {
    assert.equal(defaultMaxConnections(join(tmpdir(), 'no-such-dyad-limits-file'), 2 * GiB, 16 * GiB), 26_214);
    assert.equal(defaultMaxConnections(limitsFile('Max open files            unlimited            unlimited            files\n'), 2 * GiB, 16 * GiB), 26_214);
  });

  it('reads this process\'s own limit here', () => {
    const n = defaultMaxConnections();
    assert.ok(n > 0 && Number.isFinite(n), `a positive, finite limit, got ${n}`);
  });
});
