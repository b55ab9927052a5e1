/**
 * The crypto layer: key parsing and serialisation, RSA PKCS#1 v1.5 signatures and encryption, AES-CBC and the
 * SRUP envelope, each checked against the project's SRUP vectors and across the two implementations.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as nodeCryptoModule from 'node:crypto';
import fc from 'fast-check';
import { cbc } from '@noble/ciphers/aes.js';
import {
  CryptoError,
  base64Decode,
  base64Encode,
  bigIntToBytes,
  bytesToBigInt,
  modPow,
  openEnvelope,
  parsePkcs1PrivateKeyDer,
  parsePkcs1PublicKeyDer,
  parsePrivateKeyDer,
  parsePrivateKeyPem,
  parsePublicKeyDer,
  parsePublicKeyPem,
  pkcs1PrivateKeyToDer,
  pkcs1PublicKeyToDer,
  privateKeyToDer,
  privateKeyToPem,
  publicKeyToDer,
  publicKeyToPem,
  pureCrypto,
  sealEnvelope,
} from '../crypto/index.js';
import type { Crypto, CryptoErrorReason, RandomBytes, RsaPrivateKey, RsaPublicKey } from '../crypto/index.js';
import { DerReader, derElement, derInteger, derOid, derSequence } from '../crypto/der.js';
import { generateRsaKeyPair, nodeCrypto, randomBytes } from '../hosts/node/crypto.js';
// A deterministic RandomBytes (xorshift), so that runs and implementations can be compared byte for byte.
import { seededRandom } from './support/fakes.js';

const ROOT = path.resolve(__dirname, '..');
const VECTORS = path.join(ROOT, 'test', 'data', 'srup-vectors');
const IMPLS: [string, Crypto][] = [
  ['pure', pureCrypto],
  ['node', nodeCrypto],
];

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const readKey = (name: string): string => fs.readFileSync(path.join(VECTORS, 'keys', name), 'utf8');

const signer1Pem = readKey('signer-1.private.pem');
const signer1PubPem = readKey('signer-1.public.pem');
const signer1 = parsePrivateKeyPem(signer1Pem);
const signer1Pub = parsePublicKeyPem(signer1PubPem);
const signer2Pub = parsePublicKeyPem(readKey('signer-2.public.pem'));
const recipient1 = parsePrivateKeyPem(readKey('recipient-1.private.pem'));
const recipient1Pub = parsePublicKeyPem(readKey('recipient-1.public.pem'));

/** Runs f and returns the CryptoError reason it threw; fails the test on success or another exception type. */
function reasonOf(f: () => unknown): CryptoErrorReason {
  try {
    f();
  } catch (e) {
    if (e instanceof CryptoError) return e.reason;
    throw new Error(`expected a CryptoError, got ${String(e)}`);
  }
  throw new Error('expected a CryptoError, but nothing was thrown');
}

function nodeKeyPem(type: 'ec' | 'ed25519' | 'rsa-pss' | 'rsa', opts: object): { pub: string; priv: string } {
  const pair = nodeCryptoModule.generateKeyPairSync(type as 'ec', {
    ...opts,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  } as never) as unknown as { publicKey: string; privateKey: string };
  return { pub: pair.publicKey, priv: pair.privateKey };
}

// Keys of other sizes, generated once for the whole file.
const extraKeys: RsaPrivateKey[] = [1024, 3072].map((bits) => generateRsaKeyPair(bits).privateKey);
const allKeys: RsaPrivateKey[] = [signer1, recipient1, ...extraKeys];

describe('base64', () => {
  const rfc4648: [string, string][] = [
    ['', ''],
    ['f', 'Zg=='],
    ['fo', 'Zm8='],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg=='],
    ['fooba', 'Zm9vYmE='],
    ['foobar', 'Zm9vYmFy'],
  ];
  test.each(rfc4648)('RFC 4648 vector %j <-> %j', (text, b64) => {
    expect(base64Encode(ascii(text))).toBe(b64);
    expect(base64Decode(b64)).toEqual(ascii(text));
  });

  test('round-trips arbitrary bytes and agrees with Buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const b64 = base64Encode(bytes);
        expect(b64).toBe(Buffer.from(bytes).toString('base64'));
        expect(base64Decode(b64)).toEqual(bytes);
      }),
    );
  });

  test('wraps lines at the requested length', () => {
    expect(base64Encode(ascii('foobarfoobar'), 4)).toBe('Zm9v\nYmFy\nZm9v\nYmFy');
  });

  test.each(['Zg=', 'Zh==', 'Zm9=', 'Z===', '====', 'Zm9v\n', 'Zm=v', 'Zm9v====', 'Zm9v YmFy', 'Zm9-', 'Zm9\u00e9'])(
    'rejects non-canonical base64 %j',
    (text) => {
      expect(base64Decode(text)).toBeNull();
    },
  );
});

