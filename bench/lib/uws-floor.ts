// Where the optional uWebSockets.js floor (peers/arrival-floor-uws.ts) finds
// its native build: installed by `npm run bench:uws-floor` under artifacts/,
// apart from the repo's node_modules, so that its dependencies (bufferutil,
// which `ws` would pick up) never change what the product's rows measure.
import path from 'node:path';
import { REPO_ROOT } from './procs.js';

/** The native build for this platform and Node ABI, of the package and version package.json's bench:uws-floor names. */
export const UWS_BINARY = path.join(
  REPO_ROOT,
  'artifacts/uws-floor/node_modules/@trufflesuite/uws-js-unofficial/binaries',
  `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
);
