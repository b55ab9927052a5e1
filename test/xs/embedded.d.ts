/**
 * The virtual module scripts/xs-test.mjs builds into the XS bundle (xsnap has no file system): the SRUP
 * vector set as data, .bin files in base64.
 */
declare module 'srup-vectors:embedded' {
  const embedded: {
    /** index.json */
    readonly index: unknown;
    /** Sidecar JSON by vector id. */
    readonly sidecars: Readonly<Record<string, unknown>>;
    /** .bin contents by vector id, base64. */
    readonly bins: Readonly<Record<string, string>>;
    /** Key PEM text by path relative to the set ("keys/signer-1.public.pem"). */
    readonly pems: Readonly<Record<string, string>>;
  };
  export default embedded;
}
