declare class Time {
  /** Milliseconds from an arbitrary origin, monotonic. */
  static readonly ticks: number;
  /** Sets the wall clock (seconds since 1970). */
  static set(seconds: number): void;
}
export default Time;
