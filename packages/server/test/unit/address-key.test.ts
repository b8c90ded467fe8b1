import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AddressHasher, addressKey } from '../../src/http/client.js';

describe('addressKey: what a client address counts as for limits, bans, reports and blocks', () => {
  it('an IPv4 address is itself, also when a dual-stack listener sees it IPv4-mapped', () => {
    assert.equal(addressKey('198.51.100.7', 64), '198.51.100.7');
    assert.equal(addressKey('::ffff:198.51.100.7', 64), '198.51.100.7');
    assert.equal(addressKey('::FFFF:c633:6407', 64), '198.51.100.7');
  });

  it('an IPv6 address is its /64 by default, however it is written', () => {
    const key = '2001:db8:5:1::/64';
    for (const written of ['2001:db8:5:1::1', '2001:DB8:5:1:ABCD::1', '2001:0db8:0005:0001:ffff:ffff:ffff:ffff', '2001:db8:5:1:0:0:0:9', '2001:db8:5:1::2%eth0']) {
      assert.equal(addressKey(written, 64), key, written);
    }
    assert.equal(addressKey('2001:db8:5:2::1', 64), '2001:db8:5:2::/64', 'the next /64 is another network');
  });

  it('other prefix lengths cut where they say, on or between byte boundaries; 128 keeps the address', () => {
    assert.equal(addressKey('2001:db8:5:1::1', 48), '2001:db8:5::/48');
    assert.equal(addressKey('2001:db8:5:1f::1', 60), '2001:db8:5:10::/60');
    assert.equal(addressKey('2001:db8:5:ff::1', 56), '2001:db8:5::/56');
    assert.equal(addressKey('2001:db8:5:1ff::1', 56), '2001:db8:5:100::/56');
    assert.equal(addressKey('2001:DB8:0005:0001::0001', 128), '2001:db8:5:1::1');
  });

  it('an address written with a port or in brackets counts as the address; what is not an address counts as one address, unknown', () => {
    assert.equal(addressKey('198.51.100.7:443', 64), '198.51.100.7');
    assert.equal(addressKey('198.51.100.7:20001', 64), '198.51.100.7', 'each port of one address is that address');
    assert.equal(addressKey('[2001:db8:5:1::1]:443', 64), '2001:db8:5:1::/64');
    assert.equal(addressKey('[2001:db8:5:1::1]', 64), '2001:db8:5:1::/64');
    assert.equal(addressKey('[::ffff:198.51.100.7]:80', 64), '198.51.100.7');
    for (const odd of ['unknown', '', 'garbage', '198.51.100.7:', '198.51.100.7:x', '[2001:db8::1', '_hidden', '999.1.1.1:80']) assert.equal(addressKey(odd, 64), 'unknown', odd);
  });

  it('the hash is of the key: one network, one hash; the key is secret, so the hash says nothing of the network', () => {
    const hasher = new AddressHasher('k'.repeat(32), 64);
    assert.equal(hasher.hash('2001:db8:5:1::1'), hasher.hash('2001:db8:5:1:ffff::2'));
    assert.notEqual(hasher.hash('2001:db8:5:1::1'), hasher.hash('2001:db8:5:2::1'));
    assert.equal(hasher.hash('::ffff:198.51.100.7'), hasher.hash('198.51.100.7'));
    assert.notEqual(new AddressHasher('k'.repeat(32), 128).hash('2001:db8:5:1::1'), new AddressHasher('k'.repeat(32), 128).hash('2001:db8:5:1::2'));
    assert.notEqual(new AddressHasher('j'.repeat(32), 64).hash('2001:db8:5:1::1'), hasher.hash('2001:db8:5:1::1'));
  });
});
