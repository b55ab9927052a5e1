/**
 * Project Wycheproof vectors for the primitives SRUP uses, run against both Crypto implementations:
 *   rsa_signature_2048_sha256_test.json  RSASSA-PKCS1-v1_5 / SHA-256 verification (message signatures)
 *   rsa_pkcs1_2048_test.json             RSAES-PKCS1-v1_5 decryption (the envelope's wrapped key)
 *   aes_cbc_pkcs5_test.json              AES-CBC with PKCS#7 padding, all key sizes (the envelope's body)
 * ed25519_test.json is not run: SRUP signs with RSA only, and neither implementation offers Ed25519.
 *
 * The files are read from ../shared/wycheproof/ beside the project and are never copied into it; where that
 * folder is absent the suite is skipped with a one-line notice.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePrivateKeyDer, parsePrivateKeyPem, parsePublicKeyDer, parsePublicKeyPem, pureCrypto, rsaPublicKey } from '../crypto/index.js';
import type { Crypto } from '../crypto/index.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { moddableCrypto } from '../hosts/moddable/crypto.js';

const ROOT = path.resolve(__dirname, '..');
const DIR = path.resolve(ROOT, '..', 'shared', 'wycheproof');
const FILES = ['rsa_signature_2048_sha256_test.json', 'rsa_pkcs1_2048_test.json', 'aes_cbc_pkcs5_test.json'];
const missing = FILES.filter((f) => !fs.existsSync(path.join(DIR, f)));
const available = missing.length === 0;
if (!available) {
  const why = fs.existsSync(DIR)
    ? `${DIR} lacks ${missing.join(', ')}`
    : `${DIR} not found (the vectors are kept beside the project, not in it)`;
  process.stdout.write(`Wycheproof tests skipped: ${why}\n`);
}

const IMPLS: [string, Crypto][] = [
  ['pure', pureCrypto],
  ['node', nodeCrypto],
  // The device's: SHA-256 and AES from the SDK's `crypt` (here a stand-in over node:crypto), padding ours.
  ['moddable', moddableCrypto],
];

const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface Case {
  tcId: number;
  comment: string;
  flags: string[];
  result: 'valid' | 'invalid' | 'acceptable';
  [field: string]: unknown;
}
interface Group {
  tests: Case[];
  [field: string]: unknown;
}
function load(file: string): Group[] {
  return (JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as { testGroups: Group[] }).testGroups;
}

interface Tally {
  valid: number;
  invalid: number;
  acceptableAccepted: number;
  acceptableRejected: number;
}

/** Runs every case; `outcome` says whether the implementation accepted it. Returns the failures and a tally. */
function run(groups: Group[], outcome: (g: Group, t: Case) => boolean): { failures: string[]; tally: Tally } {
  const failures: string[] = [];
  const tally: Tally = { valid: 0, invalid: 0, acceptableAccepted: 0, acceptableRejected: 0 };
  for (const g of groups) {
    for (const t of g.tests) {
      const accepted = outcome(g, t);
      if (t.result === 'acceptable') {
        if (accepted) tally.acceptableAccepted++;
        else tally.acceptableRejected++;
      } else if (accepted !== (t.result === 'valid')) {
        failures.push(`tcId ${t.tcId} (${t.result}, ${t.comment}, ${t.flags.join(',')})`);
      } else {
        tally[t.result]++;
      }
    }
  }
  return { failures, tally };
}

const d = available ? describe : describe.skip;

d('Wycheproof', () => {
  describe('rsa_signature_2048_sha256_test.json (RSASSA-PKCS1-v1_5 verify)', () => {
    const groups = available ? load(FILES[0]) : [];

    test('the key encodings given (DER, PEM, numbers) all parse to the same key', () => {
      for (const g of groups) {
        const nums = g.publicKey as { modulus: string; publicExponent: string };
        const fromNumbers = rsaPublicKey(BigInt('0x' + nums.modulus), BigInt('0x' + nums.publicExponent));
        expect(parsePublicKeyDer(unhex(g.publicKeyDer as string))).toEqual(fromNumbers);
        expect(parsePublicKeyPem(g.publicKeyPem as string)).toEqual(fromNumbers);
      }
    });

    test.each(IMPLS)('%s: every case gives its documented result', (_name, c) => {
      const { failures, tally } = run(groups, (g, t) =>
        c.verify(parsePublicKeyDer(unhex(g.publicKeyDer as string)), unhex(t.msg as string), unhex(t.sig as string)),
      );
      expect(failures).toEqual([]);
      // 259 cases: 9 valid, 249 invalid, 1 acceptable (tcId 8, DigestInfo without the NULL parameters).
      expect(tally).toEqual({ valid: 9, invalid: 249, acceptableAccepted: 0, acceptableRejected: 1 });
    });
  });

  describe('rsa_pkcs1_2048_test.json (RSAES-PKCS1-v1_5 decrypt)', () => {
    const groups = available ? load(FILES[1]) : [];

    test('the private key encodings given (PKCS#8 DER, PEM, numbers) all parse to the same key', () => {
      for (const g of groups) {
        const k = parsePrivateKeyDer(unhex(g.privateKeyPkcs8 as string));
        expect(parsePrivateKeyPem(g.privateKeyPem as string)).toEqual(k);
        const nums = g.privateKey as Record<string, string>;
        expect(k.n).toBe(BigInt('0x' + nums.modulus));
        expect(k.d).toBe(BigInt('0x' + nums.privateExponent));
        expect(k.qi).toBe(BigInt('0x' + nums.coefficient));
      }
    });

    test.each(IMPLS)('%s: every case gives its documented result', (_name, c) => {
      const { failures, tally } = run(groups, (g, t) => {
        const key = parsePrivateKeyDer(unhex(g.privateKeyPkcs8 as string));
        const out = c.rsaDecrypt(key, unhex(t.ct as string));
        return out !== null && hex(out) === t.msg;
      });
      expect(failures).toEqual([]);
      expect(tally).toEqual({ valid: 42, invalid: 25, acceptableAccepted: 0, acceptableRejected: 0 });
    });
  });

  describe('aes_cbc_pkcs5_test.json (AES-CBC / PKCS#7, 128, 192 and 256-bit keys)', () => {
    const groups = available ? load(FILES[2]) : [];

    test('the file covers all three key sizes', () => {
      expect(groups.map((g) => g.keySize).sort()).toEqual([128, 192, 256]);
    });

    test.each(IMPLS)('%s: every case decrypts as documented, and valid ones encrypt to the given ciphertext', (_name, c) => {
      const { failures, tally } = run(groups, (_g, t) => {
        const key = unhex(t.key as string);
        const iv = unhex(t.iv as string);
        const out = c.aesCbcDecrypt(key, iv, unhex(t.ct as string));
        const accepted = out !== null && hex(out) === t.msg;
        if (t.result === 'valid') expect([t.tcId, hex(c.aesCbcEncrypt(key, iv, unhex(t.msg as string)))]).toEqual([t.tcId, t.ct]);
        return accepted;
      });
      expect(failures).toEqual([]);
      expect(tally).toEqual({ valid: 72, invalid: 144, acceptableAccepted: 0, acceptableRejected: 0 });
    });
  });
});
