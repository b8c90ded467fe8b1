// Chaos: a seeded random crowd of 2,000 sessions over four processes on one
// Redis, with random next/stop/chat/signals/drops; one process is SIGKILLed
// and Redis is restarted in the middle. Afterwards the clients' own logs are
// checked: nobody in two rooms, every room exactly two, every matched answered
// by the partner's, and nobody left waiting while someone else waits; and while
// it runs, every running process keeps its heartbeat. All of
// it again on a Redis Cluster of three primaries, restarting its state shard.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS, type Backend } from './support/backends.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DyadProcess, REPO_ROOT } from './support/dyad-process.js';
import { check, runCrowd, settle, type Target } from './support/chaos.js';
import { HeartbeatWatch } from './support/heartbeats.js';

const SEED = Number(process.env.CHAOS_SEED ?? 20_261_123);
const SESSIONS = 2_000;
const ACTORS = 120;
const GRACE_MS = 2_000;
/** How close to a crash, a drop or a Redis restart a one-sided pairing may be. */
const DISRUPTION_WINDOW_MS = 4_000;
const SETTLE_MS = 20_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let redis: Backend;
let procs: DyadProcess[] = [];
let live = new Set<DyadProcess>();
let heartbeats: HeartbeatWatch | undefined;
/** Processes that ran without a heartbeat (HeartbeatWatch), in words. */
let lapses: string[] = [];

for (const backend of BACKENDS) describe(`chaos over four processes on ${backend.name}, a crash and a Redis restart`, { timeout: 170_000 }, () => {
  before(async () => {
    redis = await backend.start();
    const env = {
      ...redis.env,
      ROLES: 'matching,signalling',
      GRACE_MS: String(GRACE_MS),
      INTEREST_TIMEOUT_MS: '1000',
      LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'error',
    };
    lapses = [];
    const watch = new HeartbeatWatch(
      redis.stateUrl,
      () => [...live].map((p) => p.name),
      (name, since, now) => lapses.push(`${name} without a heartbeat for ${now - since} ms`),
    );
    heartbeats = watch;
    await watch.start();
    // One at a time (the watch matches each to the id it adds).
    procs = [];
    for (const name of ['p0', 'p1', 'p2', 'p3']) procs.push(await watch.launch(name, () => DyadProcess.start(name, env)));
    live = new Set(procs);
  });

  after(async () => {
    heartbeats?.stop();
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await redis?.stop();
  });

  it(`keeps every invariant (seed ${SEED})`, async (t) => {
    const targets = (): Target[] =>
      [...live].map((p) => ({ name: p.name, matching: p.ws('matching'), signalling: p.ws('signalling') }));
    const disruptions: number[] = [];
    const victim = procs[1];
    assert.ok(victim);

    const began = Date.now();
    const onStarted = async (n: number): Promise<void> => {
      if (n === Math.floor(SESSIONS * 0.4)) {
        live.delete(victim);
        disruptions.push(Date.now());
        await victim.stop('SIGKILL');
      }
      if (n === Math.floor(SESSIONS * 0.7)) {
        disruptions.push(Date.now());
        heartbeats?.excuseAll(60_000);
        await redis.kill();
        await sleep(500);
        await redis.run();
        heartbeats?.excuseAll();
        disruptions.push(Date.now());
      }
    };
    const crowd = await runCrowd({ seed: SEED, sessions: SESSIONS, actors: ACTORS, graceMs: GRACE_MS, targets }, { onStarted });

    const churnMs = Date.now() - began;
    const { settled, present, waiting } = await settle(crowd.lingering, SETTLE_MS);
    const states = present.map((s) => `${s.id}:${s.mode}:${s.state}`);
    for (const s of crowd.all) s.close();

    const findings = check(crowd.all, disruptions, DISRUPTION_WINDOW_MS);
    t.diagnostic(
      `sessions ${crowd.all.length}, rooms ${findings.rooms} (${findings.oneSided} seen by one side only, around a crash/drop), ` +
        `chats ${findings.chats}, signals ${findings.signals}, lingering ${present.length}; churn ${churnMs} ms, settled after ${Date.now() - began - churnMs} ms`,
    );
    if (findings.violations.length > 0) {
      // Keep the logs of the sessions involved for a look afterwards (artifacts/ is not committed).
      const ids = new Set(findings.violations.flatMap((v) => v.match(/[\w-]{12}/g) ?? []));
      const logs = crowd.all.filter((s) => ids.has(s.id)).map((s) => ({ id: s.id, mode: s.mode, query: s.query, log: s.log }));
      mkdirSync(path.join(REPO_ROOT, 'artifacts'), { recursive: true });
      const file = path.join(REPO_ROOT, 'artifacts', `chaos-${SEED}.json`);
      const servers = Object.fromEntries(procs.map((p) => [p.name, p.log()]));
      writeFileSync(file, JSON.stringify({ disruptions, violations: findings.violations, logs, servers }, null, 1));
      t.diagnostic(`logs of the sessions involved: ${file}`);
    }
    assert.equal(crowd.all.length, SESSIONS);
    assert.ok(findings.rooms > SESSIONS / 4, `plenty of pairings (${findings.rooms})`);
    assert.deepEqual(findings.violations, []);
    assert.deepEqual(lapses, [], 'every running process kept its heartbeat');
    assert.ok(settled, `no session waits forever: at most one waiting per mode, nobody idle, at the end; got ${JSON.stringify(waiting)} ${states.join(' ')}`);
    for (const p of live) assert.ok(p.alive, `${p.name} still runs:\n${p.log()}`);
  });
});
