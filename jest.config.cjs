/** Jest runs the TypeScript sources directly through SWC (ES modules → CommonJS for the test VM). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.(t|j|mj)s$': ['@swc/jest', {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
      module: { type: 'commonjs' },
    }],
  },
  // The noble packages ship ES modules only: let SWC turn them into CommonJS too.
  transformIgnorePatterns: ['/node_modules/(?!(@noble)/)'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // The Moddable SDK's native crypto, for the device's Crypto (hosts/moddable/crypto.ts) under test.
    '^crypt$': '<rootDir>/test/support/moddable/crypt.ts',
  },
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  testTimeout: 60000,
};
