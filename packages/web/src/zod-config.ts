// Zod builds a faster parser with new Function() unless told not to, and probes
// for that the first time a schema is made: under the page's Content-Security-
// Policy (no eval) the probe is a reported violation at every load. Each entry
// imports this first, before any schema of @dyad/protocol is made.
import { z } from 'zod';

z.config({ jitless: true });
