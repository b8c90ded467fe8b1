// Reports leading to a ban: distinct reporters count, the banned session gets
// `banned` with `until` and close 4003 on its sockets, its partner gets
// "reported", and new registrations from the banned address get 403.
// Bans and reporter counts go by client address, and every socket here comes
// from 127.0.0.1: the server trusts X-Forwarded-For (TRUST_PROXY), so each
// simulated person speaks from an address of its own.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import { arrive, enter, expectMatched, join, oneTripUrl, register, type Session, type Via } from '../support/dyad.js';
import { request } from '../support/http.js';
import { startServer, type RunningServer } from '../support/server.js';
import { WireClient, type Events } from '../support/ws-client.js';

const THRESHOLD = 3;
const QUIET_MS = 400;

let server: RunningServer;

before(async () => {
  server = await startServer({
    TRUST_PROXY: 'true',
    REPORT_BAN_THRESHOLD: String(THRESHOLD),
    REPORT_WINDOW_MS: '60000',
    BAN_DURATION_MS: '60000',
  });
});
after(async () => {
  await WireClient.closeAll();
  await server?.stop();
});

const from = (address: string): Via => ({ headers: { 'x-forwarded-for': address } });

/** The suspect (already waiting) is paired with a fresh reporter from its own address. */
async function meet(suspect: Session, address: string): Promise<{ reporter: Session; matched: Events['matched'] }> {
  const reporter = await arrive(server, {}, from(address));
  const mr = await expectMatched(reporter.m);
  assert.equal(mr.peer, suspect.id, 'the reporter is paired with the suspect');
  return { reporter, matched: await suspect.m.expect('matched') };
}

/** The reporter leaves; the suspect queues again. */
async function part(suspect: Session, reporter: Session): Promise<void> {
  reporter.m.send({ event: 'stop' });
  await reporter.m.expect('idle');
  assert.equal((await suspect.m.expect('peer-disconnected')).reason, 'left');
  suspect.m.send({ event: 'next' });
  await suspect.m.expect('waiting');
}

describe('moderation', () => {
  it(`${THRESHOLD} distinct reporters ban a session: banned + until, close 4003, partner "reported", register 403 for its address only`, async () => {
    const suspectVia = from('198.51.100.66');
    const suspect = await enter(server, {}, suspectVia);

    // One reporter reporting many times counts once.
    const { reporter: r0 } = await meet(suspect, '203.0.113.10');
    for (let i = 0; i < THRESHOLD + 1; i++) r0.m.send({ event: 'report', reason: `again ${i}` });
    await suspect.m.expectSilence(QUIET_MS, { why: 'repeated reports by one reporter count once' });
    await part(suspect, r0);

    // A second session from the same address is the same person.
    const { reporter: r0b } = await meet(suspect, '203.0.113.10');
    r0b.m.send({ event: 'report', reason: 'same person, new session' });
    await suspect.m.expectSilence(QUIET_MS, { why: 'reports count per reporting address' });
    await part(suspect, r0b);

    const { reporter: r1 } = await meet(suspect, '203.0.113.11');
    r1.m.send({ event: 'report', reason: 'second' });
    await suspect.m.expectSilence(QUIET_MS, { why: `${THRESHOLD - 1} distinct reporters are not enough` });
    await part(suspect, r1);

    const { reporter: r2, matched } = await meet(suspect, '203.0.113.12');
    await join(server, suspect, matched.room_code, { role: matched.initiator ? 'initiator' : 'responder', peer: r2.id, peerJoined: false }, suspectVia);
    const before = Date.now() / 1000;
    r2.m.send({ event: 'report', reason: 'third' });

    const banned = await suspect.m.expectError('banned', { what: 'error "banned" for the banned session' });
    assert.ok(typeof banned.until === 'number' && banned.until > before, `until is a Unix time in the future, got ${banned.until}`);
    await suspect.m.expectClose(4003);
    const sig = await suspect.s!.expectClose(4003, undefined, 'close 4003 on the signalling socket of the banned session');
    for (const m of sig.before) assert.ok(m.event === 'error' && m.code === 'banned', `before 4003 only "banned": ${JSON.stringify(m)}`);
    assert.equal((await r2.m.expect('peer-disconnected')).reason, 'reported', 'the partner of the banned session');

    const res = await request(`${server.matching}/register`, { method: 'POST', body: {}, headers: suspectVia.headers ?? {} });
    assert.equal(res.status, 403, `POST /register from a banned address: HTTP ${res.status} ${res.text}`);
    const body = HttpError.parse(res.json());
    assert.equal(body.status, 'banned');
    assert.ok(typeof body.until === 'number' && body.until > before, `until in the 403 body: ${res.text}`);

    const attempt = await WireClient.connect(oneTripUrl(server), { channel: 'matching', label: 'one-trip from a banned address', ...suspectVia });
    if (attempt.kind === 'open') await attempt.client.close();
    assert.equal(attempt.kind === 'refused' ? attempt.status : 101, 403, 'a one-trip start from a banned address is refused like POST /register');

    // Everyone else carries on.
    await register(server, {}, from('203.0.113.12'));
  });
});
