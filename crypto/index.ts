/** The crypto layer's public API. */
export { CryptoError } from './types.js';
export type { Crypto, CryptoErrorReason, RandomBytes, RsaPrivateKey, RsaPublicKey, Sha256Stream } from './types.js';
export { pureCrypto } from './pure.js';
export { sealEnvelope, openEnvelope } from './envelope.js';
export {
  parsePublicKeyPem,
  parsePublicKeyDer,
  parsePkcs1PublicKeyDer,
  parsePrivateKeyPem,
  parsePrivateKeyDer,
  parsePkcs1PrivateKeyDer,
  publicKeyToDer,
  publicKeyToPem,
  pkcs1PublicKeyToDer,
  privateKeyToDer,
  privateKeyToPem,
  pkcs1PrivateKeyToDer,
  rsaPublicKey,
  rsaPrivateKey,
  pemDecode,
  pemEncode,
  MIN_RSA_BITS,
  MAX_RSA_BITS,
} from './keys.js';
export { base64Encode, base64Decode } from './base64.js';
export { bytesToBigInt, bigIntToBytes } from './der.js';
export { modPow, pkcs1Type2Pad, pkcs1Type2Unpad, emsaPkcs1Sha256 } from './rsa.js';
