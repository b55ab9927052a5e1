// Benchmarks import PEM key files as text (esbuild's text loader; see scripts/bench.mjs).
declare module '*.pem' {
  const text: string;
  export default text;
}
