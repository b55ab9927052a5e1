/**
 * Known answers and properties of the Crypto implementation that SRUP relies on: SHA-256, RSASSA-PKCS1-v1_5
 * signatures (the worked examples of SRUP-WIRE.md §13, produced by the reference library), and the envelope.
 */
import { openEnvelope, sealEnvelope } from '../../crypto/envelope.js';
import type { Crypto } from '../../crypto/types.js';
import { fromHex, toHex, utf8 } from '../../modules/srup/bytes.js';
import { decode, encode, signedBytes } from '../../modules/srup/codec.js';
import { decodeData } from '../../modules/srup/data.js';
import type { Message, UnsignedMessage } from '../../modules/srup/schema.js';
import { verify } from '../../modules/srup/session.js';
import { signMessage } from './codec-cases.js';
import { Case, bytesEqual, check, deepEqual, equal, fail } from './harness.js';
import { keyRing } from './keyring.js';
import { Prng, seededRandomBytes } from './prng.js';
import type { VectorSet } from './vectors.js';

const SIGNER = 'keys/signer-1.private.pem';
const SIGNER_PUB = 'keys/signer-1.public.pem';
const OTHER_PUB = 'keys/signer-2.public.pem';
const RECIPIENT = 'keys/recipient-1.private.pem';
const RECIPIENT_PUB = 'keys/recipient-1.public.pem';

// SRUP-WIRE.md §13.1-13.3: complete messages signed by signer-1.
const ACTIVATE_13_1 =
  '05030100000000000000efcdab89674523010005544f4b454e010081f01f61d3a7e1dac5ab9845637d711c4c07f11aa0' +
  '09faf97fe8409c8896212466dd278d3baa3dd0f8ab440840fd11c73926e6b547c10fdf61b652a317438d0f0162d08363' +
  '2263542b2b5ca87d6da55701212e076942cba9847b7252a81361547a9a964b3f43583a9e54f4716ffe7569458e4e3831' +
  '0bdca6652fda66e6689f4840504d1bd575e2b0586d9eee024e46f559b64b6fd2b60328796c6f6116829fae2e67d9038d' +
  'e6efb15fc98b8d8a279e05f93233458e8ad6de5fc5715a3ce55b092ed6e3c57b40b3291bee928197b6119370f0b576cb' +
  '891a4e1c639ef8fb7eb2269572ca470c7dbe61383e209a4df7bee6d1d60157b190efda7b0978e70a752797';
const RESPONSE_13_2 =
  '050202000000000000001032547698badcfe0005544f4b454e01009e21a84ae7ad6acf530e75eeee03020d1a013ee5b1' +
  '5159809453db85b6975f19285bf401dbaa859393f5e595fb8567208cae9e4802f34c29f7e3a595188058a1fd29f0d449' +
  'c654321f3f4801c1ddb147e025b95b210b0ed1391bdaf159343284adfb529db8489da8799c27470acd9c4fd6824bef77' +
  '80b30f3a917af83b2ff1799cd94769d603eba3524c271f6af950cb891057fea4a04347e33e5e8f5a20d8817efd22ad6d' +
  '70090801905695e5a0248b5cb4082f25721ae2a6d219e2d9a597d724e5b616e8e13eb31846371d692dcaf6f2ae707ebf' +
  '5f065d71a4fd9849146ad091a46e0911f8cd9dbeefc572c84f34cfeccf3dc2dee685df62b9fff40d273e6f00';
const DATA_13_3 =
  '050502010000000000001032547698badcfe0002746b010060f6704124e4d1e65a416edbcfb625a1462346b96b6cac70' +
  '17d45f1db3ba7eb1f46900048910bd36f26f2c900d4dcecc358ed9ec131660236876845bf471deca87901878b913d8f2' +
  'f47b4526d3906c8bf656f9526d76275bfaad6be4b7ae80b02b151d287ef511acea9d587ba1351be82c1b65e9ef6abb9d' +
  'ec6e12f6beba4a3d6a8c674cacf09290c33dcf8e376727ea6ff9aca276be3f87b2ddbfb1d067e6266d729cc72aadab76' +
  'bed870ea00c12e733b5d47ec734c0f6ae383167ffbf166a2a7dbda8dd2a78dd69ff86ac93b10c8a04fd3374a6c3fed0b' +
  '2cd2c2481ba262b39987d6198213282f340c8c86f158ddc737f04e2a272dded3306816512dd9810f000474656d700002' +
  'd4fe';

