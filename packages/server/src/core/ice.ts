// ICE servers for one session. TURN credentials follow the TURN REST API form
// that coturn's `use-auth-secret` checks: username `<expiry>:<session id>`,
// credential base64(HMAC-SHA1(secret, username)).
import { createHmac } from 'node:crypto';
import type { IceServer } from '@dyad/protocol';

export interface IceSettings {
  stunUrls: string[];
  turnUrls: string[];
  turnSecret: string | undefined;
  turnTtlSec: number;
}

export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

export function iceServers(settings: IceSettings, session: string, nowMs: number): IceServer[] {
  const servers: IceServer[] = [];
  if (settings.stunUrls.length > 0) servers.push({ urls: settings.stunUrls });
  if (settings.turnUrls.length > 0 && settings.turnSecret) {
    const username = `${Math.floor(nowMs / 1000) + settings.turnTtlSec}:${session}`;
    servers.push({ urls: settings.turnUrls, username, credential: turnCredential(settings.turnSecret, username) });
  }
  return servers;
}
