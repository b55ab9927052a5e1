/**
 * A stand-in for the Moddable SDK's `crypt` module (Digest, BlockCipher, Mode) over node:crypto, with the SDK's
 * calling conventions: ArrayBuffers in and out, CBC over whole blocks. It refuses the SDK's own CBC padding
 * (fourth Mode argument true) and partial blocks: the device code must never rely on either (the SDK's
 * padding does not check pad bytes on decrypt, and its padded encrypt writes past its allocation).
 */
import { createCipheriv, createDecipheriv, createHash, type Hash } from 'node:crypto';

function bytes(b: ArrayBuffer | ArrayBufferView): Buffer {
  if (!(b instanceof ArrayBuffer)) throw new TypeError('crypt (stand-in): the SDK natives take ArrayBuffers');
  return Buffer.from(new Uint8Array(b));
}

function out(b: Buffer): ArrayBuffer {
  return new Uint8Array(b).buffer;
}

export class Digest {
  private h: Hash;
  constructor(type: string) {
    if (type !== 'SHA256') throw new Error(`crypt (stand-in): digest ${type} not provided`);
    this.h = createHash('sha256');
  }
  write(data: ArrayBuffer): void {
    this.h.update(bytes(data));
  }
  close(): ArrayBuffer {
    return out(this.h.digest());
  }
  reset(): void {
    this.h = createHash('sha256');
  }
}

export class BlockCipher {
  readonly key: Buffer;
  constructor(cipher: string, key: ArrayBuffer) {
    if (cipher !== 'AES') throw new Error('crypt (stand-in): only AES');
    this.key = bytes(key);
    if (![16, 24, 32].includes(this.key.length)) throw new Error('bad key size');
  }
}

export class Mode {
  private readonly algorithm: string;
  private readonly key: Buffer;
  private readonly iv: Buffer;
  constructor(mode: string, cipher: BlockCipher, iv: ArrayBuffer, pad?: boolean) {
    if (mode !== 'CBC') throw new Error('crypt (stand-in): only CBC');
    if (pad === true) throw new Error('crypt (stand-in): the SDK\'s CBC padding must not be used');
    this.key = cipher.key;
    this.iv = bytes(iv);
    this.algorithm = `aes-${this.key.length * 8}-cbc`;
  }
  private run(encrypt: boolean, data: ArrayBuffer): ArrayBuffer {
    const input = bytes(data);
    if (input.length % 16 !== 0) throw new Error('crypt (stand-in): CBC without padding takes whole blocks');
    const c = encrypt ? createCipheriv(this.algorithm, this.key, this.iv) : createDecipheriv(this.algorithm, this.key, this.iv);
    c.setAutoPadding(false);
    return out(Buffer.concat([c.update(input), c.final()]));
  }
  encrypt(data: ArrayBuffer): ArrayBuffer {
    return this.run(true, data);
  }
  decrypt(data: ArrayBuffer): ArrayBuffer {
    return this.run(false, data);
  }
}

export default Object.freeze({ Digest, BlockCipher, Mode });