/** §13.1 signed bytes and their SHA-256. */
const ACTIVATE_13_1_SIGNED = '05030100000000000000efcdab89674523010005544f4b454e';
const ACTIVATE_13_1_SHA256 = 'c70c20ef9ee5c281fe0d97f4763ddacbb577188301cf5aff5a326df3f81d4f64';

interface Example {
  readonly name: string;
  readonly hex: string;
  readonly signedHex: string;
  readonly expected: Omit<Message, 'signature'>;
}

const EXAMPLES: readonly Example[] = [
  {
    name: '§13.1 activate',
    hex: ACTIVATE_13_1,
    signedHex: ACTIVATE_13_1_SIGNED,
    expected: { type: 'activate', sequenceId: 1n, senderId: 0x0123456789abcdefn, token: utf8('TOKEN'), fields: {} },
  },
  {
    name: '§13.2 response',
    hex: RESPONSE_13_2,
    signedHex: '050202000000000000001032547698badcfe0005544f4b454e00',
    expected: {
      type: 'response',
      sequenceId: 2n,
      senderId: 0xfedcba9876543210n,
      token: utf8('TOKEN'),
      fields: { status: 0 },
    },
  },
  {
    name: '§13.3 data',
    hex: DATA_13_3,
    signedHex: '050502010000000000001032547698badcfe0002746b000474656d700002d4fe',
    expected: {
      type: 'data',
      sequenceId: 258n,
      senderId: 0xfedcba9876543210n,
      token: utf8('tk'),
      fields: { dataId: utf8('temp'), data: Uint8Array.of(0xd4, 0xfe) },
    },
  },
];