describe('DER', () => {
  test('reads what it writes', () => {
    const der = derSequence(derInteger(0n), derInteger(-129n), derInteger(255n), derOid('1.2.840.113549.1.1.1'));
    expect(hex(der)).toBe('3016020100' + '0202ff7f' + '020200ff' + '06092a864886f70d010101');
    const r = new DerReader(der).sequence();
    expect(r.integer()).toBe(0n);
    expect(r.integer()).toBe(-129n);
    expect(r.integer()).toBe(255n);
    expect(r.oid()).toBe('1.2.840.113549.1.1.1');
    r.finish('test');
  });

  test('long-form lengths are written minimally', () => {
    expect(hex(derElement(0x04, new Uint8Array(127))).slice(0, 4)).toBe('047f');
    expect(hex(derElement(0x04, new Uint8Array(128))).slice(0, 6)).toBe('048180');
    expect(hex(derElement(0x04, new Uint8Array(256))).slice(0, 8)).toBe('04820100');
  });

  test('integers round-trip', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 300n), max: 1n << 300n }), (v) => {
        expect(new DerReader(derInteger(v)).integer()).toBe(v);
      }),
    );
  });

  const malformed: [string, string, (r: DerReader) => unknown][] = [
    ['non-minimal INTEGER (leading 00)', '02020001', (r) => r.integer()],
    ['non-minimal INTEGER (leading ff)', '0202ff80', (r) => r.integer()],
    ['empty INTEGER', '0200', (r) => r.integer()],
    ['non-minimal short length in long form', '0281010a', (r) => r.integer()],
    ['long length with a leading zero', '048200800000', (r) => r.octetString()],
    ['indefinite length', '30800000', (r) => r.sequence()],
    ['length past the end', '020201', (r) => r.integer()],
    ['length of length past the end', '0482', (r) => r.octetString()],
    ['five-byte length', '04850000000001', (r) => r.octetString()],
    ['missing element', '', (r) => r.integer()],
    ['wrong tag', '0400', (r) => r.integer()],
    ['high tag number', '1f0100', (r) => r.read(0x1f)],
    ['non-empty NULL', '050100', (r) => r.null()],
    ['non-minimal OID arc', '0603808001', (r) => r.oid()],
    ['truncated OID arc', '06022a86', (r) => r.oid()],
    ['BIT STRING with 8 unused bits', '03020800', (r) => r.bitString()],
    ['BIT STRING with non-zero unused bits', '030201ff', (r) => r.bitString()],
    ['empty BIT STRING', '0300', (r) => r.bitString()],
  ];
  test.each(malformed)('rejects %s', (_name, der, read) => {
    expect(reasonOf(() => read(new DerReader(unhex(der))))).toBe('bad_der');
  });

  test('rejects trailing bytes where a structure must end', () => {
    expect(reasonOf(() => new DerReader(unhex('02010000')).finish('x'))).toBe('bad_der');
  });

  test('bytes <-> bigint', () => {
    expect(bytesToBigInt(new Uint8Array(0))).toBe(0n);
    expect(bytesToBigInt(unhex('0102030405'))).toBe(0x0102030405n);
    expect(hex(bigIntToBytes(0x0102030405n, 8))).toBe('0000000102030405');
    expect(hex(bigIntToBytes(0x0102030405n, 0))).toBe('0102030405');
    expect(hex(bigIntToBytes(0n, 0))).toBe('');
    expect(() => bigIntToBytes(0x010203n, 2)).toThrow(expect.objectContaining({ name: 'CryptoError', reason: 'bad_argument' }));
    expect(() => bigIntToBytes(1n << 40n, 5)).toThrow(expect.objectContaining({ name: 'CryptoError', reason: 'bad_argument' }));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        expect(bigIntToBytes(bytesToBigInt(b), b.length || 1).subarray(b.length ? 0 : 1)).toEqual(b);
        expect(bytesToBigInt(b)).toBe(BigInt('0x0' + hex(b)));
      }),
    );
  });
});

describe('modPow', () => {
  test('agrees with square-and-multiply for odd and even moduli', () => {
    const naive = (b: bigint, e: bigint, m: bigint): bigint => {
      let r = 1n % m;
      b %= m;
      for (; e > 0n; e >>= 1n) {
        if (e & 1n) r = (r * b) % m;
        b = (b * b) % m;
      }
      return r;
    };
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1n << 700n }),
        fc.bigInt({ min: 0n, max: 1n << 700n }),
        fc.bigInt({ min: 1n, max: 1n << 600n }),
        (b, e, m) => {
          expect(modPow(b, e, m)).toBe(naive(b, e, m));
        },
      ),
      { numRuns: 200 },
    );
    expect(modPow(5n, 0n, 7n)).toBe(1n);
    expect(modPow(0n, 5n, 7n)).toBe(0n);
    expect(modPow(-2n, 3n, 7n)).toBe(6n);
  });
});

