export { RedisStore, StoreUnavailableError, checkPrefix, type RedisStoreOptions } from './store.js';
