// The public deployment as it ships, for real: Debian's caddy runs
// deploy/Caddyfile (with only certificate, storage and port options added to
// its global options) in front of Redis, two matching and two signalling
// processes and the web role, and two real Chromium pages use Dyad at
// https://dyad.test:PORT, one origin, wss for the sockets. dyad.test is not
// localhost, so only TLS makes the page a secure context that may have a
// camera. Also: the compose file is checked by a Compose validator and against
// the Caddyfile, coturn runs with its command line, a rolling restart of every
// matching and signalling process keeps a call, and Caddy logs no request.
// Runs inside the private network namespace of the test:e2e script.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { parse as parseYaml } from 'yaml';
import {
  clickStart,
  closeUsers,
  expectConnected,
  expectStatus,
  expectVideoFlowing,
  launchBrowser,
  newUser as newHarnessUser,
  peerConnectionCount,
  prepare,
  socketUrls,
  startPair,
  startServer,
  talk,
  waitForMedia,
  waitForOpenSockets,
  within,
  WEB_ROOT,
} from './harness.js';
import type { RunningServer, User } from './harness.js';
import { LOOPBACK_ENV, REPO_ROOT, ServerProcess, serverEnv, track } from '../packages/server/test/support/spawn.js';
import { RedisServer, freePort } from '../packages/server/test/redis/support/redis-server.js';

const CADDYFILE = join(REPO_ROOT, 'deploy/Caddyfile');
const COMPOSE = join(REPO_ROOT, 'docker-compose.yml');
const SECRETS_SCRIPT = join(REPO_ROOT, 'deploy/secrets.sh');
const DCLINT = join(REPO_ROOT, 'node_modules/dclint/bin/dclint.cjs');

/** A name that is not localhost (browsers treat http://localhost as secure too), resolved to 127.0.0.1 by Chromium's rule. */
const DOMAIN = 'dyad.test';
const CADDY_READY_TIMEOUT_MS = 20_000;
/** Everything Caddy writes in one run is kept (it writes a few lines unless it logs requests). */
const CADDY_LOG_KEEP_CHARS = 4_000_000;
/** A busy machine may take many seconds to start a node process. */
const PROCESS_START_TIMEOUT_MS = 30_000;
const PROCESS_STOP_TIMEOUT_MS = 6_000;
/** Click-to-first-frame runs through the proxy and on plain loopback each (printed, not asserted; `npm run bench:frame` measures it in rounds). */
const FRAME_RUNS = 1;
const REGISTER_RATE_PER_MIN = 30;
/**
 * Waits of the pages: this file runs Caddy, Redis and five server processes
 * beside the browser, and a shared machine may be slow to load a page.
 */
const PAGE_TIMEOUT_MS = 30_000;

/**
 * The Caddyfile the test runs: the shipped one, with global options added
 * that change only where certificates come from (Caddy's own local CA, no
 * ACME), where they are kept, and the http port (the site's https port is in
 * DOMAIN).
 */
function testCaddyfile(storage: string, httpPort: number): string {
  const options = ['admin off', 'local_certs', 'skip_install_trust', `storage file_system ${storage}`, `http_port ${httpPort}`];
  const shipped = readFileSync(CADDYFILE, 'utf8');
  // The global options block is the first one, opened by a line of its own.
  const open = /^\{\n/m.exec(shipped);
  assert.ok(open, 'deploy/Caddyfile has a global options block');
  const at = open.index + open[0].length;
  return `${shipped.slice(0, at)}${options.map((o) => `\t${o}\n`).join('')}${shipped.slice(at)}`;
}

/** The upstream defaults the Caddyfile names: `{$MATCHING_1:matching-1:8000}` → MATCHING_1, matching-1, 8000. */
function caddyUpstreams(text: string): { variable: string; service: string; port: number }[] {
  return [...text.matchAll(/\{\$([A-Z0-9_]+):([a-z0-9-]+):(\d+)\}/g)].map((m) => ({ variable: m[1]!, service: m[2]!, port: Number(m[3]) }));
}

/**
 * What Compose makes of a value of the file: `$$` is a `$`, and `${NAME}`,
 * `${NAME:-default}`, `${NAME:?message}` come from `vars`.
 */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (whole, name: string | undefined, op?: string, arg?: string) => {
    if (whole === '$$') return '$';
    const set = vars[name!];
    if (set !== undefined && set !== '') return set;
    if (op === '-') return arg ?? '';
    throw new Error(`${name} is not set${op === '?' ? `: ${arg}` : ''}`);
  });
}

