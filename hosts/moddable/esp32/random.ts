/** Random bytes from the ESP32's hardware RNG (esp_fill_random, through mc/ffi). */
import FFI from 'mc/ffi';

const natives = new FFI() as unknown as { esp_fill_random(buffer: ArrayBuffer, length: number): void };

export function randomBytes(n: number): Uint8Array {
  const b = new ArrayBuffer(n);
  natives.esp_fill_random(b, n);
  return new Uint8Array(b);
}
