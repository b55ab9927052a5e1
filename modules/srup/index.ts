export * from './schema.js';
export * from './errors.js';
export * from './codec.js';
export * from './data.js';
export * from './bytes.js';
export * from './topics.js';
export * from './session.js';