describe('RSA keys', () => {
  test('the vector keys parse into matching pairs', () => {
    expect(signer1.size).toBe(256);
    expect(signer1.e).toBe(65537n);
    expect(signer1Pub.n).toBe(signer1.n);
    expect(signer1Pub).toEqual(signer1.publicKey);
    expect(recipient1Pub).toEqual(recipient1.publicKey);
    expect(signer2Pub.n).not.toBe(signer1.n);
    expect(signer1.p * signer1.q).toBe(signer1.n);
  });

  test.each(['signer-1', 'signer-2', 'recipient-1'])('%s re-serialises to the identical PEM text', (name) => {
    const privPem = readKey(`${name}.private.pem`);
    const pubPem = readKey(`${name}.public.pem`);
    const priv = parsePrivateKeyPem(privPem);
    expect(privateKeyToPem(priv)).toBe(privPem);
    expect(publicKeyToPem(priv.publicKey)).toBe(pubPem);
    expect(publicKeyToPem(parsePublicKeyPem(pubPem))).toBe(pubPem);
  });

  test('DER round trips, and the DER is what node:crypto exports', () => {
    for (const key of allKeys) {
      const spki = publicKeyToDer(key.publicKey);
      const pkcs8 = privateKeyToDer(key);
      expect(parsePublicKeyDer(spki)).toEqual(key.publicKey);
      expect(parsePrivateKeyDer(pkcs8)).toEqual(key);
      expect(parsePkcs1PublicKeyDer(pkcs1PublicKeyToDer(key.publicKey))).toEqual(key.publicKey);
      expect(parsePkcs1PrivateKeyDer(pkcs1PrivateKeyToDer(key))).toEqual(key);
      const nodeKey = nodeCryptoModule.createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
      expect(hex(nodeKey.export({ format: 'der', type: 'pkcs8' }))).toBe(hex(pkcs8));
      expect(hex(nodeCryptoModule.createPublicKey(nodeKey).export({ format: 'der', type: 'spki' }))).toBe(hex(spki));
      expect(hex(nodeKey.export({ format: 'der', type: 'pkcs1' }))).toBe(hex(pkcs1PrivateKeyToDer(key)));
    }
  });

  test('accepts PKCS#1 PEM (BEGIN RSA PRIVATE KEY / BEGIN RSA PUBLIC KEY)', () => {
    const nodeKey = nodeCryptoModule.createPrivateKey(signer1Pem);
    const pkcs1Priv = nodeKey.export({ format: 'pem', type: 'pkcs1' }) as string;
    const pkcs1Pub = nodeCryptoModule.createPublicKey(nodeKey).export({ format: 'pem', type: 'pkcs1' }) as string;
    expect(pkcs1Priv).toContain('BEGIN RSA PRIVATE KEY');
    expect(pkcs1Pub).toContain('BEGIN RSA PUBLIC KEY');
    expect(parsePrivateKeyPem(pkcs1Priv)).toEqual(signer1);
    expect(parsePublicKeyPem(pkcs1Pub)).toEqual(signer1Pub);
  });

  test('accepts CRLF line endings and surrounding whitespace', () => {
    expect(parsePublicKeyPem('\n  ' + signer1PubPem.replace(/\n/g, '\r\n') + '\n\n')).toEqual(signer1Pub);
  });

  test('generateRsaKeyPair returns PKCS#8 and SPKI PEM that node:crypto reads back', () => {
    const pair = generateRsaKeyPair(1024);
    expect(pair.privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(pair.publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(pair.privateKey.size).toBe(128);
    expect(pair.publicKey).toEqual(pair.privateKey.publicKey);
    const exported = nodeCryptoModule.createPrivateKey(pair.privatePem).export({ format: 'pem', type: 'pkcs8' });
    expect(exported).toBe(pair.privatePem);
    expect(parsePublicKeyPem(pair.publicPem)).toEqual(pair.publicKey);
  });

  describe('rejects', () => {
    const spki = publicKeyToDer(signer1Pub);
    const pkcs8 = privateKeyToDer(signer1);
    const pem = (label: string, der: Uint8Array): string =>
      `-----BEGIN ${label}-----\n${base64Encode(der, 64)}\n-----END ${label}-----\n`;

    test('text that is not PEM, or PEM with the wrong label, with bad_pem', () => {
      expect(reasonOf(() => parsePublicKeyPem(''))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem('hello'))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(signer1Pem))).toBe('bad_pem');
      expect(reasonOf(() => parsePrivateKeyPem(signer1PubPem))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(pem('CERTIFICATE', spki)))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(signer1PubPem.replace('END PUBLIC', 'END RSA PUBLIC')))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(signer1PubPem.replace('-----END PUBLIC KEY-----\n', '')))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(signer1PubPem.replace('MIIB', 'MI*B')))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(signer1PubPem.replace('IDAQAB', 'IDAQA')))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem('-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n'))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(signer1PubPem + signer1PubPem))).toBe('bad_pem');
      expect(reasonOf(() => parsePublicKeyPem(42 as unknown as string))).toBe('bad_pem');
    });

    test('every truncation of the key DER with bad_der', () => {
      for (let n = 0; n < spki.length; n++) {
        expect([n, reasonOf(() => parsePublicKeyDer(spki.subarray(0, n)))]).toEqual([n, 'bad_der']);
      }
      for (let n = 0; n < pkcs8.length; n++) {
        expect([n, reasonOf(() => parsePrivateKeyDer(pkcs8.subarray(0, n)))]).toEqual([n, 'bad_der']);
      }
      const truncatedPem = pem('PUBLIC KEY', spki.subarray(0, 100));
      expect(reasonOf(() => parsePublicKeyPem(truncatedPem))).toBe('bad_der');
    });

    test('trailing bytes, bad encodings and inconsistent numbers with bad_der', () => {
      const withTrailer = new Uint8Array([...spki, 0]);
      expect(reasonOf(() => parsePublicKeyDer(withTrailer))).toBe('bad_der');
      expect(reasonOf(() => parsePrivateKeyDer(new Uint8Array([...pkcs8, 0])))).toBe('bad_der');
      // A modulus with a redundant leading zero byte.
      const nBytes = bigIntToBytes(signer1.n, 0);
      const badInt = derElement(0x02, new Uint8Array([0, 0, ...nBytes]));
      const badPkcs1 = derSequence(badInt, derInteger(65537n));
      expect(reasonOf(() => parsePkcs1PublicKeyDer(badPkcs1))).toBe('bad_der');
      // Negative modulus, even modulus, e = 1, even e.
      expect(reasonOf(() => parsePkcs1PublicKeyDer(derSequence(derInteger(-signer1.n), derInteger(65537n))))).toBe('bad_der');
      expect(reasonOf(() => parsePkcs1PublicKeyDer(derSequence(derInteger(signer1.n + 1n), derInteger(65537n))))).toBe('bad_der');
      expect(reasonOf(() => parsePkcs1PublicKeyDer(derSequence(derInteger(signer1.n), derInteger(1n))))).toBe('bad_der');
      expect(reasonOf(() => parsePkcs1PublicKeyDer(derSequence(derInteger(signer1.n), derInteger(65536n))))).toBe('bad_der');
      // Private keys whose CRT values do not belong together.
      const k = signer1;
      const pkcs1 = (over: Partial<Record<'n' | 'e' | 'd' | 'p' | 'q' | 'dp' | 'dq' | 'qi', bigint>>): Uint8Array => {
        const v = { ...k, ...over };
        return derSequence(...[0n, v.n, v.e, v.d, v.p, v.q, v.dp, v.dq, v.qi].map(derInteger));
      };
      expect(parsePkcs1PrivateKeyDer(pkcs1({}))).toEqual(k);
      for (const over of [{ dp: k.dp + 2n }, { dq: k.dq - 2n }, { qi: k.qi + 1n }, { p: k.p + 2n }, { d: k.d + 2n }]) {
        expect(reasonOf(() => parsePkcs1PrivateKeyDer(pkcs1(over)))).toBe('bad_der');
      }
    });

    test('keys of other algorithms with unsupported_key', () => {
      const ec = nodeKeyPem('ec', { namedCurve: 'P-256' });
      const ed = nodeKeyPem('ed25519', {});
      const pss = nodeKeyPem('rsa-pss', { modulusLength: 1024 });
      for (const k of [ec, ed, pss]) {
        expect(reasonOf(() => parsePublicKeyPem(k.pub))).toBe('unsupported_key');
        expect(reasonOf(() => parsePrivateKeyPem(k.priv))).toBe('unsupported_key');
      }
      const sec1 = nodeCryptoModule.createPrivateKey(ec.priv).export({ format: 'pem', type: 'sec1' }) as string;
      expect(sec1).toContain('BEGIN EC PRIVATE KEY');
      expect(reasonOf(() => parsePrivateKeyPem(sec1))).toBe('unsupported_key');
      // Multi-prime RSAPrivateKey (version 1): SEQUENCE header (4 bytes), then INTEGER 0 to change to 1.
      const v1 = pkcs1PrivateKeyToDer(signer1).slice();
      expect(hex(v1.subarray(4, 7))).toBe('020100');
      v1[6] = 1;
      expect(reasonOf(() => parsePkcs1PrivateKeyDer(v1))).toBe('unsupported_key');
      // A 96-bit public exponent.
      expect(reasonOf(() => parsePkcs1PublicKeyDer(derSequence(derInteger(signer1.n), derInteger((1n << 95n) + 1n))))).toBe(
        'unsupported_key',
      );
    });

    test('moduli under 1024 bits with key_too_small', () => {
      for (const bits of [512, 1016]) {
        const k = nodeKeyPem('rsa', { modulusLength: bits });
        expect(reasonOf(() => parsePublicKeyPem(k.pub))).toBe('key_too_small');
        expect(reasonOf(() => parsePrivateKeyPem(k.priv))).toBe('key_too_small');
      }
      const k1024 = nodeKeyPem('rsa', { modulusLength: 1024 });
      expect(parsePublicKeyPem(k1024.pub).size).toBe(128);
    });

    test('random corruption of key DER with a CryptoError only', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: pkcs8.length - 1 }),
          fc.integer({ min: 1, max: 255 }),
          fc.integer({ min: 0, max: 3 }),
          (at, x, mode) => {
            const src = mode % 2 === 0 ? pkcs8 : spki;
            const i = at % src.length;
            let der = src.slice();
            if (mode < 2) der[i] ^= x;
            else der = new Uint8Array([...src.subarray(0, i), x, ...src.subarray(i)]);
            try {
              if (src === pkcs8) parsePrivateKeyDer(der);
              else parsePublicKeyDer(der);
            } catch (e) {
              expect(e).toBeInstanceOf(CryptoError);
            }
          },
        ),
        { numRuns: 400 },
      );
    });
  });
});

