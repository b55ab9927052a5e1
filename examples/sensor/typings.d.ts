/** SDK modules this example uses that no typings declare. */
declare module 'embedded:sensor/Temperature/TMP102' {
  /** The SDK's ECMA-419 driver for the TI TMP102 (modules/drivers/sensors/tmp102). */
  export default class TMP102 {
    constructor(options: { sensor: Record<string, unknown> });
    configure(options: Record<string, unknown>): void;
    sample(): { temperature: number } | undefined;
    close(): void;
  }
}
