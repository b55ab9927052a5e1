declare class Instrumentation {
  static map(name: string): number;
  static get(index: number): number | undefined;
}
export default Instrumentation;
