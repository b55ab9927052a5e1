/**
 * What the sensor example needs from its board, behind one module name: `board` is board-esp32.ts on esp32 (a
 * TMP102 on I²C, an LED on a GPIO) and board-sim.ts in the simulator (a simulated sensor with the same interface).
 */

/** A temperature sensor in the shape of ECMA-419's sensor classes: options in, sample(), close(). */
export interface TemperatureSensor {
  /** One reading, in °C; undefined when the sensor has none. */
  sample(): { temperature: number } | undefined;
  close(): void;
}

export declare function openSensor(): TemperatureSensor;
/** Sets the board's status LED (true: on). */
export declare function setLed(on: boolean): void;
