/**
 * SDK modules that the Moddable SDK's own `typings/` declares (8.2.3) but the npm package `@moddable/typings`
 * (5.6.0, pinned in package.json) lacks. Only `npm run typecheck` reads this file; the mcconfig build uses the
 * SDK's declarations instead, so nothing here may be added to manifest.json's typescript types (the classes
 * would be declared twice). Written to the same shapes as the SDK's files.
 */
declare module 'crypt' {
  export class Digest {
    constructor(type: 'MD5' | 'SHA1' | 'SHA224' | 'SHA256' | 'SHA384' | 'SHA512');
    write(message: string | ArrayBuffer): void;
    close(): ArrayBuffer;
    reset(): void;
    get blockSize(): number;
    get outputSize(): number;
    update(message: string | ArrayBuffer): void;
  }
}

declare module 'neopixel' {
  class NeoPixel extends HostBuffer {
    constructor(options?: { pin?: number; length?: number; order?: string });
    close(): void;
    update(): void;
    makeRGB(r: number, g: number, b: number): number;
    makeHSB(h: number, s: number, b: number): number;
    setPixel(index: number, color: number): void;
    fill(color: number, index?: number, count?: number): void;
    getPixel(index: number): number;
    get brightness(): number;
    set brightness(value: number);
    get length(): number;
  }
  export default NeoPixel;
}

declare module 'mc/ffi' {
  /** mcconfig generates exact signatures from manifest.json's `ffi.functions`; this is the SDK's fallback. */
  interface FFI {
    [name: string]: (...args: any[]) => any;
  }
  const FFI: { new (): FFI };
  export default FFI;
}

declare module 'embedded:network/interface/wifi' {
  export type WiFiChangedProperty = 'connection' | 'address';
  export interface WiFiConstructorOptions {
    onChanged?: (property: WiFiChangedProperty) => void;
  }
  export interface WiFiConnectOptions {
    SSID: string;
    password?: string;
  }
  class WiFi {
    constructor(options: WiFiConstructorOptions);
    close(): void;
    connect(options: WiFiConnectOptions): void;
    disconnect(): void;
    /** Below 500 while not up (400 and over: associated; 200 and under: disconnected); 500 and over: has an address. */
    readonly connection: number;
    readonly address: string | undefined;
    readonly SSID: string | undefined;
  }
  export default WiFi;
}
