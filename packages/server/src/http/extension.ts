// What a service lets another edge add to it: the legacy protocols
// (src/legacy, docs/LEGACY.md) share the matching and signalling ports with
// Dyad's own protocol, and take the requests that are theirs before the
// service does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export interface ServiceExtension {
  /** Paths of registration requests (POST, CORS as for POST /register) that this extension answers besides /register. */
  readonly registerPaths?: readonly string[];
  /**
   * A registration body, read and decoded by the service (within
   * MAX_FRAME_BYTES, valid JSON); true when the extension answered it, false
   * to leave it to the service.
   */
  register?(req: IncomingMessage, res: ServerResponse, path: string, body: unknown): Promise<boolean>;
  /**
   * A WebSocket upgrade whose Origin, target and handshake the service has
   * checked; true when the extension took it (answered or upgraded).
   */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<boolean>;
}