describe('SHA-256', () => {
  test.each(IMPLS)('%s: known answers, one-shot and streamed', (_name, c) => {
    expect(hex(c.sha256(ascii('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(c.sha256(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const data = seededRandom(3)(1000);
    const s = c.sha256Stream();
    s.update(data.subarray(0, 1));
    s.update(data.subarray(1, 300));
    s.update(new Uint8Array(0));
    s.update(data.subarray(300));
    expect(hex(s.digest())).toBe(hex(c.sha256(data)));
    expect(hex(c.sha256(data))).toBe(nodeCryptoModule.createHash('sha256').update(data).digest('hex'));
  });
});

describe('RSASSA-PKCS1-v1_5 / SHA-256', () => {
  // SRUP-WIRE.md §13.1-13.3: full messages signed with signer-1, and the bytes their signatures cover.
  const worked: [string, string, string][] = [
    [
      '13.1 activate',
      '05030100000000000000efcdab89674523010005544f4b454e',
      `05030100000000000000efcdab89674523010005544f4b454e010081f01f61d3
      a7e1dac5ab9845637d711c4c07f11aa009faf97fe8409c8896212466dd278d3b
      aa3dd0f8ab440840fd11c73926e6b547c10fdf61b652a317438d0f0162d08363
      2263542b2b5ca87d6da55701212e076942cba9847b7252a81361547a9a964b3f
      43583a9e54f4716ffe7569458e4e38310bdca6652fda66e6689f4840504d1bd5
      75e2b0586d9eee024e46f559b64b6fd2b60328796c6f6116829fae2e67d9038d
      e6efb15fc98b8d8a279e05f93233458e8ad6de5fc5715a3ce55b092ed6e3c57b
      40b3291bee928197b6119370f0b576cb891a4e1c639ef8fb7eb2269572ca470c
      7dbe61383e209a4df7bee6d1d60157b190efda7b0978e70a752797`,
    ],
    [
      '13.2 response',
      '050202000000000000001032547698badcfe0005544f4b454e00',
      `050202000000000000001032547698badcfe0005544f4b454e01009e21a84ae7
      ad6acf530e75eeee03020d1a013ee5b15159809453db85b6975f19285bf401db
      aa859393f5e595fb8567208cae9e4802f34c29f7e3a595188058a1fd29f0d449
      c654321f3f4801c1ddb147e025b95b210b0ed1391bdaf159343284adfb529db8
      489da8799c27470acd9c4fd6824bef7780b30f3a917af83b2ff1799cd94769d6
      03eba3524c271f6af950cb891057fea4a04347e33e5e8f5a20d8817efd22ad6d
      70090801905695e5a0248b5cb4082f25721ae2a6d219e2d9a597d724e5b616e8
      e13eb31846371d692dcaf6f2ae707ebf5f065d71a4fd9849146ad091a46e0911
      f8cd9dbeefc572c84f34cfeccf3dc2dee685df62b9fff40d273e6f00`,
    ],
    [
      '13.3 data',
      '050502010000000000001032547698badcfe0002746b000474656d700002d4fe',
      `050502010000000000001032547698badcfe0002746b010060f6704124e4d1e6
      5a416edbcfb625a1462346b96b6cac7017d45f1db3ba7eb1f46900048910bd36
      f26f2c900d4dcecc358ed9ec131660236876845bf471deca87901878b913d8f2
      f47b4526d3906c8bf656f9526d76275bfaad6be4b7ae80b02b151d287ef511ac
      ea9d587ba1351be82c1b65e9ef6abb9dec6e12f6beba4a3d6a8c674cacf09290
      c33dcf8e376727ea6ff9aca276be3f87b2ddbfb1d067e6266d729cc72aadab76
      bed870ea00c12e733b5d47ec734c0f6ae383167ffbf166a2a7dbda8dd2a78dd6
      9ff86ac93b10c8a04fd3374a6c3fed0b2cd2c2481ba262b39987d6198213282f
      340c8c86f158ddc737f04e2a272dded3306816512dd9810f000474656d700002
      d4fe`,
    ],
  ];

  /** The signature inside a SRUP message: after the 18-byte header, the token and the 2-byte signature length. */
  function signatureOf(message: Uint8Array): Uint8Array {
    const tokenLen = (message[18] << 8) | message[19];
    const at = 20 + tokenLen;
    const sigLen = (message[at] << 8) | message[at + 1];
    return message.subarray(at + 2, at + 2 + sigLen);
  }

  describe.each(IMPLS)('%s', (_name, c) => {
    test.each(worked)('§%s: reproduces the reference signature and verifies it', (_what, signed, full) => {
      const sig = signatureOf(unhex(full));
      expect(sig.length).toBe(256);
      expect(hex(c.sign(signer1, unhex(signed)))).toBe(hex(sig));
      expect(c.verify(signer1Pub, unhex(signed), sig)).toBe(true);
    });

    test('§13.1 signed bytes hash as documented', () => {
      expect(hex(c.sha256(unhex(worked[0][1])))).toBe('c70c20ef9ee5c281fe0d97f4763ddacbb577188301cf5aff5a326df3f81d4f64');
    });

    test('every valid SRUP vector: signing its signed bytes reproduces its signature', () => {
      const files = fs.readdirSync(path.join(VECTORS, 'vectors')).filter((f) => f.endsWith('.json'));
      let count = 0;
      for (const f of files) {
        const v = JSON.parse(fs.readFileSync(path.join(VECTORS, 'vectors', f), 'utf8'));
        if (v.expect !== 'valid') continue;
        const signed = unhex(v.signed_bytes_hex);
        const sig = unhex(v.signature.hex);
        expect([f, hex(c.sign(signer1, signed))]).toEqual([f, v.signature.hex]);
        expect([f, c.verify(signer1Pub, signed, sig)]).toEqual([f, true]);
        count++;
      }
      expect(count).toBe(108);
    });

    test('rejects altered signatures, messages and keys (false, no exception)', () => {
      const msg = unhex(worked[0][1]);
      const sig = c.sign(signer1, msg);
      expect(c.verify(signer1Pub, msg, sig)).toBe(true);
      for (const i of [0, 1, 100, 255]) {
        const bad = sig.slice();
        bad[i] ^= 1;
        expect(c.verify(signer1Pub, msg, bad)).toBe(false);
      }
      const otherMsg = msg.slice();
      otherMsg[3] ^= 0x80;
      expect(c.verify(signer1Pub, otherMsg, sig)).toBe(false);
      expect(c.verify(signer2Pub, msg, sig)).toBe(false);
      expect(c.verify(signer1Pub, msg, new Uint8Array(0))).toBe(false);
      expect(c.verify(signer1Pub, msg, sig.subarray(1))).toBe(false);
      expect(c.verify(signer1Pub, msg, new Uint8Array([0, ...sig]))).toBe(false);
      expect(c.verify(signer1Pub, msg, new Uint8Array([...sig, 0]))).toBe(false);
      // s = n and s = n + small: the same residue class as a valid value must not pass.
      expect(c.verify(signer1Pub, msg, bigIntToBytes(signer1.n, 256))).toBe(false);
      const sPlusN = bytesToBigInt(sig) + signer1.n;
      if (sPlusN < 1n << 2048n) expect(c.verify(signer1Pub, msg, bigIntToBytes(sPlusN, 256))).toBe(false);
      expect(c.verify(signer1Pub, msg, new Uint8Array(256))).toBe(false);
      expect(c.verify(signer1Pub, msg, null as unknown as Uint8Array)).toBe(false);
    });
  });
});

describe('RSAES-PKCS1-v1_5', () => {
  describe.each(IMPLS)('%s', (_name, c) => {
    test('round trip at the length limits', () => {
      for (const key of allKeys) {
        for (const len of [0, 1, 32, key.size - 11]) {
          const m = seededRandom(len + 1)(len);
          const ct = c.rsaEncrypt(key.publicKey, m, randomBytes);
          expect(ct.length).toBe(key.size);
          expect(c.rsaDecrypt(key, ct)).toEqual(m);
        }
        expect(reasonOf(() => c.rsaEncrypt(key.publicKey, new Uint8Array(key.size - 10), randomBytes))).toBe(
          'message_too_long',
        );
      }
    });

    test('padding bytes come from the RandomBytes given and are never zero', () => {
      // A source that yields many zeros must still produce a valid block: the zeros are skipped.
      let calls = 0;
      const zeroHeavy: RandomBytes = (n) => {
        calls++;
        const out = new Uint8Array(n);
        for (let i = 0; i < n; i += 2) out[i] = calls % 2 ? 0x33 : 0x5a;
        return out;
      };
      const m = ascii('key');
      const ct = c.rsaEncrypt(signer1Pub, m, zeroHeavy);
      expect(calls).toBeGreaterThan(1);
      const em = bigIntToBytes(modPow(bytesToBigInt(ct), signer1.d, signer1.n), 256);
      expect(hex(em.subarray(0, 2))).toBe('0002');
      const ps = em.subarray(2, 256 - 4);
      expect(ps.every((b) => b === 0x33 || b === 0x5a)).toBe(true);
      expect(em[256 - 4]).toBe(0);
      expect(c.rsaDecrypt(signer1, ct)).toEqual(m);
    });

    test('a RandomBytes that only returns zeros is refused rather than looped on', () => {
      expect(() => c.rsaEncrypt(signer1Pub, ascii('k'), (n) => new Uint8Array(n))).toThrow('zero bytes');
    });

    test('returns null for bad ciphertexts and padding, never throws', () => {
      const key = signer1;
      const raw = (em: Uint8Array): Uint8Array => bigIntToBytes(modPow(bytesToBigInt(em), key.e, key.n), key.size);
      const block = (head: number[], psLen: number, psByte: number, sep: number, msg: number[]): Uint8Array => {
        const em = new Uint8Array(key.size);
        em.set(head, 0);
        em.fill(psByte, head.length, head.length + psLen);
        em[head.length + psLen] = sep;
        em.set(msg, key.size - msg.length);
        return em;
      };
      const msg = [1, 2, 3];
      const good = block([0, 2], key.size - 6, 0x11, 0, msg);
      expect(c.rsaDecrypt(key, raw(good))).toEqual(new Uint8Array(msg));
      expect(c.rsaDecrypt(key, raw(block([0, 2], 8, 0x11, 0, new Array(key.size - 11).fill(7))))).toEqual(
        new Uint8Array(key.size - 11).fill(7),
      );
      const bad = [
        block([0, 1], key.size - 6, 0xff, 0, msg), // type 1
        block([1, 2], key.size - 6, 0x11, 0, msg), // first byte not zero
        block([0, 2], key.size - 6, 0x11, 1, msg), // no separator at all... unless the message has one
        block([0, 2], 7, 0x11, 0, new Array(key.size - 10).fill(7)), // 7 padding bytes
        (() => {
          const em = good.slice();
          em[5] = 0; // a zero inside the first 8 padding bytes
          return em;
        })(),
        new Uint8Array(key.size), // all zero
      ];
      // The third block does contain no zero byte: make sure of that so it is a real test.
      expect(bad[2].subarray(2).includes(0)).toBe(false);
      for (const em of bad) expect(c.rsaDecrypt(key, raw(em))).toBeNull();
      const ct = raw(good);
      expect(c.rsaDecrypt(key, ct.subarray(1))).toBeNull();
      expect(c.rsaDecrypt(key, new Uint8Array([0, ...ct]))).toBeNull();
      expect(c.rsaDecrypt(key, new Uint8Array([...ct, 0]))).toBeNull();
      expect(c.rsaDecrypt(key, new Uint8Array(0))).toBeNull();
      expect(c.rsaDecrypt(key, bigIntToBytes(key.n, key.size))).toBeNull();
      expect(c.rsaDecrypt(key, new Uint8Array(key.size).fill(0xff))).toBeNull();
      expect(c.rsaDecrypt(key, undefined as unknown as Uint8Array)).toBeNull();
    });
  });
});

describe('AES-CBC', () => {
  describe.each(IMPLS)('%s', (_name, c) => {
    test('NIST SP 800-38A F.2.5 (AES-256-CBC), with the PKCS#7 block after it', () => {
      const key = unhex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
      const iv = unhex('000102030405060708090a0b0c0d0e0f');
      const pt = unhex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51');
      const ct = c.aesCbcEncrypt(key, iv, pt);
      expect(hex(ct.subarray(0, 32))).toBe('f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d');
      expect(ct.length).toBe(48);
      expect(c.aesCbcDecrypt(key, iv, ct)).toEqual(pt);
    });

    test('returns null for bad lengths, keys and padding', () => {
      const key = new Uint8Array(32).fill(1);
      const iv = new Uint8Array(16).fill(2);
      const ct = c.aesCbcEncrypt(key, iv, ascii('hello'));
      expect(c.aesCbcDecrypt(key, iv, ct)).toEqual(ascii('hello'));
      expect(c.aesCbcDecrypt(key, iv, ct.subarray(1))).toBeNull();
      expect(c.aesCbcDecrypt(key, iv, new Uint8Array(0))).toBeNull();
      expect(c.aesCbcDecrypt(key.subarray(1), iv, ct)).toBeNull();
      expect(c.aesCbcDecrypt(key, iv.subarray(1), ct)).toBeNull();
      // A block whose last byte is 0x11 or 0x00 cannot be PKCS#7 padding; nor can 02 03.
      const raw = () => cbc(key, iv, { disablePadding: true });
      for (const tail of [[0x11], [0x00], [0x03, 0x02], [0x02, 0x03, 0x03]]) {
        const block = new Uint8Array(16).fill(0x41);
        block.set(tail, 16 - tail.length);
        expect(c.aesCbcDecrypt(key, iv, raw().encrypt(block))).toBeNull();
      }
    });
  });
});

describe('pure and node:crypto agree', () => {
  const keyArb = fc.constantFrom(...allKeys);
  test('identical signatures, each verified by the other', () => {
    fc.assert(
      fc.property(keyArb, fc.uint8Array({ maxLength: 300 }), (key, msg) => {
        const a = pureCrypto.sign(key, msg);
        const b = nodeCrypto.sign(key, msg);
        expect(hex(a)).toBe(hex(b));
        expect(nodeCrypto.verify(key.publicKey, msg, a)).toBe(true);
        expect(pureCrypto.verify(key.publicKey, msg, b)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  test('verify gives the same answer for corrupted signatures', () => {
    const msg = ascii('agreement');
    const sig = pureCrypto.sign(signer1, msg);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const bad = sig.slice();
        bad[i] ^= x;
        expect(pureCrypto.verify(signer1Pub, msg, bad)).toBe(false);
        expect(nodeCrypto.verify(signer1Pub, msg, bad)).toBe(false);
      }),
      { numRuns: 50 },
    );
  });

  test('RSA encryption: same ciphertext from the same randomness, and each decrypts the other', () => {
    fc.assert(
      fc.property(keyArb, fc.uint8Array({ maxLength: 117 }), fc.integer(), (key, msg, seed) => {
        const a = pureCrypto.rsaEncrypt(key.publicKey, msg, seededRandom(seed));
        const b = nodeCrypto.rsaEncrypt(key.publicKey, msg, seededRandom(seed));
        expect(hex(a)).toBe(hex(b));
        expect(nodeCrypto.rsaDecrypt(key, a)).toEqual(msg);
        expect(pureCrypto.rsaDecrypt(key, b)).toEqual(msg);
        const c = pureCrypto.rsaEncrypt(key.publicKey, msg, randomBytes);
        expect(nodeCrypto.rsaDecrypt(key, c)).toEqual(msg);
      }),
      { numRuns: 30 },
    );
  });

  test('RSA decryption agrees on random ciphertexts (almost all invalid)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 256, maxLength: 256 }), (ct) => {
        expect(pureCrypto.rsaDecrypt(recipient1, ct)).toEqual(nodeCrypto.rsaDecrypt(recipient1, ct));
      }),
      { numRuns: 30 },
    );
  });

  test('AES-CBC both ways for every key size', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 24, 32),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ maxLength: 100 }),
        (len, keyBytes, iv, pt) => {
          const key = keyBytes.subarray(0, len);
          const a = pureCrypto.aesCbcEncrypt(key, iv, pt);
          const b = nodeCrypto.aesCbcEncrypt(key, iv, pt);
          expect(hex(a)).toBe(hex(b));
          expect(nodeCrypto.aesCbcDecrypt(key, iv, a)).toEqual(pt);
          expect(pureCrypto.aesCbcDecrypt(key, iv, b)).toEqual(pt);
        },
      ),
    );
  });

  test('AES-CBC decryption agrees on arbitrary ciphertexts', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 64 }), (key, ct) => {
        const iv = new Uint8Array(16);
        expect(pureCrypto.aesCbcDecrypt(key, iv, ct)).toEqual(nodeCrypto.aesCbcDecrypt(key, iv, ct));
      }),
      { numRuns: 300 },
    );
  });
});

