/**
 * The virtual module scripts/xs-heap.mjs builds into the memory gate's bundle: the vector set's RSA-2048 keys
 * in the flow roles of test/portable/flow-world.ts (server signer-1, device recipient-1), as PEM text.
 */
declare module 'srup-heap:keys' {
  const pems: { readonly server: string; readonly device: string };
  export default pems;
}
