/** Random bytes from the ESP32's hardware RNG (esp_fill_random, through mc/ffi). */
import FFI from 'mc/ffi';

type Natives = { esp_fill_random(buffer: ArrayBuffer, length: number): void };
// Made on first use, not at module load: this module is preloaded (its body runs at link time, on the build host).
let natives: Natives | null = null;

export function randomBytes(n: number): Uint8Array {
  natives ??= new FFI() as unknown as Natives;
  const b = new ArrayBuffer(n);
  natives.esp_fill_random(b, n);
  return new Uint8Array(b);
}
