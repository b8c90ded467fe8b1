// The web role's files over real sockets: the single-page fallback, a path
// built to make a pattern backtrack, downloads cut short, a file gone from
// WEB_ROOT, and methods other than GET and HEAD (security review, 2026-12-07).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HttpError } from '@dyad/protocol';
import { describeResponse, request, type HttpResponse } from '../support/http.js';
import { childEnv, startServer, type RunningServer } from '../support/server.js';
import { ServerProcess } from '../support/spawn.js';
import { eventually, sleep } from '../support/ws-client.js';

const BIG_BYTES = 8 * 1024 * 1024;
/** Longer than any answer here takes; the pattern the old library used took hours for the paths below. */
const ANSWER_WITHIN_MS = 10_000;
const CUT_SHORT = 300;
/** Open files of the process below: its own few dozen, and room for some downloads (each a connection and a file). */
const LOW_NOFILE = 256;

let root: string;
let web: RunningServer;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'dyad-files-'));
  await mkdir(path.join(root, 'assets'));
  await writeFile(path.join(root, 'index.html'), '<!doctype html><title>page</title>');
  await writeFile(path.join(root, 'admin.html'), '<!doctype html><title>console</title>');
  await writeFile(path.join(root, 'assets', 'app-Ab12Cd34.js'), 'console.log(1)');
  await writeFile(path.join(root, 'big.bin'), Buffer.alloc(BIG_BYTES, 7));
  await writeFile(path.join(root, 'gone.txt'), 'here for now');
  await writeFile(path.join(root, 'legacy-client.html'), '<!doctype html><title>legacy</title><script>start()</script>');
  web = await startServer({ WEB_ROOT: root, ROLES: 'matching,signalling,web' });
});

after(async () => {
  await web?.stop();
  await rm(root, { recursive: true, force: true });
});

