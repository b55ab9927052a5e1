/**
 * Forged floods: what can be refused without an RSA signature check is refused before it, on both sides (the
 * shared receive steps in modules/srup/session.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parsePrivateKeyPem } from '../crypto/keys.js';
import type { Crypto } from '../crypto/types.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { utf8 } from '../modules/srup/bytes.js';
import { encode } from '../modules/srup/codec.js';
import { admitMessage, sealMessage, type ReceiveRules } from '../modules/srup/session.js';

const keys = path.join(__dirname, 'data', 'srup-vectors', 'keys');
const signer = parsePrivateKeyPem(fs.readFileSync(path.join(keys, 'signer-1.private.pem'), 'utf8'));
const other = parsePrivateKeyPem(fs.readFileSync(path.join(keys, 'signer-2.private.pem'), 'utf8'));
const SERVER = 0x5e4e3n;
const DEVICE = 0xd1n;

function countingCrypto(): Crypto & { verifies: number } {
  const c = { ...nodeCrypto, verifies: 0 } as Crypto & { verifies: number };
  c.verify = (k, m, s) => {
    c.verifies++;
    return nodeCrypto.verify(k, m, s);
  };
  return c;
}

function rules(crypto: Crypto, last: bigint): ReceiveRules<true> & { accepted: bigint[] } {
  const accepted: bigint[] = [];
  return {
    accepted,
    self: DEVICE,
    crypto,
    peer: (sender) => (sender === SERVER ? true : null),
    keyOf: () => signer.publicKey,
    permission: () => null,
    lastAccepted: () => (accepted.length ? accepted[accepted.length - 1] : last),
    setLastAccepted: (_s, seq) => accepted.push(seq),
  };
}

function action(seq: bigint, key = signer, sender = SERVER): Uint8Array {
  return sealMessage(nodeCrypto, key, { type: 'action', sequenceId: seq, senderId: sender, token: utf8('t'), fields: { actionId: 1 } });
}

describe('refused before RSA', () => {
  test('a forgery that reuses a seen sequence ID is refused as a replay without a signature check', () => {
    const crypto = countingCrypto();
    const r = rules(crypto, 100n);
    for (const seq of [1n, 50n, 100n]) {
      const a = admitMessage(r, action(seq, other));
      expect(a).toMatchObject({ ok: false, reason: 'replay', detail: { last: '100' } });
    }
    expect(crypto.verifies).toBe(0);
    expect(r.accepted).toEqual([]);
  });

  test('unknown senders and malformed bytes cost no signature check; a fresh forgery costs one and changes nothing', () => {
    const crypto = countingCrypto();
    const r = rules(crypto, 100n);
    expect(admitMessage(r, action(101n, other, 0x99n))).toMatchObject({ ok: false, reason: 'unknown_sender' });
    expect(admitMessage(r, new Uint8Array([5, 0x0f, 1]))).toMatchObject({ ok: false, reason: 'truncated' });
    expect(crypto.verifies).toBe(0);
    expect(admitMessage(r, action(101n, other))).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(crypto.verifies).toBe(1);
    expect(admitMessage(r, action(101n))).toMatchObject({ ok: true });
    expect(r.accepted).toEqual([101n]);
    expect(encode).toBeDefined();
  });
});
