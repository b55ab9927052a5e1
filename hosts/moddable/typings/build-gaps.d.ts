/**
 * Read only by the mcconfig build (manifest.json adds it to `typescript.tsconfig.compilerOptions.types`), never by
 * `npm run typecheck`, whose npm typings declare this module properly.
 *
 * The SDK 8.2.3 declares `embedded:io/socket/tcp/tls` too, but its build maps the name to the JavaScript source
 * (examples/io/tcp/tlssocket) and its typings' own path entry is misspelt (`embedded:io/socket/tls`), so an
 * mcconfig build finds no declaration (TS7016). The shorthand form below makes the import typed `any` there;
 * the host only hands the class to `device.network`.
 */
declare module 'embedded:io/socket/tcp/tls';
