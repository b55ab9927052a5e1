/**
 * The sensor example on an ESP32: a TI TMP102 on I²C through the SDK's ECMA-419 driver
 * (embedded:sensor/Temperature/TMP102), and an LED on a GPIO (embedded:io/digital). Pins from the build's
 * config (mcconfig `sensorData=21 sensorClock=22 ledPin=2`, the defaults).
 */
import config from 'mc/config';
import TMP102 from 'embedded:sensor/Temperature/TMP102';
import type { TemperatureSensor } from './board.js';

const settings = config as { sensorData?: number; sensorClock?: number; ledPin?: number };

interface Digital {
  write(value: number): void;
}
interface Builtin {
  io: { I2C: unknown; Digital: { new (o: { pin: number; mode: number }): Digital; Output: number } };
}
const builtin = (): Builtin => (globalThis as unknown as { device: Builtin }).device;

export function openSensor(): TemperatureSensor {
  return new TMP102({
    sensor: { io: builtin().io.I2C, data: Number(settings.sensorData ?? 21), clock: Number(settings.sensorClock ?? 22) },
  });
}

let led: Digital | null = null;

export function setLed(on: boolean): void {
  if (led === null) {
    const { Digital } = builtin().io;
    led = new Digital({ pin: Number(settings.ledPin ?? 2), mode: Digital.Output });
  }
  led.write(on ? 1 : 0);
}
