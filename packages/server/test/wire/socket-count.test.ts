// MAX_SOCKETS_PER_ADDR counts open sockets, on both stores: a place is taken
// when an upgrade is admitted and given back exactly once when its TCP
// connection closes, whatever became of the upgrade. No window: a place held
// for any length of time stays taken (docs/SECURITY.md, W6).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { expectRefused, freshAddress, from, matchingUrl, oneTripUrl, register, signallingUrl, type Via } from '../support/dyad.js';
import type { RunningServer } from '../support/server.js';
import { STORES, startServerOn, stopPrivateRedis } from '../support/stores.js';
import { WireClient, sleep, upgradeRequest } from '../support/ws-client.js';

const SOCKET_LIMIT = 4;
/** Longer than a count window short enough to notice in a test: a place must outlast it. */
const HOLD_MS = 2_500;
/** How long a freed place may take to show: the server counts a socket until its TCP connection has closed. */
const RELEASE_MS = 5_000;
const CYCLES = 4;
/** Clients of each kind per cycle that reset their connection right after sending the upgrade request. */
const VANISHING = 4;

after(() => stopPrivateRedis());
afterEach(() => WireClient.closeAll());

/** An upgrade request, then a reset (RST) at once: the client is gone while the server is still deciding. */
function vanish(url: string, via: Via): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname, () => {
      socket.write(upgradeRequest(url, via.headers), () => socket.resetAndDestroy());
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

for (const store of STORES) {
  describe(`open sockets per address on the ${store} store`, () => {
    let server: RunningServer;

    before(async () => {
      server = await startServerOn(store, { TRUST_PROXY: 'true', MAX_SOCKETS_PER_ADDR: String(SOCKET_LIMIT) });
    });
    after(async () => {
      await WireClient.closeAll();
      await server?.stop();
    });

    /** A matching socket from `via` (of a new session unless `url` is given), opened as soon as the address has a free place. */
    async function openWhenFree(via: Via, what: string, url?: string): Promise<WireClient> {
      if (url === undefined) {
        const s = await register(server, { mode: 'text' }, via);
        url = matchingUrl(server, s.id, s.token);
      }
      const deadline = Date.now() + RELEASE_MS;
      for (;;) {
        const attempt = await WireClient.connect(url, { channel: 'matching', label: what, ...via });
        if (attempt.kind === 'open') return attempt.client;
        assert.equal(attempt.status, 429, `${what}: HTTP ${attempt.status} ${attempt.body}`);
        assert.ok(Date.now() < deadline, `${what}: no place came free within ${RELEASE_MS} ms (a closed socket still counts)`);
        await sleep(50);
      }
    }

    /** Exactly SOCKET_LIMIT sockets from `via`, once every earlier one's place has come back. */
    async function fill(via: Via, what: string): Promise<WireClient[]> {
      const open: WireClient[] = [];
      for (let i = 0; i < SOCKET_LIMIT; i++) open.push(await openWhenFree(via, `${what}: socket ${i + 1} of ${SOCKET_LIMIT}`));
      return open;
    }

    /** Both services refuse one more socket from `via` with 429. */
    async function expectFull(via: Via, what: string): Promise<void> {
      const s = await register(server, { mode: 'text' }, via);
      const body = await expectRefused(matchingUrl(server, s.id, s.token), { channel: 'matching', label: `${what} (matching)`, ...via }, 429);
      assert.ok((body.retry_after ?? 0) >= 1, `${what}: retry_after`);
      await expectRefused(signallingUrl(server, s.id, s.token), { channel: 'signalling', label: `${what} (signalling)`, ...via }, 429);
    }

    it(`a place is held as long as its socket is open, however long: ${SOCKET_LIMIT} open, the next gets 429; one closes, exactly one more opens; all close, ${SOCKET_LIMIT} open again`, async () => {
      const via = from(freshAddress());
      const open = await fill(via, 'first fill');
      await expectFull(via, `socket ${SOCKET_LIMIT + 1}`);
      await sleep(HOLD_MS);
      await expectFull(via, `socket ${SOCKET_LIMIT + 1} after the first ${SOCKET_LIMIT} were held for ${HOLD_MS} ms`);

      await open[0]!.close(1000);
      open[0] = await openWhenFree(via, 'the socket in the place of the one closed');
      await expectFull(via, 'one more after one closed and one took its place');

      await Promise.all(open.map((c) => c.close(1000)));
      await fill(via, 'after all closed');
      await expectFull(via, `socket ${SOCKET_LIMIT + 1} after all closed and ${SOCKET_LIMIT} opened again`);
    });

    it('no drift over many cycles: upgrades refused after admission (bad token, bad one-trip query), replaced sockets, clients gone mid-handshake, clean and abrupt closes', async () => {
      const via = from(freshAddress());
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const s = await register(server, { mode: 'text' }, via);
        // Admitted (a place was free), then refused: the place is given back.
        await expectRefused(matchingUrl(server, s.id, 'not-the-token'), { channel: 'matching', label: 'bad token (matching)', ...via }, 401);
        await expectRefused(signallingUrl(server, s.id, 'not-the-token'), { channel: 'signalling', label: 'bad token (signalling)', ...via }, 401);
        await expectRefused(oneTripUrl(server, { mode: 'neither' }), { channel: 'matching', label: 'one-trip with a bad mode', ...via }, 400);
        // Gone while the server decides: with a valid token, a wrong one, and a one-trip start.
        const valid = await Promise.all(Array.from({ length: VANISHING }, () => register(server, { mode: 'text' }, via)));
        await Promise.all([
          ...valid.map((v) => vanish(matchingUrl(server, v.id, v.token), via)),
          ...valid.map((v) => vanish(signallingUrl(server, v.id, 'not-the-token'), via)),
          ...valid.map(() => vanish(oneTripUrl(server, { mode: 'text' }), via)),
        ]);
        const open = await fill(via, `cycle ${cycle + 1}`);
        await expectFull(via, `cycle ${cycle + 1}: socket ${SOCKET_LIMIT + 1}`);
        // A second matching socket of a session replaces the first (4002): the first's place comes back.
        const again = await register(server, { mode: 'text' }, via);
        await open[0]!.close(1000);
        const replaced = await openWhenFree(via, 'a socket to be replaced', matchingUrl(server, again.id, again.token));
        await open[1]!.close(1000);
        open[1] = await openWhenFree(via, 'the replacing socket', matchingUrl(server, again.id, again.token));
        await replaced.expectClose(4002);
        open[0] = await openWhenFree(via, 'in the place of the replaced socket');
        await expectFull(via, `cycle ${cycle + 1}: socket ${SOCKET_LIMIT + 1} after a replacement`);
        // Half close cleanly, half drop the connection without a close frame.
        await Promise.all(open.map((c, i) => (i % 2 === 0 ? c.close(1000) : c.drop(0))));
      }
      await fill(via, 'after every cycle');
      await expectFull(via, `after ${CYCLES} cycles: socket ${SOCKET_LIMIT + 1}`);
    });
  });
}
