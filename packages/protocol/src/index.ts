export * from './fields.js';
export * from './messages.js';
export * from './parse.js';
export * from './legacy.js';
export * from './admin.js';
