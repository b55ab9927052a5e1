/**
 * The message-path rates: decode, encode, verify, sign and envelope-open for a 314-byte message (an activate
 * with a 36-character UUID token and an RSA-2048 signature: 22 + 36 + 256 bytes) and the 2048-bit test keys.
 * Shared by the Node section (codec.bench.ts) and the XS section (codec.xs.bench.ts).
 */
import signerPrivatePem from '../test/data/srup-vectors/keys/signer-1.private.pem';
import signerPublicPem from '../test/data/srup-vectors/keys/signer-1.public.pem';
import recipientPrivatePem from '../test/data/srup-vectors/keys/recipient-1.private.pem';
import recipientPublicPem from '../test/data/srup-vectors/keys/recipient-1.public.pem';
import { openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import type { Crypto } from '../crypto/types.js';
import { equal, utf8 } from '../modules/srup/bytes.js';
import { decode, encode } from '../modules/srup/codec.js';
import type { UnsignedOf } from '../modules/srup/schema.js';
import { sign, verify } from '../modules/srup/session.js';
import { progress, rate, type RateTarget } from './lib.js';

export const SECTION = 'codec';
export const MESSAGE_LENGTH = 314;

/** Deterministic bytes for building the envelope fixture (never for real keys). */
function fixtureRandom(seed: number): (n: number) => Uint8Array {
  let x = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
    }
    return out;
  };
}

export interface CryptoSetup {
  /** e.g. "Node nodeCrypto". */
  label: string;
  crypto: Crypto;
  targets?: { verify?: RateTarget; sign?: RateTarget; open?: RateTarget };
}

export interface CodecBenchOptions {
  /** e.g. "Node" or "XS". */
  runtime: string;
  /** Crypto used to build the fixture. */
  fixtureCrypto: Crypto;
  setups: CryptoSetup[];
  targets?: { decode?: RateTarget; encode?: RateTarget };
}

export function runCodecBench(o: CodecBenchOptions): void {
  progress(`${SECTION}: parsing the 2048-bit test keys and building the fixtures on ${o.runtime}`);
  const signer = parsePrivateKeyPem(signerPrivatePem);
  const signerPublic = parsePublicKeyPem(signerPublicPem);
  const recipient = parsePrivateKeyPem(recipientPrivatePem);
  const recipientPublic = parsePublicKeyPem(recipientPublicPem);

  const unsigned: UnsignedOf<'activate'> = {
    type: 'activate',
    sequenceId: 1n,
    senderId: 0x4a0f5c3e2b1d4e6fn,
    token: utf8('6c96670e-4204-4bc0-bd64-b4c576c09876'),
    fields: {},
  };
  const message = sign(o.fixtureCrypto, signer, unsigned);
  const bytes = encode(message);
  if (bytes.length !== MESSAGE_LENGTH) throw new Error(`fixture is ${bytes.length} bytes, not ${MESSAGE_LENGTH}`);
  const plaintext = utf8('636dd7ad8c004d09b2c391d0cc3aa2b0');
  const envelope = sealEnvelope(o.fixtureCrypto, recipientPublic, plaintext, fixtureRandom(0x5eed));

  rate(SECTION, `decode ${MESSAGE_LENGTH} B · ${o.runtime}`, () => decode(bytes), o.targets?.decode);
  const decoded = decode(bytes);
  rate(SECTION, `encode ${MESSAGE_LENGTH} B · ${o.runtime}`, () => encode(decoded), o.targets?.encode);

  for (const s of o.setups) {
    // Check each operation once before timing it, so that a fast wrong answer cannot pass for a result.
    if (!verify(s.crypto, signerPublic, decoded)) throw new Error(`${s.label}: the fixture does not verify`);
    if (!equal(sign(s.crypto, signer, unsigned).signature, message.signature)) throw new Error(`${s.label}: signatures differ`);
    if (!equal(openEnvelope(s.crypto, recipient, envelope), plaintext)) throw new Error(`${s.label}: the envelope does not open`);

    rate(SECTION, `verify · ${s.label}`, () => verify(s.crypto, signerPublic, decoded), s.targets?.verify);
    rate(SECTION, `sign · ${s.label}`, () => sign(s.crypto, signer, unsigned), s.targets?.sign);
    rate(SECTION, `envelope open (${envelope.length} B) · ${s.label}`, () => openEnvelope(s.crypto, recipient, envelope), s.targets?.open);
  }
}
