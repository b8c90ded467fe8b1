// Imported first by main.ts, for its side effect: V8's allocation-site
// pretenuring is turned off before any message is handled.
//
// Under load V8 sees most of one allocation site's objects alive at a
// scavenge (a message's schema output, say, while many messages are in
// flight) and from then on allocates that site's objects in the old
// generation. Each such object dies within a message, but there the
// scavenger cannot see that: every young object it points to (the message's
// strings and values) is kept alive and promoted until the next full
// collection. Measured on the relay (docs/BENCHMARKS.md, "The survivors
// found"): with pretenuring, each scavenge copied about 0.8 MB and paused
// 3-10 ms; without it, about 0.01 MB and 0.6-1.1 ms. The server's long-lived
// state (sessions, rooms, sockets) still reaches the old generation, after
// two scavenges instead of at birth.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-allocation-site-pretenuring');
