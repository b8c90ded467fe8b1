// The names the Lua and the store share: the settings every call carries, in
// their order, and every key the store writes.

/** Order of the settings in ARGV[3]. */
export const CFG_NAMES = [
  'grace',
  'interest',
  'regttl',
  'cooldown',
  'buffer',
  'fair',
  'banthr',
  'repwin',
  'bandur',
  'ttl',
  'idxttl',
  'inboxmax',
  'inboxttl',
  'scan',
  'sample',
  'regslack',
  'minroom',
  'banmax',
  'strikewin',
  'keptroom',
  'keptall',
  'keptres',
  'keptresall',
  'sessmax',
  'keptitem',
  'block',
  'replog',
  'nextmax',
  'regmax',
  'abmax',
  'pendmax',
  'stmax',
] as const;

/**
 * Every key of the store's state, after the prefix with its hash tag (`KEYS[1]`
 * in the scripts, RedisStore's `base`): one name each, so that the scripts,
 * the store and its tests spell them alike. docs/SCALING.md, "Key layout",
 * says what each holds and how long (test/unit/redis-keys.test.ts holds it
 * to that). A name ending in `:` is followed by an id, an address hash, a
 * room code or a process id.
 */
export const KEY = {
  /** A session (hash). */
  session: 's:',
  /** The session a token opens. */
  token: 't:',
  /** Chat kept for an absent member. */
  keptChat: 'kc:',
  /** Sessions never to be paired with a session again. */
  blocked: 'bl:',
  /** A session's last partner. */
  lastPartner: 'lp:',
  /** A session's recent partners. */
  cooldown: 'cd:',
  /** A room (hash). */
  room: 'r:',
  /** Signals kept for a member of a room. */
  roomKept: 'rk:',
  /** Bytes kept for absent members in all. */
  keptBytes: 'kept',
  /** Sessions of a client address. */
  address: 'addr:',
  /** Reports of an address. */
  reports: 'rep:',
  /** Reported addresses. */
  reported: 'reps',
  /** Reports of an address kept for the operator. */
  reportLog: 'rlog:',
  /** Addresses with reports kept for the operator. */
  reportLogs: 'rlogx',
  /** When reports of an address last ended in a ban. */
  reportBanned: 'rlb:',
  /** End of a ban. */
  ban: 'ban:',
  /** An address's last ban. */
  strike: 'strike:',
  /** Strikes held, by when each ends (BAN_STRIKES_MAX). */
  strikesHeld: 'stz',
  /** Bans in force. */
  bans: 'bans',
  /** A block between two addresses. */
  addressBlock: 'ab:',
  /** An address that has address blocks. */
  addressBlocks: 'abx:',
  /** Blocks between two addresses held, by their end (ADDRESS_BLOCKS_MAX). */
  addressBlocksHeld: 'abz',
  /** Registrations waiting for their matching socket, by when they run out (PENDING_REGISTRATIONS_MAX). */
  pendingRegistrations: 'pend',
  /** Waiting sessions that accept anyone now. */
  open: 'open:',
  /** Waiting sessions that still narrow. */
  narrow: 'narrow:',
  /** Waiting sessions with an interest. */
  interest: 'int:',
  /** Waiting sessions with an interest that accept a partner of any lang. */
  interestAnyLang: 'ia:',
  /** Waiting sessions with a lang. */
  lang: 'lang:',
  /** Waiting sessions in a country or region. */
  place: 'place:',
  /** Waiting sessions that prefer a place. */
  wants: 'wants:',
  /** Tie-break of pool order. */
  poolSeq: 'seq',
  /** Live sessions. */
  sessions: 'sess',
  /** Live rooms. */
  rooms: 'rooms',
  /** Pairings and reports of a minute. */
  activity: 'act:',
  /** Heartbeat of a process. */
  heartbeat: 'hb:',
  /** Known processes. */
  procs: 'procs',
  /** Sessions with a matching socket on a process. */
  matchingHeld: 'pm:',
  /** Sessions with a signalling socket on a process. */
  signallingHeld: 'ps:',
  /** Messages and closes for the sockets of a process. */
  inbox: 'inbox:',
  /** A process's last call whose reply carried its own messages. */
  lastInline: 'q:',
  /** Running grace periods. */
  graces: 'graces',
  /** Processes whose heartbeat is missing. */
  suspects: 'suspects',
  /** The reaper's lock. */
  reapLock: 'lock:reap',
  /** Set when the data set is new. */
  epoch: 'epoch',
  /** WebSockets open from an address, per process. */
  socketsOpen: 'so:',
  /** Addresses with sockets open on a process. */
  socketAddresses: 'sa:',
  /** Nexts of an address in its minute. */
  nextRate: 'nx:',
  /** Registrations of an address in its minute. */
  registerRate: 'rg:',
  /** A proof of work spent. */
  proofSpent: 'pow:',
} as const;
