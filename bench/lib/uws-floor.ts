// Where the optional uWebSockets.js floor (peers/arrival-floor-uws.ts) finds
// its native build: installed by `npm run bench:uws-floor` under artifacts/,
// apart from the repo's node_modules, so that its dependencies (bufferutil,
// which `ws` would pick up) never change what the product's rows measure.
import path from 'node:path';
import { REPO_ROOT } from './procs.js';

/** The npm package and version `npm run bench:uws-floor` installs (package.json says the same). */
export const UWS_PACKAGE = '@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0';

/** The native build for this platform and Node ABI. */
export const UWS_BINARY = path.join(
  REPO_ROOT,
  'artifacts/uws-floor/node_modules/@trufflesuite/uws-js-unofficial/binaries',
  `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
);
