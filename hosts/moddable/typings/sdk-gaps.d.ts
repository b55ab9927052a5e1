/**
 * SDK modules that ship without typings (SDK 8.2): declared here as ambient modules, so that both this
 * project's type-check and the mcconfig build (manifest.json adds this file to `typescript.tsconfig.types`)
 * know them.
 */
declare module 'rng' {
  /** The SDK's generator (crypt): seeded from esp_random() on ESP32, unseeded rand() on Linux. */
  export default class RNG {
    static get(count: number): ArrayBuffer;
  }
}

declare module 'ota' {
  /** ESP32 OTA: writes the next OTA partition; complete() makes it the boot partition. */
  export default class OTA {
    constructor();
    write(data: ArrayBuffer): void;
    cancel(): void;
    complete(): void;
  }
}

declare module 'pins/digital' {
  export default class Digital {
    static write(pin: number, value: number): void;
    static read(pin: number): number;
  }
}

declare module 'embedded:io/socket/tcp/tls' {
  /** ECMA-419 TLS socket; the host only passes the class into `device.network` configuration. */
  export default class TLSSocket {
    constructor(options: Record<string, unknown>);
    close(): void;
  }
}
