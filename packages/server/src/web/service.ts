// The web role: the built client's static files and /config.json, which
// tells the client where the matching and signalling services are.
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import sirv from 'sirv';
import type { Settings } from '../config.js';
import { sendJson } from '../http/context.js';

export interface ServiceUrls {
  /** Port of the matching/signalling role in this process, when it runs here. */
  matchingPort(): number;
  signallingPort(): number;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Dyad</title>
<p>The web client is not built. Run <code>npm run build</code> and reload.</p>`;

/** Public URL of a service: the configured one, else the host the browser used with the service's port. */
function publicUrl(configured: string | undefined, req: IncomingMessage, port: number): string {
  if (configured) return configured;
  const host = new URL(`http://${req.headers.host ?? 'localhost'}`).hostname;
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const proto = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
  return `${proto}://${bracketed}:${port}`;
}

export function createWebServer(settings: Settings, urls: ServiceUrls): Server {
  const built = existsSync(settings.webRoot);
  const assets = built ? sirv(settings.webRoot, { single: true, etag: true, gzip: false, brotli: false }) : undefined;
  return createServer({ headersTimeout: settings.httpTimeoutMs, requestTimeout: settings.httpTimeoutMs }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/config.json') {
      return sendJson(
        res,
        200,
        {
          matching_url: publicUrl(settings.publicMatchingUrl, req, urls.matchingPort()),
          signalling_url: publicUrl(settings.publicSignallingUrl, req, urls.signallingPort()),
        },
        { 'Cache-Control': 'no-store' },
      );
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    if (!assets) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      return res.end(NOT_BUILT);
    }
    assets(req, res, () => sendJson(res, 404, { status: 'error', message: 'not found' }));
  });
}