/** Cases for one Crypto implementation; keys come from the vector set. */
export function cryptoCases(set: VectorSet, crypto: Crypto): Case[] {
  const keys = keyRing(set);
  const cases: Case[] = [
    {
      name: 'sha256: known answers (empty, "abc", the §13.1 signed bytes)',
      run() {
        equal(
          toHex(crypto.sha256(new Uint8Array(0))),
          'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
          'SHA-256("")',
        );
        equal(
          toHex(crypto.sha256(utf8('abc'))),
          'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
          'SHA-256("abc")',
        );
        equal(toHex(crypto.sha256(fromHex(ACTIVATE_13_1_SIGNED))), ACTIVATE_13_1_SHA256, 'SHA-256 of §13.1');
      },
    },
    {
      name: 'sha256Stream: uneven chunks give the one-shot digest',
      run() {
        const data = new Prng(7).bytes(1000);
        const s = crypto.sha256Stream();
        let at = 0;
        for (const n of [0, 1, 63, 64, 65, 0, 127, 300]) {
          s.update(data.subarray(at, at + n));
          at += n;
        }
        s.update(data.subarray(at));
        bytesEqual(s.digest(), crypto.sha256(data), 'streamed digest');
      },
    },
  ];

  for (const ex of EXAMPLES) {
    cases.push({
      name: `${ex.name}: decodes, verifies with signer-1 and re-signs byte for byte`,
      run() {
        const bytes = fromHex(ex.hex);
        const m = decode(bytes);
        const { signature, ...rest } = m;
        deepEqual(rest, ex.expected, 'decoded');
        equal(toHex(signedBytes(m)), ex.signedHex, 'signed bytes');
        check(verify(crypto, keys.publicKey(SIGNER_PUB), m), 'the signature does not verify');
        const again = signMessage(crypto, keys.privateKey(SIGNER), ex.expected as UnsignedMessage);
        bytesEqual(again.signature, signature, 'signature');
        bytesEqual(encode(again), bytes, 'message');
      },
    });
  }

  cases.push(
    {
      name: '§13.3 data: the payload is int16 -300',
      run() {
        const m = decode(fromHex(DATA_13_3));
        check(m.type === 'data', 'not a data message');
        equal(decodeData('int16', m.fields.data), -300, 'int16 payload');
      },
    },
    {
      name: '§13.4 initiate: signed bytes as documented; the signed message is 300 bytes and verifies',
      run() {
        const u: UnsignedMessage = {
          type: 'initiate',
          sequenceId: 1n,
          senderId: 0x0123456789abcdefn,
          token: utf8('u1'),
          fields: { url: fromHex('687474703a2f2f682f6600'), digest: fromHex('6162313200') },
        };
        equal(
          toHex(signedBytes(u)),
          '05010100000000000000efcdab89674523010002753100' + '0b687474703a2f2f682f660000056162313200',
          'signed bytes',
        );
        const m = signMessage(crypto, keys.privateKey(SIGNER), u);
        const bytes = encode(m);
        equal(bytes.length, 300, 'length');
        check(verify(crypto, keys.publicKey(SIGNER_PUB), decode(bytes)), 'the signature does not verify');
      },
    },
    {
      name: '§13.5 syndicated_c2_request: signed bytes and message tail as documented (287 bytes)',
      run() {
        const u: UnsignedMessage = {
          type: 'syndicated_c2_request',
          sequenceId: 1n,
          senderId: 0x0123456789abcdefn,
          token: utf8('c2'),
          fields: { data: utf8('AB'), reqId: 7 },
        };
        equal(toHex(signedBytes(u)), '052c0100000000000000efcdab89674523010002633200024142070000', 'signed bytes');
        const bytes = encode(signMessage(crypto, keys.privateKey(SIGNER), u));
        equal(bytes.length, 287, 'length');
        equal(toHex(bytes.subarray(bytes.length - 15)), '4ee841791dedda5700024142070000', 'tail');
      },
    },
    {
      name: 'sign/verify: round trip over messages of 0 to 1000 bytes (SHA-256 block boundaries)',
      run() {
        const priv = keys.privateKey(SIGNER);
        const pub = keys.publicKey(SIGNER_PUB);
        const rng = new Prng(11);
        for (const n of [0, 1, 55, 56, 64, 1000]) {
          const msg = rng.bytes(n);
          const sig = crypto.sign(priv, msg);
          equal(sig.length, 256, `signature length for ${n} bytes`);
          check(crypto.verify(pub, msg, sig), `signature over ${n} bytes does not verify`);
          bytesEqual(crypto.sign(priv, msg), sig, `signing ${n} bytes twice`);
        }
      },
    },
    {
      name: 'verify: false (never an exception) for tampered messages, tampered or malformed signatures, other keys',
      run() {
        const priv = keys.privateKey(SIGNER);
        const pub = keys.publicKey(SIGNER_PUB);
        const msg = new Prng(12).bytes(100);
        const sig = crypto.sign(priv, msg);
        const no = (what: string, m: Uint8Array, s: Uint8Array, k = pub) => {
          let r: boolean;
          try {
            r = crypto.verify(k, m, s);
          } catch (e) {
            return fail(`verify threw for ${what}: ${String(e)}`);
          }
          equal(r, false, `verify of ${what}`);
        };
        const flip = (b: Uint8Array, i: number, bit: number) => {
          const c = b.slice();
          c[i] ^= 1 << bit;
          return c;
        };
        no('a message with one bit flipped', flip(msg, 50, 3), sig);
        no('a message one byte longer', Uint8Array.from([...msg, 0]), sig);
        no('a message one byte shorter', msg.subarray(0, 99), sig);
        no('a signature with its first bit flipped', msg, flip(sig, 0, 7));
        no('a signature with its last bit flipped', msg, flip(sig, 255, 0));
        no('another key', msg, sig, keys.publicKey(OTHER_PUB));
        no('an empty signature', msg, new Uint8Array(0));
        no('a 255-byte signature', msg, sig.subarray(1));
        no('a 257-byte signature', msg, Uint8Array.from([0, ...sig]));
        no('an all-zero signature', msg, new Uint8Array(256));
        no('an all-ff signature (>= n)', msg, new Uint8Array(256).fill(0xff));
        no('the modulus as signature', msg, fromHex(pub.n.toString(16).padStart(512, '0')));
        no('signature 1', msg, Uint8Array.from({ length: 256 }, (_, i) => (i === 255 ? 1 : 0)));
        check(crypto.verify(pub, msg, sig), 'the untouched signature verifies');
      },
    },
    {
      name: 'envelope: seal to recipient-1 and open again (0, 3, 15, 16, 32, 100 bytes)',
      run() {
        const pub = keys.publicKey(RECIPIENT_PUB);
        const priv = keys.privateKey(RECIPIENT);
        const random = seededRandomBytes(13);
        for (const n of [0, 3, 15, 16, 32, 100]) {
          const pt = new Prng(n).bytes(n);
          const env = sealEnvelope(crypto, pub, pt, random);
          equal(env.length, 284 + 16 * (Math.floor(n / 16) + 1), `envelope size for ${n} bytes`);
          bytesEqual(openEnvelope(crypto, priv, env), pt, `plaintext of ${n} bytes`);
        }
      },
    },
  );
  return cases;
}