describe('envelope (SRUP-WIRE.md §6)', () => {
  const encrypted = fs
    .readdirSync(path.join(VECTORS, 'vectors'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ f, v: JSON.parse(fs.readFileSync(path.join(VECTORS, 'vectors', f), 'utf8')) }))
    .filter(({ v }) => v.encrypted && v.encrypted.envelope_hex !== '')
    .map(({ f, v }) => [f, v.encrypted.envelope_hex as string, v.encrypted.plaintext.hex as string] as const);

  test('the vector set has the expected encrypted values', () => {
    expect(encrypted.length).toBe(17);
  });

  describe.each(IMPLS)('%s', (_name, c) => {
    test.each(encrypted)('%s opens with recipient-1 to the documented plaintext', (_f, envHex, ptHex) => {
      expect(hex(openEnvelope(c, recipient1, unhex(envHex)))).toBe(ptHex);
    });

    test('seal/open round trip for assorted lengths, and the layout is as documented', () => {
      for (const len of [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000]) {
        const pt = seededRandom(len + 7)(len);
        const env = sealEnvelope(c, recipient1Pub, pt, randomBytes);
        const ctLen = 16 * (Math.floor(len / 16) + 1);
        expect(env.length).toBe(4 + 256 + 16 + 8 + ctLen);
        const dv = new DataView(env.buffer, env.byteOffset, env.byteLength);
        expect(dv.getUint32(0, true)).toBe(256);
        expect(dv.getUint32(276, true)).toBe(ctLen);
        expect(dv.getUint32(280, true)).toBe(len);
        expect(openEnvelope(c, recipient1, env)).toEqual(pt);
      }
    });

    test('sealing is deterministic given the RandomBytes, and a 32-byte value makes a 332-byte envelope', () => {
      const pt = ascii('636dd7ad8c004d09b2c391d0cc3aa2b0');
      const a = sealEnvelope(c, recipient1Pub, pt, seededRandom(9));
      const b = sealEnvelope(c, recipient1Pub, pt, seededRandom(9));
      expect(hex(a)).toBe(hex(b));
      expect(a.length).toBe(332);
    });
  });

  test('envelopes sealed by one implementation open with the other', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (pt) => {
        expect(openEnvelope(nodeCrypto, recipient1, sealEnvelope(pureCrypto, recipient1Pub, pt, randomBytes))).toEqual(pt);
        expect(openEnvelope(pureCrypto, recipient1, sealEnvelope(nodeCrypto, recipient1Pub, pt, randomBytes))).toEqual(pt);
      }),
      { numRuns: 20 },
    );
  });

  describe('rejects malformed envelopes with bad_envelope', () => {
    const pt = ascii('636dd7ad8c004d09b2c391d0cc3aa2b0');
    const env = sealEnvelope(pureCrypto, recipient1Pub, pt, seededRandom(5));

    /** An envelope assembled from parts, for cases sealEnvelope never produces. */
    function assemble(p: { k?: number; wrapped?: Uint8Array; iv?: Uint8Array; c?: number; p?: number; ct: Uint8Array }): Uint8Array {
      const wrapped = p.wrapped ?? env.subarray(4, 260);
      const out = new Uint8Array(4 + wrapped.length + 16 + 8 + p.ct.length);
      const dv = new DataView(out.buffer);
      dv.setUint32(0, p.k ?? wrapped.length, true);
      out.set(wrapped, 4);
      out.set(p.iv ?? new Uint8Array(16), 4 + wrapped.length);
      dv.setUint32(4 + wrapped.length + 16, p.c ?? p.ct.length, true);
      dv.setUint32(4 + wrapped.length + 20, p.p ?? 0, true);
      out.set(p.ct, 4 + wrapped.length + 24);
      return out;
    }
    function withU32(at: number, v: number): Uint8Array {
      const out = env.slice();
      new DataView(out.buffer).setUint32(at, v >>> 0, true);
      return out;
    }
    const aesKey = seededRandom(11)(32);
    const iv = seededRandom(12)(16);
    const wrapKey = (k: Uint8Array): Uint8Array => pureCrypto.rsaEncrypt(recipient1Pub, k, seededRandom(13));

    const cases: [string, () => Uint8Array][] = [
      ['empty', () => new Uint8Array(0)],
      ['three bytes', () => env.subarray(0, 3)],
      ['wrapped-key length 255', () => withU32(0, 255)],
      ['wrapped-key length 257', () => withU32(0, 257)],
      ['wrapped-key length 0', () => withU32(0, 0)],
      ['wrapped-key length 0xffffffff', () => withU32(0, 0xffffffff)],
      ['wrapped-key length 0x80000100', () => withU32(0, 0x80000100)],
      ['ciphertext length 0', () => withU32(276, 0)],
      ['ciphertext length 47', () => withU32(276, 47)],
      ['ciphertext length 64 (longer than what follows)', () => withU32(276, 64)],
      ['ciphertext length 32 (shorter than what follows)', () => withU32(276, 32)],
      ['ciphertext length 0xfffffff0', () => withU32(276, 0xfffffff0)],
      ['plaintext length 48 with 48 bytes of ciphertext', () => withU32(280, 48)],
      ['plaintext length 15 with 48 bytes of ciphertext', () => withU32(280, 15)],
      ['plaintext length 0xffffffff', () => withU32(280, 0xffffffff)],
      ['a trailing byte', () => new Uint8Array([...env, 0])],
      ['the last byte missing', () => env.subarray(0, env.length - 1)],
      ['the last block missing', () => env.subarray(0, env.length - 16)],
      ['a changed wrapped key', () => {
        const out = env.slice();
        out[100] ^= 0x40;
        return out;
      }],
      ['a wrapped key equal to n', () => assemble({ wrapped: bigIntToBytes(recipient1.n, 256), ct: env.subarray(284), p: 32 })],
      ['a wrapped key under the wrong public key', () => {
        const out = env.slice();
        out.set(pureCrypto.rsaEncrypt(signer1Pub, aesKey, seededRandom(2)), 4);
        return out;
      }],
      ['a wrapped 16-byte key', () => {
        const k16 = aesKey.subarray(0, 16);
        return assemble({ wrapped: wrapKey(k16), iv, ct: pureCrypto.aesCbcEncrypt(k16, iv, pt), p: 32 });
      }],
      ['a wrapped 33-byte key', () => {
        const k33 = new Uint8Array([...aesKey, 1]);
        return assemble({ wrapped: wrapKey(k33), iv, ct: pureCrypto.aesCbcEncrypt(aesKey, iv, pt), p: 32 });
      }],
      ['invalid PKCS#7 padding', () => {
        const block = new Uint8Array(48).fill(0x41);
        block[47] = 0x11;
        return assemble({ wrapped: wrapKey(aesKey), iv, ct: cbc(aesKey, iv, { disablePadding: true }).encrypt(block), p: 32 });
      }],
      ['a plaintext length that disagrees with the padding (33 for 32)', () =>
        assemble({ wrapped: wrapKey(aesKey), iv, ct: pureCrypto.aesCbcEncrypt(aesKey, iv, pt), p: 33 })],
      ['a plaintext length that disagrees with the padding (40 for 32)', () =>
        assemble({ wrapped: wrapKey(aesKey), iv, ct: pureCrypto.aesCbcEncrypt(aesKey, iv, pt), p: 40 })],
    ];

    test('the assembled control case opens', () => {
      const ok = assemble({ wrapped: wrapKey(aesKey), iv, ct: pureCrypto.aesCbcEncrypt(aesKey, iv, pt), p: 32 });
      expect(openEnvelope(pureCrypto, recipient1, ok)).toEqual(pt);
    });

    describe.each(IMPLS)('%s', (_name, c) => {
      test.each(cases)('%s', (_what, make) => {
        expect(reasonOf(() => openEnvelope(c, recipient1, make()))).toBe('bad_envelope');
      });

      test('every truncation', () => {
        for (let n = 0; n < env.length; n++) {
          expect([n, reasonOf(() => openEnvelope(c, recipient1, env.subarray(0, n)))]).toEqual([n, 'bad_envelope']);
        }
      });

      test('an envelope for another key (signer-1) does not open', () => {
        expect(reasonOf(() => openEnvelope(c, signer1, env))).toBe('bad_envelope');
      });

      test('random corruption fails with bad_envelope unless it hits the IV or a non-final ciphertext block', () => {
        fc.assert(
          fc.property(fc.integer({ min: 0, max: env.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
            const bad = env.slice();
            bad[i] ^= x;
            try {
              const out = openEnvelope(c, recipient1, bad);
              // CBC is malleable: a change to the IV or to a ciphertext block other than the last still
              // decrypts (to other text). The envelope relies on the message signature for integrity.
              expect((i >= 260 && i < 276) || (i >= 284 && i < 316)).toBe(true);
              expect(out.length).toBe(32);
              expect(hex(out)).not.toBe(hex(pt));
            } catch (e) {
              expect(e).toBeInstanceOf(CryptoError);
              expect((e as CryptoError).reason).toBe('bad_envelope');
            }
          }),
          { numRuns: c === pureCrypto ? 40 : 150 },
        );
      });
    });
  });
});
