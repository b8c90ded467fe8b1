// Impersonation, on both stores: a session's token is the only thing that
// acts for it (PROTOCOL.md: the upgrade of either socket, `/ice-servers`).
// An attacker who knows the victim's id, name and room code, but not its
// token, gets the contract's refusal everywhere, and the victim sees nothing
// and carries on. Each person speaks from an address of its own
// (TRUST_PROXY), and one report bans (REPORT_BAN_THRESHOLD=1), so a report
// that reached the wrong session would show.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { IceServersResponse } from '@dyad/protocol';
import {
  enter,
  expectMatched,
  expectUnauthorized,
  freshAddress,
  from,
  matchingUrl,
  openMatching,
  openSignalling,
  pair,
  pairJoined,
  register,
  signallingUrl,
  uniqueName,
  type Pair,
  type Via,
} from '../support/dyad.js';
import { describeResponse, request } from '../support/http.js';
import type { RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WireClient, type Channel } from '../support/ws-client.js';

const QUIET_MS = 300;

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

const person = (): Via => from(freshAddress());

/** Every socket of a pair stays quiet and open: nothing the attacker did reached it. */
async function expectUntouched(p: Pair, why: string): Promise<void> {
  const sockets = [p.a.m, p.b.m, p.a.s, p.b.s].filter((c): c is WireClient => c !== undefined);
  await Promise.all(sockets.map((c, i) => c.expectSilence(i === 0 ? QUIET_MS : 0, { why })));
}

/** The pair still does what a pair does: a signal and a chat message each way. */
async function expectWorking(p: Pair): Promise<void> {
  if (p.initiator.s && p.responder.s) {
    p.initiator.s.send({ event: 'signal', room_code: p.room, type: 'offer', data: { sdp: 'still' } });
    assert.equal((await p.responder.s.expect('signal')).from, p.initiator.id);
  }
  p.a.m.send({ event: 'chat', message: 'still here' });
  assert.equal((await p.b.m.expect('chat')).sender, p.a.id);
  p.b.m.send({ event: 'chat', message: 'me too' });
  assert.equal((await p.a.m.expect('chat')).sender, p.b.id);
}

