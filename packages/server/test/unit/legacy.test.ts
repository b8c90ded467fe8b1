// The pieces of the legacy edges that need no socket: how a partner's id is
// shown to a random-video-chat client, how a simple-peer signal is told apart,
// and how a relayed signal frame is read back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RvcSignallingClientMessage, parseMessage, rvcName, rvcSignalKind } from '@dyad/protocol';
import { signalFrame } from '../../src/core/frames.js';
import { legacyName, signalFrameParts } from '../../src/legacy/frames.js';

describe('legacy edges', () => {
  it('shows a partner id without `_`, and never as the own name', () => {
    assert.equal(legacyName('bob', 'alice'), 'bob');
    assert.equal(legacyName('k3_x9', 'alice'), 'k3-x9');
    assert.equal(legacyName('a_b', 'a-b'), 'a-b-peer');
    assert.ok(rvcName.safeParse(legacyName('x_y_z', 'q')).success);
  });

  it('refuses random-video-chat names with `_`, which its client cannot split', () => {
    assert.ok(rvcName.safeParse('alice').success);
    assert.ok(!rvcName.safeParse('al_ice').success);
    assert.ok(!rvcName.safeParse('...').success);
    assert.ok(!rvcName.safeParse('a'.repeat(33)).success);
  });

  it("tells simple-peer's signals apart", () => {
    assert.equal(rvcSignalKind({ type: 'offer', sdp: 'v=0' }), 'offer');
    assert.equal(rvcSignalKind({ type: 'answer', sdp: 'v=0' }), 'answer');
    assert.equal(rvcSignalKind({ type: 'offer' }), undefined);
    assert.equal(rvcSignalKind({ type: 'candidate', candidate: { candidate: 'candidate:1', sdpMid: '0' } }), 'candidate');
    assert.equal(rvcSignalKind({ candidate: 'candidate:1' }), undefined);
    assert.equal(rvcSignalKind({ renegotiate: true }), 'request');
    assert.equal(rvcSignalKind({ transceiverRequest: { kind: 'video' } }), 'request');
    assert.equal(rvcSignalKind({ anything: 1 }), undefined);
  });

  it('validates a random-video-chat signal with the depth and value limits of Dyad signals', () => {
    const base = { event: 'signal', room_code: 'a_b', target: 'b', from: '' };
    assert.ok(parseMessage(RvcSignallingClientMessage, JSON.stringify({ ...base, data: { type: 'offer', sdp: 'x' } })).ok);
    const deep = { type: 'offer', sdp: 'x', n: [[[[[[[[1]]]]]]]] };
    assert.ok(!parseMessage(RvcSignallingClientMessage, JSON.stringify({ ...base, data: deep })).ok);
    const wide = { type: 'offer', sdp: 'x', n: Array.from({ length: 300 }, () => 1) };
    assert.ok(!parseMessage(RvcSignallingClientMessage, JSON.stringify({ ...base, data: wide })).ok);
  });

  it('reads a relayed signal frame back, and nothing else', () => {
    const text = signalFrame({ room_code: 'r', from: 'al"ice', type: 'candidate', data: '{"candidate":"c","sdpMid":"0"}' });
    assert.deepEqual(signalFrameParts(text), { from: 'al"ice', type: 'candidate', data: { candidate: 'c', sdpMid: '0' } });
    assert.equal(signalFrameParts('{"event":"verified","room_code":"r"}'), undefined);
  });
});
