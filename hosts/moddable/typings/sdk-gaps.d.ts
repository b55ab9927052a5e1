/**
 * SDK modules the firmware imports that no typings declare: neither the SDK's own `typings/` (8.2.3) nor the
 * npm package `@moddable/typings`. Used by both type checks: `npm run typecheck` (hosts/moddable/tsconfig.json)
 * and the mcconfig build (manifest.json adds this file to `typescript.tsconfig.compilerOptions.types`).
 *
 * Only names nobody else declares belong here: a second declaration of a class that a typings file already
 * has fails the build (TS2300 Duplicate identifier). `crypt` is declared by the SDK with `Digest` only; the
 * block below adds the two classes it lacks (ambient module declarations merge).
 */
declare module 'rng' {
  /** The SDK's generator (modules/crypt/etc/rng): seeded from esp_random() on ESP32, unseeded rand() on Linux. */
  export default class RNG {
    static get(count: number): ArrayBuffer;
  }
}

declare module 'ota' {
  /** ESP32 OTA (build/devices/esp32/modules/ota): writes the next OTA partition; complete() makes it the boot partition. */
  export default class OTA {
    constructor();
    /** Any buffer or view (the native code reads it with xsmcGetBufferReadable) before it returns. */
    write(data: ArrayBuffer | ArrayBufferView): void;
    cancel(): void;
    complete(): void;
  }
}

declare module 'crypt' {
  /** A block cipher with its key: 'AES' takes 16, 24 or 32 bytes. */
  export class BlockCipher {
    constructor(cipher: 'AES' | 'DES' | 'TDES', key: ArrayBuffer);
    get keySize(): number;
    get blockSize(): number;
  }
  /** A mode over a block cipher. The fourth argument turns on the SDK's own padding: never used here. */
  export class Mode {
    constructor(mode: 'ECB' | 'CBC' | 'CTR', cipher: BlockCipher, iv?: ArrayBuffer, padding?: boolean);
    encrypt(data: ArrayBuffer, result?: ArrayBuffer): ArrayBuffer;
    decrypt(data: ArrayBuffer, result?: ArrayBuffer): ArrayBuffer;
  }
}

