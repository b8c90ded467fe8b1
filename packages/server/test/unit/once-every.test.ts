// The gate that keeps attacker-triggered logging to once a period per kind.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { onceEvery } from '../../src/ops/once-every.js';

describe('onceEvery', () => {
  it('runs a key at once, then at most once a period, told how many times it was asked since; keys count apart', () => {
    let now = 0;
    const gate = onceEvery(1_000, () => now);
    const ran: string[] = [];
    const ask = (key: string) => gate(key, (times) => ran.push(`${key}@${now}x${times}`));
    ask('a');
    ask('a');
    ask('b');
    now = 999;
    ask('a');
    now = 1_000;
    ask('a');
    ask('a');
    now = 2_500;
    ask('a');
    assert.deepEqual(ran, ['a@0x1', 'b@0x1', 'a@1000x3', 'a@2500x2']);
  });
});
