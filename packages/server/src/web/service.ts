// The web role: the built client's static files and /config.json, which
// tells the client where the matching and signalling services are and how it
// guards its viewer against nudity in the stranger's video (issue 13).
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { PUBLIC_PATHS, type Settings } from '../config.js';
import { sendJson } from '../http/context.js';
import { serveFile } from './files.js';

export interface ServiceUrls {
  /** Port of the matching/signalling role in this process, when it runs here. */
  matchingPort(): number;
  signallingPort(): number;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Dyad</title>
<p>The web client is not built. Run <code>npm run build</code> and reload.</p>`;

/**
 * Longest Host header taken for a host: a DNS name has at most 253
 * characters. The host is written into each response's policy (four times)
 * and /config.json: a 7 KB one made every answer 43 KB and cost 0.2 ms
 * (fifth review, finding M4).
 */
const MAX_HOST_CHARS = 300;

/** The hostname of the Host header; a header that is no host (anyone can send one), or too long for one, counts as none. */
function requestHostname(req: IncomingMessage): string {
  const host = req.headers.host;
  if (host !== undefined && host.length > MAX_HOST_CHARS) return 'localhost';
  try {
    return new URL(`http://${host ?? 'localhost'}`).hostname;
  } catch {
    return 'localhost';
  }
}

/**
 * Public URL of a service: the configured one; else its path under PUBLIC_URL (the one-origin
 * proxy); else the host the browser used with the service's port.
 */
function publicUrl(configured: string | undefined, under: string | undefined, path: string, req: IncomingMessage, port: number): string {
  if (configured) return configured;
  if (under) return `${under}${path}`;
  const host = requestHostname(req);
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const proto = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
  return `${proto}://${bracketed}:${port}`;
}

/**
 * The Content-Security-Policy of everything the web role sends (the pages, and the
 * scripts and workers, which take their policy from their own responses): scripts,
 * styles and images of this origin only (no inline script or style, no eval;
 * WebAssembly for the nudity classifier's backend, without which it runs some
 * four times slower), connections to this origin and to the matching and
 * signalling services, never inside another site's frame (a hidden frame could
 * have a visitor click Start with the camera on), no plugins, forms or <base>.
 */
function contentSecurityPolicy(services: readonly string[]): string {
  const origins = new Set<string>();
  for (const service of services) {
    let url: URL;
    try {
      url = new URL(service);
    } catch {
      continue;
    }
    origins.add(url.origin);
    origins.add(`${url.protocol === 'https:' ? 'wss' : 'ws'}://${url.host}`);
  }
  return [
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src 'self' ${[...origins].join(' ')}`.trim(),
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ');
}

export function createWebServer(settings: Settings, urls: ServiceUrls, log: Logger): Server {
  const built = existsSync(settings.webRoot);
  // The policy names the services as the request's Host makes them: made again only when they change.
  let policy = { services: '', text: '' };
  const policyFor = (matching: string, signalling: string): string => {
    const services = `${matching} ${signalling}`;
    if (policy.services !== services) policy = { services, text: contentSecurityPolicy([matching, signalling]) };
    return policy.text;
  };
  const server = createServer({ headersTimeout: settings.httpTimeoutMs, requestTimeout: settings.httpTimeoutMs }, (req, res) => {
    // A throw here would be uncaught and end the process, with every role in it.
    try {
      serve(req, res);
    } catch (err) {
      log.error({ err }, 'request failed');
      if (!res.headersSent) sendJson(res, 500, { status: 'error', message: 'internal error' });
      else res.destroy();
    }
  });
  // A connection on which nothing was read or written for HTTP_TIMEOUT_MS is closed: a client that
  // stopped reading a large file (the classifier's model) held its connection, and the file's
  // descriptor, for good. The services' ports answer a few hundred bytes, which the operating
  // system takes whether the client reads or not, and spare their arrivals the timer. A go-megle
  // WebSocket is exempt once upgraded (ws clears the timeout; pings watch it).
  server.timeout = settings.httpTimeoutMs;
  return server;

  function serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const matchingUrl = publicUrl(settings.publicMatchingUrl, settings.publicUrl, PUBLIC_PATHS.matching, req, urls.matchingPort());
    const signallingUrl = publicUrl(settings.publicSignallingUrl, settings.publicUrl, PUBLIC_PATHS.signalling, req, urls.signallingPort());
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    // Every response, whatever its path: a check of the path (/admin) missed /%61dmin, which names the same file.
    res.setHeader('Content-Security-Policy', policyFor(matchingUrl, signallingUrl));
    res.setHeader('X-Frame-Options', 'DENY');
    if (path === '/config.json') {
      return sendJson(
        res,
        200,
        {
          matching_url: matchingUrl,
          signalling_url: signallingUrl,
          // Whether the client should ask the matching service for a proof of work before it starts (GET /pow).
          pow: settings.powMode,
          nudity_filter: settings.nudityFilter,
          nudity_threshold: settings.nudityThreshold,
          nudity_check_interval_ms: settings.nudityCheckIntervalMs,
          // Whether the landing page offers a region and the flag opt-in (REGION_FILTER, issue 17).
          region_filter: settings.regionFilter,
        },
        { 'Cache-Control': 'no-store' },
      );
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (!built) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(NOT_BUILT);
      return;
    }
    serveFile(settings.webRoot, log, req, res, path ?? '/');
  }
}
