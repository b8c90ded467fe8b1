// Random identifiers: session ids, tokens, room codes, socket ids. Taken from
// a pooled buffer of CSPRNG output (as crypto.randomUUID does): one
// randomFillSync per few hundred ids instead of one per id, on the path every
// arrival and pairing takes.
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4_096;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/** `bytes` fresh random bytes, base64url-encoded. Bytes are never handed out twice. */
export function randomId(bytes: number): string {
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const id = pool.toString('base64url', used, used + bytes);
  used += bytes;
  return id;
}

/** A session id: 72 bits, unique, not secret (the token is). */
export const newSessionId = (): string => randomId(9);
/** A room code: 144 bits, unguessable. */
export const newRoomCode = (): string => randomId(18);
/** A session token: 192 bits. */
export const newToken = (): string => randomId(24);
/** A socket's id within its process. */
export const newConnId = (): string => randomId(12);