async function answered(url: string, opts: Parameters<typeof request>[1] = {}): Promise<HttpResponse> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ANSWER_WITHIN_MS} ms: ${url.slice(0, 120)}`)), ANSWER_WITHIN_MS);
  });
  try {
    return await Promise.race([request(url, opts), late]);
  } finally {
    clearTimeout(timer);
  }
}

const isPage = (res: HttpResponse): boolean => res.status === 200 && res.text.includes('<title>page</title>');
const openFiles = async (pid: number): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;

describe("the web role's files", () => {
  it('a path that names no file gets the page unless it looks like a file (404 JSON); /admin is admin.html; hashed assets are kept a year, the rest revalidated', async () => {
    for (const p of ['/', '/chat', '/some/route', '/a.b/c', '/room.']) assert.ok(isPage(await answered(`${web.web}${p}`)), `${p} is the page`);
    for (const p of ['/missing.js', '/assets/missing-1234.js', '/x.map']) {
      const res = await answered(`${web.web}${p}`);
      assert.equal(res.status, 404, `${p}: ${describeResponse(res)}`);
      assert.equal(HttpError.parse(res.json()).status, 'error');
    }
    const consolePage = await answered(`${web.web}/admin`);
    assert.ok(consolePage.status === 200 && consolePage.text.includes('<title>console</title>'), describeResponse(consolePage));
    const hashed = await answered(`${web.web}/assets/app-Ab12Cd34.js`);
    assert.equal(hashed.status, 200);
    assert.match(String(hashed.headers['cache-control']), /max-age=31536000.*immutable/);
    const page = await answered(`${web.web}/index.html`);
    assert.equal(page.headers['cache-control'], 'public, max-age=0');
    const again = await answered(`${web.web}/index.html`, { headers: { 'if-none-match': String(page.headers.etag) } });
    assert.equal(again.status, 304, 'a page the browser has is not sent again');
  });

  it("the client's own pages carry its Content-Security-Policy, however spelt; another page in WEB_ROOT (a legacy client's, with inline scripts) only frame-ancestors 'none'", async () => {
    for (const p of ['/', '/index.html', '/admin', '/%61dmin', '/some/route']) {
      const csp = String((await answered(`${web.web}${p}`)).headers['content-security-policy']);
      assert.match(csp, /^default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; /, `${p}: ${csp}`);
    }
    for (const p of ['/legacy-client.html', '/legacy-client', '/%6cegacy-client.html']) {
      const res = await answered(`${web.web}${p}`);
      assert.ok(res.status === 200 && res.text.includes('<title>legacy</title>'), `${p}: ${describeResponse(res)}`);
      assert.equal(res.headers['content-security-policy'], "frame-ancestors 'none'", p);
      assert.equal(res.headers['x-frame-options'], 'DENY', p);
    }
  });

  it('paths made to make a "looks like a file" pattern backtrack (/a.aa.aa…a!, also percent-encoded) are answered at once, and the process serves others meanwhile', async () => {
    const plain = `/a${'.aa'.repeat(40)}!`;
    const encoded = `/%61${'.%61%61'.repeat(40)}!`;
    const [a, b, health] = await Promise.all([answered(`${web.web}${plain}`), answered(`${web.web}${encoded}`), answered(`${web.web}/healthz`)]);
    assert.ok(isPage(a), describeResponse(a));
    assert.ok(isPage(b), describeResponse(b));
    assert.equal(health.status, 200);
  });

  it(`downloads cut short leave no file open: ${CUT_SHORT} requests for an 8 MiB file, each closed after its first bytes, and the process holds the descriptors it held before`, async () => {
    const pid = web.process.pid ?? 0;
    await answered(`${web.web}/healthz`);
    const before = await openFiles(pid);
    const port = Number(new URL(web.web).port);
    for (let i = 0; i < CUT_SHORT; i += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, CUT_SHORT - i) }, () =>
          new Promise<void>((resolve, reject) => {
            const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
            socket.once('data', () => {
              socket.destroy();
              resolve();
            });
            socket.once('error', reject);
          }),
        ),
      );
    }
    const settled = await eventually(async () => ((await openFiles(pid)) <= before + 2 ? true : undefined), 'the files closed', 5_000).catch(() => false);
    assert.ok(settled, `descriptors: ${before} before, ${await openFiles(pid)} after ${CUT_SHORT} downloads cut short`);
  });

  it('a file removed from WEB_ROOT while the process runs gets a 404, and the process lives; HEAD answers the length without the body', async () => {
    assert.equal((await answered(`${web.web}/gone.txt`)).status, 200);
    await rename(path.join(root, 'gone.txt'), path.join(root, 'moved.bin'));
    const res = await answered(`${web.web}/gone.txt`);
    assert.equal(res.status, 404, describeResponse(res));
    await sleep(100);
    assert.equal((await answered(`${web.web}/healthz`)).status, 200, 'the process lives');
    const head = await answered(`${web.web}/big.bin`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(BIG_BYTES));
    assert.equal(head.text, '');
  });

  it('another method than GET or HEAD gets 405 with Allow, in the JSON error', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await answered(`${web.web}/index.html`, { method, body: {} });
      assert.equal(res.status, 405, `${method}: ${describeResponse(res)}`);
      assert.equal(res.headers.allow, 'GET, HEAD');
      assert.equal(HttpError.parse(res.json()).status, 'error');
    }
  });

  it(`at the open-file limit (ulimit -n ${LOW_NOFILE}) the process turns connections away and opens no file, and lives: once the downloads end it serves again`, async () => {
    const low = await ServerProcess.start({
      env: childEnv({ WEB_ROOT: root, ROLES: 'matching,signalling,web' }),
      label: 'low open-file limit',
      launch: (cmd, args, opts) => spawn('sh', ['-c', `ulimit -n ${LOW_NOFILE}; exec "$0" "$@"`, cmd, ...args], opts),
    });
    const held: net.Socket[] = [];
    try {
      const url = low.urls.get('web') ?? '';
      const port = Number(new URL(url).port);
      // Stalled downloads (each a connection and an open file), then more connections than the process has descriptors left.
      for (let i = 0; i < LOW_NOFILE; i++) {
        const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
        socket.on('error', () => undefined);
        socket.pause();
        held.push(socket);
      }
      await sleep(1_000);
      assert.equal(low.alive, true, `the process lives at its limit: ${low.output().slice(-600)}`);
      for (const socket of held) socket.destroy();
      const back = await eventually(async () => {
        const res = await request(`${url}/index.html`);
        return res.status === 200 ? res : undefined;
      }, 'the page served again', 10_000);
      assert.ok(isPage(back));
      assert.equal(low.alive, true);
    } finally {
      for (const socket of held) socket.destroy();
      await low.stop();
    }
  });
});
