// The writes of one turn leave together (store/redis/turns.ts), on a private
// redis-server and a private Redis Cluster: a lone command goes at once, the
// rest of the turn is corked and sent when the turn's I/O is done, Redis
// reads the turn in a read or two, and every reply comes back in order.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { WriteTurns } from '../../src/store/redis/turns.js';
import { RedisCluster } from './support/redis-cluster.js';
import { RedisServer } from './support/redis-server.js';

const N = 200;

async function readsProcessed(r: Redis): Promise<number> {
  const m = /total_reads_processed:(\d+)/.exec(await r.info('stats'));
  if (!m?.[1]) throw new Error('INFO stats has no total_reads_processed');
  return Number(m[1]);
}

const turnEnd = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('commands written in one turn', () => {
  let server: RedisServer;
  let admin: Redis;
  before(async () => {
    server = await RedisServer.start();
    admin = new Redis(server.url);
  });
  after(async () => {
    admin.disconnect();
    await server.stop();
  });

  const connect = async (watch: boolean): Promise<{ client: Redis; turns: WriteTurns }> => {
    const turns = new WriteTurns();
    const client = new Redis(server.url, { lazyConnect: true });
    if (watch) turns.watch(client);
    await client.connect();
    // The connection's own set-up commands are behind us.
    await client.ping();
    return { client, turns };
  };

  it('go at once when alone, are corked from the second on, and leave when the turn ends', async () => {
    const { client } = await connect(true);
    try {
      await turnEnd();
      const sock = client.stream as Socket;
      const first = client.incr('lone');
      assert.equal(sock.writableCorked, 0, 'the turn’s first command is not held');
      const second = client.incr('lone');
      assert.equal(sock.writableCorked, 1, 'the second one is');
      await turnEnd();
      assert.equal(sock.writableCorked, 0, 'and sent once the turn is over');
      assert.deepEqual(await Promise.all([first, second]), [1, 2]);
    } finally {
      client.disconnect();
    }
  });

  it('reach Redis in a read or two, with every reply in order', async () => {
    const { client } = await connect(true);
    const plain = await connect(false);
    try {
      await turnEnd();
      const before = await readsProcessed(admin);
      const replies = await Promise.all(Array.from({ length: N }, () => client.incr('counted')));
      const reads = (await readsProcessed(admin)) - before - 1;
      assert.deepEqual(replies, Array.from({ length: N }, (_, i) => i + 1));
      // One read for the first command, one for the rest (two more if Redis woke up mid-write).
      assert.ok(reads <= 4, `${N} commands of one turn took ${reads} reads`);

      // The same without it: for the record, so that the figure above means something.
      await turnEnd();
      const plainBefore = await readsProcessed(admin);
      await Promise.all(Array.from({ length: N }, () => plain.client.incr('plain')));
      const plainReads = (await readsProcessed(admin)) - plainBefore - 1;
      assert.ok(plainReads > reads, `without coalescing: ${plainReads} reads, with it: ${reads}`);
    } finally {
      client.disconnect();
      plain.client.disconnect();
    }
  });

  it('flush sends what the turn holds at once', async () => {
    const { client, turns } = await connect(true);
    try {
      await turnEnd();
      const sock = client.stream as Socket;
      const replies = [client.set('f', '1'), client.get('f')];
      assert.equal(sock.writableCorked, 1);
      turns.flush();
      assert.equal(sock.writableCorked, 0);
      assert.deepEqual(await Promise.all(replies), ['OK', '1']);
    } finally {
      client.disconnect();
    }
  });

  it('survive a reconnect: the new socket is coalesced too', async () => {
    const { client } = await connect(true);
    try {
      const old = client.stream as Socket;
      const back = new Promise<void>((r) => client.once('ready', () => r()));
      old.destroy();
      await back;
      await turnEnd();
      const sock = client.stream as Socket;
      assert.notEqual(sock, old);
      const replies = [client.incr('again'), client.incr('again')];
      assert.equal(sock.writableCorked, 1);
      assert.deepEqual(await Promise.all(replies), [1, 2]);
    } finally {
      client.disconnect();
    }
  });
});

describe('commands written in one turn on a Redis Cluster', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster.stop();
  });

  it('go to each node in order and all come back, whichever shard holds their key', async () => {
    const turns = new WriteTurns();
    const client = new Cluster(cluster.addresses, { lazyConnect: true });
    turns.watch(client);
    try {
      await client.connect();
      await Promise.all(Array.from({ length: 16 }, (_, i) => client.set(`warm:${i}`, '0')));
      await turnEnd();
      const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
      const nodes = client.nodes('master');
      assert.equal(nodes.length, 3);
      const sent = Array.from({ length: 5 }, () => keys.map((k) => client.incr(k))).flat();
      // Twelve keys over three shards: every node has more than one command of this turn, so each is held.
      assert.deepEqual(
        nodes.map((n) => (n.stream as Socket | undefined)?.writableCorked),
        [1, 1, 1],
      );
      const replies = await Promise.all(sent);
      assert.deepEqual(replies, Array.from({ length: 5 }, (_, round) => keys.map(() => round + 1)).flat());
      assert.ok(nodes.every((n) => (n.stream as Socket | undefined)?.writableCorked === 0), 'nothing is left held');
    } finally {
      client.disconnect();
    }
  });
});
