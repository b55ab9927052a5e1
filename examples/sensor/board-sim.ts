/**
 * The sensor example in the simulator: a simulated temperature sensor behind the ECMA-419 sensor interface (the
 * same shape as the SDK's TMP102 class the ESP32 board uses), and the LED of the simulator's mock-up when it has
 * one (`-p sim/<device>` builds), else a trace line.
 */
import Time from 'time';
import type { TemperatureSensor } from './board.js';

/** A temperature that drifts slowly around 21 °C (a sine over ten minutes), to two decimals. */
export class SimulatedTemperature implements TemperatureSensor {
  #start: number;
  #open = true;

  constructor(_options: Record<string, unknown> = {}) {
    this.#start = Time.ticks;
  }

  configure(_options: Record<string, unknown>): void {}

  sample(): { temperature: number } | undefined {
    if (!this.#open) return undefined;
    const t = (Time.ticks - this.#start) / 600_000;
    return { temperature: Math.round((21 + 2 * Math.sin(2 * Math.PI * t)) * 100) / 100 };
  }

  close(): void {
    this.#open = false;
  }
}

export function openSensor(): TemperatureSensor {
  return new SimulatedTemperature({});
}

interface HostLed {
  write(value: number): void;
}

let led: HostLed | null | undefined;

export function setLed(on: boolean): void {
  if (led === undefined) {
    const Led = (globalThis as unknown as { Host?: { LED?: { Default?: new () => HostLed } } }).Host?.LED?.Default;
    led = Led ? new Led() : null;
  }
  if (led !== null) led.write(on ? 1 : 0);
  else trace(`srup-sensor: led ${on ? 'on' : 'off'}\n`);
}
