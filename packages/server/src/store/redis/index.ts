export { RedisStore, checkPrefix, type RedisStoreOptions } from './store.js';
export { StoreUnavailableError } from './calls.js';