for (const store of STORES) {
  describe(`impersonation on the ${store} store`, () => {
    let server: RunningServer;

    before(async () => {
      server = await startServerOn(store, {
        TRUST_PROXY: 'true',
        REPORT_BAN_THRESHOLD: '1',
        REPORT_MIN_ROOM_MS: '0',
        TURN_URLS: 'turn:127.0.0.1:3478',
        TURN_SECRET: 'impersonation-test-secret',
      });
    });
    after(async () => {
      await WireClient.closeAll();
      await server?.stop();
    });

    it("a stolen room code: the victim's id with any token but its own opens no signalling socket; the attacker's own session gets invalid-room", async () => {
      const victims = await pairJoined(server, [person(), person()]);
      const v = victims.initiator;
      const attacker = await enter(server, {}, person());
      const wrongTokens: [string, string][] = [
        ["the attacker's own token", attacker.token],
        ["the victim's partner's token", victims.responder.token],
        ['the room code', victims.room],
        ['the victim id', v.id],
        ["the victim's token with a character more", `${v.token}A`],
        ["the victim's token cut short", v.token.slice(0, -1)],
      ];
      for (const [what, token] of wrongTokens) {
        await expectUnauthorized(signallingUrl(server, v.id, token), 'signalling', `signalling as the victim with ${what}`);
      }
      const s = await openSignalling(server, attacker.id, attacker.token);
      s.send({ event: 'join', room_code: victims.room });
      await s.expectError('invalid-room', { what: "invalid-room for a join of someone else's room" });
      s.send({ event: 'signal', room_code: victims.room, type: 'offer', data: { sdp: 'evil' }, from: v.id });
      await s.expectError('invalid-room', { what: "invalid-room for a signal into someone else's room" });
      s.send({ event: 'leave', room_code: victims.room });
      await s.expectError('invalid-room', { what: "invalid-room for a leave of someone else's room" });
      await expectUntouched(victims, 'the attacker never got into the room');
      await expectWorking(victims);
    });

    it("resuming the victim's matching session without its token is refused, also while its socket is away; the victim is not replaced and resumes", async () => {
      const victims = await pair(server, {}, {}, [person(), person()]);
      const v = victims.a;
      const attacker = await register(server, {}, person());
      const tryAll = async (when: string): Promise<void> => {
        for (const [what, token] of [
          ["the attacker's token", attacker.token],
          ["the partner's token", victims.b.token],
          ['no token', ''],
        ] as const) {
          await expectUnauthorized(matchingUrl(server, v.id, token), 'matching', `resuming the victim ${when} with ${what}`);
        }
        const taken = await request(`${server.matching}/register`, { method: 'POST', body: { name: v.id }, headers: person().headers ?? {} });
        assert.equal(taken.status, 409, `registering the victim's name ${when}: ${describeResponse(taken)}`);
      };
      await tryAll('while connected');
      await expectUntouched(victims, 'no second socket replaced the victim (4002)');

      await v.m.drop();
      await tryAll('during its grace period');
      const back = await openMatching(server, v.id, v.token);
      const resumed = await back.expect('matched');
      assert.equal(resumed.resumed, true);
      assert.equal(resumed.peer, victims.b.id);
      await victims.b.m.expectSilence(0, { why: 'the partner is told nothing of a resumption' });
      v.m = back;
      await expectWorking(victims);
    });

    it("fields naming someone else change nothing: chat, next, stop and report act for the sender's own socket only", async () => {
      const victims = await pairJoined(server, [person(), person()]);
      const v = victims.a;
      const own = await pair(server, {}, {}, [person(), person()]);
      const [x, y] = [own.a, own.b];
      const asVictim = { id: v.id, sender: v.id, from: v.id, peer: victims.b.id, token: v.token.replace(/./g, 'A'), room_code: victims.room };

      x.m.send({ event: 'chat', message: 'who am I', ...asVictim });
      const chat = await y.m.expect('chat', { what: "the chat reaches the sender's own partner" });
      assert.equal(chat.sender, x.id, 'sender is the socket\'s session, whatever the message says');

      x.m.send({ event: 'next', ...asVictim });
      await x.m.expect('waiting', { what: '"waiting" for the sender of next' });
      assert.equal((await y.m.expect('peer-disconnected')).reason, 'skip', "next ended the sender's own room");

      x.m.send({ event: 'report', reason: 'aimed at the victim', ...asVictim });
      await y.m.expectError('banned', { what: "the report reaches the sender's last partner (one report bans here)" });
      await y.m.expectClose(4003);

      x.m.send({ event: 'stop', ...asVictim });
      await x.m.expect('idle', { what: '"idle" for the sender of stop' });

      await expectUntouched(victims, "messages naming the victim did nothing to the victim's pair");
      await expectWorking(victims);
    });

    it("/ice-servers hands TURN credentials to the bearer's own session only: the victim's id, room code or a forged bearer gets 401", async () => {
      const victims = await pair(server, {}, {}, [person(), person()]);
      const attackerVia = person();
      const attacker = await register(server, { mode: 'text' }, attackerVia);
      // Credentials go only to a session whose matching socket is open.
      await (await openMatching(server, attacker.id, attacker.token, attacker.id, attackerVia)).expect('waiting');
      const ice = (authorization: string, query = '') =>
        request(`${server.matching}/ice-servers${query}`, { headers: { authorization } });
      for (const [what, authorization] of [
        ['the victim id as bearer', `Bearer ${victims.a.id}`],
        ['the room code as bearer', `Bearer ${victims.room}`],
        ["the attacker's token with the victim id", `Bearer ${victims.a.id}:${attacker.token}`],
        ["the attacker's token twice", `Bearer ${attacker.token} ${attacker.token}`],
      ] as const) {
        const res = await ice(authorization);
        assert.equal(res.status, 401, `GET /ice-servers with ${what}: ${describeResponse(res)}`);
      }
      // Whatever the query names, the credentials are the bearer's own.
      const res = await ice(`Bearer ${attacker.token}`, `?id=${encodeURIComponent(victims.a.id)}&name=${encodeURIComponent(victims.a.id)}`);
      assert.equal(res.status, 200, describeResponse(res));
      const turn = IceServersResponse.parse(res.json()).ice_servers.find((s) => s.username);
      assert.match(turn?.username ?? '', new RegExp(`^\\d+:${attacker.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), 'the TURN username names the bearer');
      await expectUntouched(victims, 'asking for credentials tells the victim nothing');
    });

    it("the token of one session opens neither socket of another, in either direction", async () => {
      const victims = await pairJoined(server, [person(), person()]);
      const other = await enter(server, { mode: 'text' }, person());
      for (const channel of ['matching', 'signalling'] as Channel[]) {
        const url = channel === 'matching' ? matchingUrl : signallingUrl;
        await expectUnauthorized(url(server, victims.a.id, other.token), channel, `${channel}: the victim's id with another session's token`);
        await expectUnauthorized(url(server, other.id, victims.a.token), channel, `${channel}: another id with the victim's token`);
        await expectUnauthorized(url(server, victims.a.id, victims.b.token), channel, `${channel}: the victim's id with its partner's token`);
      }
      await expectUntouched(victims, 'refused upgrades tell the victim nothing');
      await other.m.expectSilence(0, { why: 'refused upgrades tell their owner nothing either' });
      await expectWorking(victims);
    });

    it('a token is dead once its session ended: no socket, no credentials, and not the new session registered under the same name', async () => {
      const name = uniqueName('ended');
      const old = await register(server, { name }, person());
      const m = await openMatching(server, old.id, old.token);
      await m.expect('waiting');
      await m.close(1000);
      const check = async (when: string): Promise<void> => {
        await expectUnauthorized(matchingUrl(server, name, old.token), 'matching', `the ended session's token on matching ${when}`);
        await expectUnauthorized(signallingUrl(server, name, old.token), 'signalling', `the ended session's token on signalling ${when}`);
        const ice = await request(`${server.matching}/ice-servers`, { headers: { authorization: `Bearer ${old.token}` } });
        assert.equal(ice.status, 401, `GET /ice-servers with the ended session's token ${when}: ${describeResponse(ice)}`);
      };
      await check('after it left');

      const heir = await enter(server, { name }, person());
      await check('once the name has a new session');
      await heir.m.expectSilence(QUIET_MS, { why: "the old token's attempts reach the new session in no way" });
      const partner = await register(server, {}, person());
      const mp = await expectMatched(await openMatching(server, partner.id, partner.token));
      assert.equal(mp.peer, name, 'the new session under the name pairs as usual');
    });
  });
}
