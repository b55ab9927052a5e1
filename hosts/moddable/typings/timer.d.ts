declare class Timer {
  private constructor();
  static set(callback: (timer: Timer) => void, interval?: number, repeat?: number): Timer;
  static repeat(callback: (timer: Timer) => void, interval: number): Timer;
  static clear(timer: Timer | undefined): void;
}
export default Timer;
