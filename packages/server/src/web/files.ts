// The built client's files, served by `send` (conditional GET, HEAD
// without reading the file, and a file that is closed when its client goes
// away or its read fails). Any path that names no file and looks like no file
// is the single-page client's: it gets index.html.
//
// Found 2026-12-07 with the library that served them before (sirv): a path
// such as /a.aa.aa…a! took time doubling with each `a.a` in its "looks like a
// file" pattern (71 bytes held the process 5 s); every download cut short
// left its file open (about 70 KB and a descriptor each, until EMFILE ended
// the process), and a file gone from WEB_ROOT ended it at the first request.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { relative } from 'node:path';
import type { Logger } from 'pino';
import send from 'send';
import { sendJson } from '../http/context.js';
import { onceEvery } from '../ops/once-every.js';

/**
 * The client's own pages. Another HTML page in WEB_ROOT (a legacy client's,
 * docs/LEGACY.md) has inline scripts the client's Content-Security-Policy would
 * refuse: it is sent with only `frame-ancestors 'none'` of it.
 */
const OWN_PAGES = new Set(['index.html', 'admin.html']);
const FOREIGN_PAGE_POLICY = "frame-ancestors 'none'";

/** Vite's build output: each name carries a hash of its content, so a browser may keep it. */
const HASHED_DIR = '/assets/';
const HASHED_MAX_AGE = '365d';

/** A last segment with an extension (`x.js`, `a.b.map`) names a file: missing, it is a 404, not the page. Linear in the path. */
export function looksLikeFile(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  if (dot < 0 || dot === name.length - 1) return false;
  for (let i = dot + 1; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const word = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
    if (!word) return false;
  }
  return true;
}

const reason = (status: number): string => (STATUS_CODES[status] ?? 'error').toLowerCase();

/** A file that cannot be read (the open-file limit reached, say) is logged at most once a minute, with how many failed. */
const failureLog = onceEvery(60_000);
const logFailure = (log: Logger, err: unknown): void =>
  failureLog('file', (failures) => log.error({ err, failures }, 'serving a file failed'));

/** Serves `path` (the request's, still percent-encoded) from `root`. */
export function serveFile(root: string, log: Logger, req: IncomingMessage, res: ServerResponse, path: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return sendJson(res, 405, { status: 'error', message: `${req.method ?? ''} is not allowed here` }, { Allow: 'GET, HEAD' });
  }
  // Whole files only (RFC 9110 section 14.2 lets a server ignore Range): the
  // client's files are small, and a range set it cannot serve is then no 416.
  delete req.headers.range;
  const page = (): void => serve('/index.html', false);
  function serve(p: string, orPage: boolean): void {
    const hashed = p.startsWith(HASHED_DIR);
    send(req, p, {
      root,
      index: false,
      extensions: ['html'],
      dotfiles: 'ignore',
      etag: true,
      lastModified: true,
      ...(hashed ? { maxAge: HASHED_MAX_AGE, immutable: true } : { maxAge: 0 }),
    })
      .on('headers', (_res: ServerResponse, file: string) => {
        if (/\.html?$/i.test(file) && !OWN_PAGES.has(relative(root, file))) res.setHeader('Content-Security-Policy', FOREIGN_PAGE_POLICY);
      })
      .on('directory', () => (orPage ? page() : sendJson(res, 404, { status: 'error', message: 'not found' })))
      .on('error', (err: { status?: number; statusCode?: number }) => {
        const status = err.status ?? err.statusCode ?? 500;
        if (status === 404 && orPage && !looksLikeFile(p)) return page();
        if (status >= 500) logFailure(log, err);
        // A read that failed midway: the client has part of the file and its length; only a cut connection says so.
        if (res.headersSent) return void res.destroy();
        sendJson(res, status >= 500 ? 500 : status, { status: 'error', message: reason(status >= 500 ? 500 : status) });
      })
      .pipe(res);
  }
  serve(path, true);
}
