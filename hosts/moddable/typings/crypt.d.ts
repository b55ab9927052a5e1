export class Digest {
  constructor(algorithm: 'SHA1' | 'SHA224' | 'SHA256' | 'SHA384' | 'SHA512' | 'MD5');
  write(data: ArrayBuffer | string): void;
  close(): ArrayBuffer;
  reset(): void;
}