/** Resolve once something answers a STUN Binding Request on 127.0.0.1:port with Binding Success (0x0101). */
async function stunAnswers(port: number, timeoutMs: number): Promise<void> {
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0);
  request.writeUInt32BE(0x2112a442, 4);
  randomBytes(12).copy(request, 8);
  const sock = createSocket('udp4');
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    await within(
      timeoutMs,
      `coturn answers STUN on 127.0.0.1:${port}`,
      new Promise<void>((ok) => {
        sock.on('message', (msg) => msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(request.subarray(8, 20)) && ok());
        sock.on('error', () => undefined);
        const send = () => sock.send(request, port, '127.0.0.1', () => undefined);
        send();
        timer = setInterval(send, 50);
      }),
    );
  } finally {
    clearInterval(timer);
    sock.close();
  }
}

class Caddy {
  private constructor(
    private readonly child: ReturnType<typeof spawn>,
    readonly dir: string,
    private readonly log: () => string,
  ) {}

  static async start(httpsPort: number, upstreams: Record<string, string>): Promise<Caddy> {
    const dir = mkdtempSync(join(tmpdir(), 'dyad-caddy-'));
    const file = join(dir, 'Caddyfile');
    writeFileSync(file, testCaddyfile(join(dir, 'storage'), await freePort()));
    const env = serverEnv({ HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), DOMAIN: `${DOMAIN}:${httpsPort}`, ...upstreams });
    const child = track(spawn('caddy', ['run', '--config', file, '--adapter', 'caddyfile'], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let output = '';
    for (const stream of [child.stdout, child.stderr]) stream?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-CADDY_LOG_KEEP_CHARS)));
    const exited = new Promise<string>((resolve) => {
      child.once('error', (err) => resolve(`caddy could not run (apt-get install caddy): ${err.message}`));
      child.once('exit', (code) => resolve(`caddy exited with ${code}`));
    });
    const caddy = new Caddy(child, dir, () => output);
    let waiting = true;
    const ready = (async () => {
      while (waiting) {
        try {
          if ((await caddy.get(httpsPort, '/healthz')).status === 200) return 'ready';
        } catch {
          // not listening yet, or no certificate yet
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return 'gave up';
    })();
    const outcome = await within(CADDY_READY_TIMEOUT_MS, `caddy serves https on ${httpsPort}`, Promise.race([ready, exited]))
      .catch((err: Error) => err.message)
      .finally(() => (waiting = false));
    if (outcome !== 'ready') {
      await caddy.stop();
      throw new Error(`${outcome}; caddy's output:\n${output}`);
    }
    return caddy;
  }

  /** Caddy's root certificate: the one a browser or client of this test trusts. */
  get root(): string {
    return readFileSync(join(this.dir, 'storage/pki/authorities/local/root.crt'), 'utf8');
  }

  /** Base64 SHA-256 of each local CA certificate's public key, for Chromium's --ignore-certificate-errors-spki-list. */
  spkiHashes(): string[] {
    return ['root.crt', 'intermediate.crt'].map((name) => {
      const cert = new X509Certificate(readFileSync(join(this.dir, 'storage/pki/authorities/local', name)));
      return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
    });
  }

  /** An https request to DOMAIN:port through 127.0.0.1, verified against Caddy's root, as a browser would send it. */
  get(port: number, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
    const ca = existsSync(join(this.dir, 'storage/pki/authorities/local/root.crt')) ? this.root : undefined;
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: opts.method ?? 'GET',
          servername: DOMAIN,
          ca,
          headers: { host: `${DOMAIN}:${port}`, ...opts.headers },
          timeout: 5_000,
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${path}: no answer`)));
      req.on('error', reject);
      req.end(opts.body);
    });
  }

  output(): string {
    return this.log();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await within(5_000, 'caddy stops', gone).catch(() => this.child.kill('SIGKILL'));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

type Role = 'matching' | 'signalling';

/** Redis, two matching and two signalling processes and the web role, as docker-compose.yml runs them. */
class Topology {
  readonly procs: Record<Role, ServerProcess[]> = { matching: [], signalling: [] };
  web!: ServerProcess;

  private constructor(
    readonly redis: RedisServer,
    private readonly env: Record<string, string>,
  ) {}

  static async start(publicUrl: string): Promise<Topology> {
    const redis = await RedisServer.start();
    const topology = new Topology(redis, {
      REDIS_URL: redis.url,
      ADDRESS_HASH_KEY: randomBytes(16).toString('hex'),
      PUBLIC_URL: publicUrl,
      TRUST_PROXY: 'true',
      REGISTER_RATE_PER_MIN: String(REGISTER_RATE_PER_MIN),
      NEXT_RATE_PER_MIN: '100000',
      LOG_LEVEL: 'warn',
    });
    try {
      // One after another: a busy machine starts four processes at once slowly.
      for (const role of ['matching', 'signalling'] as const) {
        for (const n of [1, 2]) topology.procs[role].push(await topology.spawn(role, `${role}-${n}`));
      }
      topology.web = await ServerProcess.start({
        label: 'web',
        env: serverEnv(LOOPBACK_ENV, { ...topology.env, ROLES: 'web', WEB_ROOT }),
        timeoutMs: PROCESS_START_TIMEOUT_MS,
      });
    } catch (err) {
      await topology.stop();
      throw err;
    }
    return topology;
  }

  spawn(role: Role, label: string, port = '0'): Promise<ServerProcess> {
    const portVar = role === 'matching' ? 'MATCHING_PORT' : 'SIGNALLING_PORT';
    return ServerProcess.start({ label, env: serverEnv(LOOPBACK_ENV, { ...this.env, ROLES: role, [portVar]: port }), timeoutMs: PROCESS_START_TIMEOUT_MS });
  }

  /** What Caddy is told through the Caddyfile's variables: each upstream's host:port. */
  upstreams(): Record<string, string> {
    const hostPort = (p: ServerProcess, role: Role | 'web') => new URL(p.url(role)).host;
    return {
      MATCHING_1: hostPort(this.procs.matching[0]!, 'matching'),
      MATCHING_2: hostPort(this.procs.matching[1]!, 'matching'),
      SIGNALLING_1: hostPort(this.procs.signalling[0]!, 'signalling'),
      SIGNALLING_2: hostPort(this.procs.signalling[1]!, 'signalling'),
      WEB: hostPort(this.web, 'web'),
    };
  }

  /** Stop one process as an upgrade does (SIGTERM) and start its successor on the same port. */
  async replace(role: Role, index: number): Promise<void> {
    const old = this.procs[role][index]!;
    const port = new URL(old.url(role)).port;
    const exit = await old.stop('SIGTERM', PROCESS_STOP_TIMEOUT_MS);
    assert.equal(exit.code, 0, `${old.label} exits 0 on SIGTERM:\n${old.output().slice(-2000)}`);
    this.procs[role][index] = await this.spawn(role, `${role}-${index + 1}`, port);
  }

  /** Stop the web role, run `work`, and start it again on the same port. */
  async whileWebIsDown(work: () => Promise<void>): Promise<void> {
    const port = new URL(this.web.url('web')).port;
    await this.web.stop('SIGTERM', PROCESS_STOP_TIMEOUT_MS);
    try {
      await work();
    } finally {
      this.web = await ServerProcess.start({
        label: 'web',
        env: serverEnv(LOOPBACK_ENV, { ...this.env, ROLES: 'web', WEB_ROOT, WEB_PORT: port }),
        timeoutMs: PROCESS_START_TIMEOUT_MS,
      });
    }
  }

  output(): string {
    return [...this.procs.matching, ...this.procs.signalling, this.web]
      .filter(Boolean)
      .map((p) => `[${p.label}] ${p.output().slice(-1500)}`)
      .join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.matching, ...this.procs.signalling, this.web].filter(Boolean).map((p) => p.stop('SIGTERM', PROCESS_STOP_TIMEOUT_MS)));
    await this.redis.stop();
  }
}

/** A page of the harness, with the longer waits of this file (expectStatus's too). */
async function newUser(browser: Browser): Promise<User> {
  const user = await newHarnessUser(browser);
  user.page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  return user;
}

/** Click Start on two fresh pages; milliseconds until both decode the other's video. */
async function clickToFrame(browser: Browser, url: string): Promise<number> {
  const a = await newUser(browser);
  const b = await newUser(browser);
  try {
    await Promise.all([prepare(a.page, url, 'video'), prepare(b.page, url, 'video')]);
    const start = performance.now();
    await Promise.all([clickStart(a.page), clickStart(b.page)]);
    await Promise.all([waitForMedia(a.page, PAGE_TIMEOUT_MS), waitForMedia(b.page, PAGE_TIMEOUT_MS)]);
    return performance.now() - start;
  } finally {
    await closeUsers(a, b);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

describe('the shipped deployment files', () => {
  it('docker-compose.yml passes a Compose validator (dclint: the compose-spec schema and its rules)', () => {
    // Bound to every interface on purpose: 80 and 443 are the public entry.
    const run = spawnSync(process.execPath, [DCLINT, COMPOSE, '--quiet', '-f', 'json', '--disable-rule', 'no-unbound-port-interfaces'], { encoding: 'utf8' });
    const messages = (JSON.parse(run.stdout) as { messages: { rule: string; message: string }[] }[]).flatMap((f) => f.messages);
    assert.deepEqual(messages, [], 'no errors');
    assert.equal(run.status, 0, run.stderr);
  });

  it('the validator refuses a compose file the schema does not allow (it is not vacuous)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dyad-compose-'));
    try {
      const broken = join(dir, 'docker-compose.yml');
      writeFileSync(broken, readFileSync(COMPOSE, 'utf8').replace('restart: unless-stopped', 'restarts: unless-stopped'));
      const run = spawnSync(process.execPath, [DCLINT, broken, '--quiet', '-f', 'json', '--disable-rule', 'no-unbound-port-interfaces'], { encoding: 'utf8' });
      assert.notEqual(run.status, 0);
      assert.match(run.stdout, /invalid-schema/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compose and the Caddyfile agree: Caddy runs the shipped file, its upstreams are the services on their ports, and every service is behind it', () => {
    type Service = { environment?: Record<string, string>; volumes?: string[]; ports?: string[]; network_mode?: string };
    const compose = parseYaml(readFileSync(COMPOSE, 'utf8'), { merge: true }) as { services: Record<string, Service> };
    const { services } = compose;
    assert.ok(services.caddy?.volumes?.includes('./deploy/Caddyfile:/etc/caddy/Caddyfile:ro'), 'caddy runs deploy/Caddyfile');
    assert.match(services.caddy?.environment?.DOMAIN ?? '', /^\$\{DOMAIN/);
    const upstreams = caddyUpstreams(readFileSync(CADDYFILE, 'utf8'));
    assert.deepEqual(upstreams.map((u) => u.variable).sort(), ['MATCHING_1', 'MATCHING_2', 'SIGNALLING_1', 'SIGNALLING_2', 'WEB']);
    const portVar = { matching: 'MATCHING_PORT', signalling: 'SIGNALLING_PORT', web: 'WEB_PORT' } as const;
    for (const { service, port } of upstreams) {
      const env = services[service]?.environment;
      assert.ok(env, `service ${service} exists`);
      const role = env.ROLES as keyof typeof portVar;
      assert.equal(env[portVar[role]], String(port), `${service} listens on ${port}`);
      assert.equal(env.PUBLIC_URL, 'https://${DOMAIN:?set DOMAIN to the name of this host, e.g. DOMAIN=chat.example.org}');
      assert.equal(env.TRUST_PROXY, 'true', `${service} takes the client address from Caddy`);
    }
    const dyadServices = Object.entries(services).filter(([, s]) => s.environment?.ROLES).map(([name]) => name).sort();
    assert.deepEqual(dyadServices, upstreams.map((u) => u.service).sort(), 'every Dyad process is behind Caddy');
    const published = Object.entries(services).filter(([, s]) => s.ports?.length).map(([name]) => name);
    assert.deepEqual(published, ['caddy'], 'only Caddy publishes ports (coturn uses the host network)');
    assert.equal(services.coturn?.network_mode, 'host');
  });

  it('the shipped Caddyfile, as production runs it (ACME for DOMAIN), is valid for this caddy', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dyad-caddy-adapt-'));
    try {
      const run = spawnSync('caddy', ['adapt', '--config', CADDYFILE, '--adapter', 'caddyfile'], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir, DOMAIN: 'chat.example.org' },
      });
      assert.equal(run.error, undefined, 'caddy runs (apt-get install caddy)');
      assert.equal(run.status, 0, run.stderr);
      const json = run.stdout;
      assert.match(json, /"host":\["chat\.example\.org"\]/);
      for (const dial of ['matching-1:8000', 'matching-2:8000', 'signalling-1:8001', 'signalling-2:8001', 'web:8080']) {
        assert.ok(json.includes(`"dial":"${dial}"`), `upstream ${dial}`);
      }
      assert.doesNotMatch(json, /"module":"internal"/, 'no local CA in production: certificates come from ACME');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('coturn runs with the command line of docker-compose.yml and the secret deploy/secrets.sh made', async () => {
    type Service = { entrypoint: string[]; command: string[]; volumes: string[] };
    const { coturn } = (parseYaml(readFileSync(COMPOSE, 'utf8'), { merge: true }) as { services: { coturn: Service } }).services;
    const volume = coturn.volumes.find((v) => v.startsWith('secrets:'))!.split(':')[1]!;
    const dir = mkdtempSync(join(tmpdir(), 'dyad-coturn-'));
    try {
      assert.equal(spawnSync('sh', [SECRETS_SCRIPT, join(dir, 'secrets')]).status, 0);
      const secret = spawnSync('sh', ['-c', `. "${dir}/secrets/env" && printf %s "$TURN_SECRET"`], { encoding: 'utf8' }).stdout;
      for (const publicIp of ['', '192.0.2.10']) {
        const port = await freePort();
        const vars = { DOMAIN, PUBLIC_IP: publicIp };
        // As compose runs it; on loopback: the secrets volume is a folder here, and the
        // address, port and files are this test's.
        const [shell, ...rest] = coturn.entrypoint.map((v) => interpolate(v, vars).replaceAll(volume, join(dir, 'secrets')));
        const args = coturn.command.map((v) => interpolate(v, vars)).map((a) => (a.startsWith('--listening-port=') ? `--listening-port=${port}` : a));
        const local = ['--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--pidfile=${join(dir, 'turn.pid')}`, `--userdb=${join(dir, 'turndb')}`];
        const child = track(spawn(shell!, [...rest, ...args, ...local], { env: { PATH: process.env.PATH, TURN_SECRET: '', PUBLIC_IP: publicIp }, stdio: ['ignore', 'pipe', 'pipe'] }));
        let output = '';
        for (const stream of [child.stdout, child.stderr]) stream?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
        try {
          await stunAnswers(port, 5_000).catch((err: Error) => assert.fail(`${err.message}; coturn's output:\n${output}`));
          // exec: the shell became turnserver, with the secret and, when given, the public address.
          const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
          assert.equal(argv[0], 'turnserver');
          assert.ok(argv.includes(`--static-auth-secret=${secret}`), 'the secret from the secrets volume');
          assert.equal(argv.includes('--external-ip=192.0.2.10'), publicIp !== '', `--external-ip only with PUBLIC_IP (${JSON.stringify(publicIp)})`);
          assert.ok(!argv.includes(''), 'no empty argument');
        } finally {
          const gone = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await within(5_000, 'coturn stops', gone).catch(() => child.kill('SIGKILL'));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deploy/secrets.sh makes the shared secrets once; a value set in the environment wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dyad-secrets-'));
    const read = (env: Record<string, string> = {}) =>
      spawnSync('sh', ['-c', `. "${dir}/env" && printf '%s %s' "$ADDRESS_HASH_KEY" "$TURN_SECRET"`], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } }).stdout;
    try {
      assert.equal(spawnSync('sh', [SECRETS_SCRIPT, dir]).status, 0);
      const first = read();
      assert.match(first, /^[0-9a-f]{48} [0-9a-f]{48}$/);
      assert.notEqual(first.split(' ')[0], first.split(' ')[1]);
      assert.equal(spawnSync('sh', [SECRETS_SCRIPT, dir]).status, 0);
      assert.equal(read(), first, 'a second start keeps them');
      assert.equal(read({ TURN_SECRET: 'set-by-the-operator' }), `${first.split(' ')[0]} set-by-the-operator`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Dyad through Caddy on one https origin, 2 matching + 2 signalling processes on Redis', { timeout: 600_000 }, () => {
  let httpsPort: number;
  let origin: string;
  let topology: Topology;
  let caddy: Caddy;
  let browser: Browser;

  before(async () => {
    httpsPort = await freePort();
    origin = `https://${DOMAIN}:${httpsPort}`;
    topology = await Topology.start(origin);
    caddy = await Caddy.start(httpsPort, topology.upstreams());
    // dyad.test is this machine; Caddy's local CA is the only one accepted beyond the system's.
    browser = await launchBrowser([`--host-resolver-rules=MAP ${DOMAIN} 127.0.0.1`, `--ignore-certificate-errors-spki-list=${caddy.spkiHashes().join(',')}`]);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await caddy?.stop();
    await topology?.stop();
  });

  it('/config.json names the services on the same origin; metrics stay inside', async () => {
    const config = await caddy.get(httpsPort, '/config.json');
    assert.equal(config.status, 200, config.text);
    // The service URLs (the body carries other settings too).
    const { matching_url, signalling_url } = JSON.parse(config.text) as Record<string, unknown>;
    assert.deepEqual({ matching_url, signalling_url }, { matching_url: `${origin}/matching`, signalling_url: `${origin}/signalling` });
    assert.equal(config.headers['cache-control'], 'no-store');
    for (const service of ['matching', 'signalling']) {
      assert.equal((await caddy.get(httpsPort, `/${service}/readyz`)).status, 200, `${service} behind /${service}`);
      assert.equal((await caddy.get(httpsPort, `/${service}/metrics`)).status, 404, `/${service}/metrics is not public`);
    }
  });

  it('video, chat and Next between two pages at https://dyad.test, every socket wss on that origin', async () => {
    const a = await newUser(browser);
    const b = await newUser(browser);
    try {
      await Promise.all([prepare(a.page, origin, 'video'), prepare(b.page, origin, 'video')]);
      assert.equal(await a.page.evaluate(() => window.isSecureContext), true, 'https makes the page a secure context');
      await Promise.all([clickStart(a.page), clickStart(b.page)]);
      const [sa, sb] = await Promise.all([waitForMedia(a.page, PAGE_TIMEOUT_MS), waitForMedia(b.page, PAGE_TIMEOUT_MS)]);
      assert.ok(sa.framesDecoded > 0 && sb.framesDecoded > 0 && sa.audioPacketsReceived > 0 && sb.audioPacketsReceived > 0);
      await expectConnected(a.page, b.page);
      for (const page of [a.page, b.page]) {
        const urls = (await socketUrls(page)).filter((s) => s.open).map((s) => s.url.replace(/\?.*$/, ''));
        assert.equal(urls.length, 2, `matching and signalling sockets open: ${urls.join(', ')}`);
        assert.ok(urls.some((u) => u.startsWith(`wss://${DOMAIN}:${httpsPort}/matching/ws`)), urls.join(', '));
        assert.ok(urls.some((u) => u.startsWith(`wss://${DOMAIN}:${httpsPort}/signalling/ws/`)), urls.join(', '));
      }

      await talk(a.page, b.page, 'hello over https');
      await talk(b.page, a.page, 'and back');

      await a.page.getByRole('button', { name: /^Next/ }).click();
      await expectStatus(b.page, /Stranger skipped/);
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await closeUsers(a, b);
    }
  });

  it('a rolling restart of every matching and signalling process keeps the call', async () => {
    const a = await newUser(browser);
    const b = await newUser(browser);
    try {
      await startPair(a, b, origin, 'video', PAGE_TIMEOUT_MS);
      await expectConnected(a.page, b.page);
      // One at a time, as docs/DEPLOY.md says: each successor is up before the next process stops.
      for (const [role, index] of [['matching', 0], ['signalling', 0], ['matching', 1], ['signalling', 1]] as const) {
        await topology.replace(role, index);
        await Promise.all([waitForOpenSockets(a.page, 2), waitForOpenSockets(b.page, 2)]);
      }
      // Every process was replaced, so every socket was closed once at least and came back.
      for (const page of [a.page, b.page]) assert.ok((await socketUrls(page)).length >= 4, 'both sockets were reopened');
      await expectConnected(a.page, b.page);
      assert.equal(await peerConnectionCount(a.page), 1, 'the same call, never renegotiated in a new room');
      await talk(a.page, b.page, 'still here after the upgrade');
      await expectVideoFlowing(b.page, 'video keeps flowing after the restarts');
      assert.deepEqual([...a.errors, ...b.errors], []);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${topology.output()}\ncaddy:\n${caddy.output().slice(-3000)}`, { cause: err });
    } finally {
      await closeUsers(a, b);
    }
  });

  it('click to first frame: through the https proxy beside plain loopback (printed)', async () => {
    const proxied: number[] = [];
    const direct: number[] = [];
    const plain: RunningServer = await startServer();
    try {
      for (let run = 0; run < FRAME_RUNS; run++) {
        proxied.push(await clickToFrame(browser, origin));
        direct.push(await clickToFrame(browser, plain.web));
      }
    } finally {
      await plain.stop();
    }
    const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
    console.log(`click to first frame, both pages, ${FRAME_RUNS} runs each, load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}:`);
    console.log(`  https through Caddy, 2 matching + 2 signalling on Redis: ${fmt(proxied)}`);
    console.log(`  plain http on loopback, one process:                     ${fmt(direct)}`);
    assert.equal(proxied.length + direct.length, 2 * FRAME_RUNS);
  });

  it('Caddy logged no request: no session token, no client address, not even of a request that failed', async () => {
    // A request Caddy cannot carry out (its upstream is down) is what its error log would write.
    await topology.whileWebIsDown(async () => {
      const res = await caddy.get(httpsPort, '/?token=canary-token-value');
      assert.equal(res.status, 502);
    });
    const log = caddy.output();
    assert.ok(log.length > 0 && log.length < CADDY_LOG_KEEP_CHARS, 'all of it was kept');
    assert.doesNotMatch(log, /canary-token-value|token=/);
    assert.doesNotMatch(log, /remote_ip|remote_addr|client_ip/);
  });

  it('a client cannot choose its address: X-Forwarded-For is Caddy\'s, so the registration limit holds', async () => {
    // Runs last: it spends this address's registrations for the minute.
    let refused = 0;
    for (let i = 0; i <= REGISTER_RATE_PER_MIN && refused === 0; i++) {
      const res = await caddy.get(httpsPort, '/matching/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `198.51.100.${i + 1}`, origin },
        body: JSON.stringify({ mode: 'text' }),
      });
      if (res.status === 429) refused = i + 1;
      else assert.equal(res.status, 200, res.text);
    }
    assert.ok(refused > 0, `${REGISTER_RATE_PER_MIN + 1} registrations, each with its own forged X-Forwarded-For, were all accepted`);
  });
});
