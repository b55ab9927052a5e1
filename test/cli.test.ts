/**
 * The `srup` command line. Every vector in test/data/srup-vectors is decoded (and must show exactly its
 * sidecar's values) and every valid one is re-encoded from its sidecar (and must come out byte for byte).
 * Those ~250 invocations go through the same `main()` that bin/srup.js runs, in this process (spawning a Node
 * per invocation would cost minutes); the rest run the real `node bin/srup.js …` after `npm run build`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { decode, encode } from '../modules/srup/codec.js';
import { TYPE_NAMES, typeInfo, type Message, type TypeName } from '../modules/srup/schema.js';
import { messageJson, parseMessageJson } from '../tools/lib/json.js';
import { main } from '../tools/srup.js';

const ROOT = join(__dirname, '..');
const VECTORS = join(ROOT, 'test', 'data', 'srup-vectors');
const SIGNER_PUBLIC = join(VECTORS, 'keys', 'signer-1.public.pem');
const SIGNER_PRIVATE = join(VECTORS, 'keys', 'signer-1.private.pem');
const SIGNER2_PUBLIC = join(VECTORS, 'keys', 'signer-2.public.pem');
const RECIPIENT_PUBLIC = join(VECTORS, 'keys', 'recipient-1.public.pem');
const RECIPIENT_PRIVATE = join(VECTORS, 'keys', 'recipient-1.private.pem');

interface IndexEntry {
  id: string;
  type: string;
  expect: 'valid' | 'header-only' | 'invalid';
  file: string;
}
type Sidecar = Record<string, any>;

const index: IndexEntry[] = JSON.parse(readFileSync(join(VECTORS, 'index.json'), 'utf8')).vectors;
const sidecar = (e: IndexEntry): Sidecar => JSON.parse(readFileSync(join(VECTORS, e.file.replace(/\.bin$/, '.json')), 'utf8'));
const valid = index.filter((e) => e.expect === 'valid');
const headerOnly = index.filter((e) => e.expect === 'header-only');
const invalid = index.filter((e) => e.expect === 'invalid');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  out: Buffer;
}

function srup(args: string[], opts: { bin?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [opts.bin ?? join(ROOT, 'bin', 'srup.js'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const o = Buffer.concat(out);
      resolve({ code, stdout: o.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), out: o });
    });
  });
}

/** One invocation through main(), in this process, with its output captured. */
async function srupInProcess(args: string[]): Promise<Run> {
  const sink = (parts: Buffer[]) =>
    new Writable({
      write(chunk, _encoding, done) {
        parts.push(Buffer.from(chunk));
        done();
      },
    });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const code = await main(args, { stdout: sink(out), stderr: sink(err), stdin: Readable.from([]) });
  const o = Buffer.concat(out);
  return { code, stdout: o.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), out: o };
}

/** Runs many invocations in this process, one after another. */
async function srupAll<K extends string>(jobs: [K, string[]][]): Promise<Map<K, Run>> {
  const results = new Map<K, Run>();
  for (const [key, args] of jobs) results.set(key, await srupInProcess(args));
  return results;
}

function decodeArgs(e: IndexEntry, s: Sidecar): string[] {
  const args = ['decode', join(VECTORS, e.file), '--key', s.public_key_file ? join(VECTORS, s.public_key_file) : SIGNER_PUBLIC];
  if (s.encrypted) args.push('--recipient-key', join(VECTORS, s.encrypted.recipient_private_key_file ?? 'keys/recipient-1.private.pem'));
  const kind = s.fields?.data?.interpretation?.type;
  if (kind) args.push('--data-as', kind);
  return args;
}

let tmp: string;
let decoded: Map<string, Run>;
let encoded: Map<string, Run>;

beforeAll(async () => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  tmp = mkdtempSync(join(tmpdir(), 'srup-cli-'));
  decoded = await srupAll(index.map((e) => [e.id, decodeArgs(e, sidecar(e))]));
  encoded = await srupAll(
    valid.map((e) => {
      const s = sidecar(e);
      return [e.id, ['encode', s.type, '--fields', '@' + join(VECTORS, e.file.replace(/\.bin$/, '.json')), '--key', SIGNER_PRIVATE, '-o', join(tmp, e.id + '.bin')]];
    }),
  );
}, 600_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('srup decode', () => {
  test('the vector set is all there', () => {
    expect(valid.length).toBe(108);
    expect(headerOnly.length).toBe(2);
    expect(invalid.length).toBe(13);
  });

  test.each(valid.map((e) => [e.id, e]))('%s decodes to exactly its sidecar values and verifies', (_id, e) => {
    const s = sidecar(e);
    const r = decoded.get(e.id)!;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    for (const k of ['type', 'type_code', 'type_code_hex', 'version', 'length', 'sha256', 'sequence_id', 'sender_id', 'token', 'fields', 'signature', 'signed_bytes_hex']) {
      expect([k, out[k]]).toEqual([k, s[k]]);
    }
    if (s.encrypted) {
      const { recipient_private_key_file, recipient_public_key_file, ...expected } = s.encrypted;
      expect(out.encrypted).toMatchObject(expected);
      if (s.encrypted.plaintext) expect(out.encrypted.plaintext_hex).toBe(s.encrypted.plaintext.hex);
    } else {
      expect(out.encrypted).toBeUndefined();
    }
    expect(out.verified).toBe(true);
  });

  test.each(headerOnly.map((e) => [e.id, e]))('%s (generic, unsigned) is rejected as header_only', (_id, e) => {
    const r = decoded.get(e.id)!;
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ rejected: true, reason: 'header_only' });
  });

  // What a user sees for each corrupted vector (reason from the protocol layer, or bad_signature).
  const reasons: Record<string, string> = {
    'invalid-01': 'bad_signature', // one bit of the signature flipped
    'invalid-02': 'bad_signature', // payload modified
    'invalid-03': 'bad_signature', // sequence ID modified
    'invalid-04': 'length_exceeds_input', // last field shorter than its length
    'invalid-05': 'length_exceeds_input', // signature shorter than its length
    'invalid-06': 'empty',
    'invalid-07': 'bad_version', // validly signed version 0x04
    'invalid-08': 'length_exceeds_input', // token length 0xFFF0
    'invalid-09': 'trailing_bytes',
    'invalid-10': 'bad_signature', // signed by signer-2
    'invalid-11': 'bad_signature', // type byte changed
    'invalid-12': 'empty_signature',
    'invalid-13': 'bad_padding', // syndicated_c2_request without its padding
  };

  test.each(invalid.map((e) => [e.id, e]))('%s is rejected with exit status 1', (_id, e) => {
    const r = decoded.get(e.id)!;
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ rejected: true, reason: reasons[e.id] });
    expect(typeof out.detail).toBe('string');
  });

  test('a message signed by someone else is rejected as bad_signature', async () => {
    const r = await srup(['decode', join(VECTORS, 'vectors', 'activate-01.bin'), '--key', SIGNER2_PUBLIC]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ rejected: true, reason: 'bad_signature' });
  });

  test('an envelope that does not open with --recipient-key is rejected as bad_envelope', async () => {
    const r = await srup([
      'decode', join(VECTORS, 'vectors', 'human-join-response-01.bin'), '--key', SIGNER_PUBLIC,
      '--recipient-key', join(VECTORS, 'keys', 'signer-2.private.pem'),
    ]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ rejected: true, reason: 'bad_envelope' });
  });

  test('without --recipient-key the envelope is shown but not opened', async () => {
    const r = await srup(['decode', join(VECTORS, 'vectors', 'human-join-response-01.bin'), '--key', SIGNER_PUBLIC, '--compact']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const out = JSON.parse(r.stdout);
    expect(out.encrypted.envelope_len).toBe(332);
    expect(out.encrypted.plaintext).toBeUndefined();
  });

  test('the pure TypeScript crypto gives the same answer as node:crypto', async () => {
    const e = valid.find((v) => v.id === 'observation-request-01')!;
    const r = await srup([...decodeArgs(e, sidecar(e)), '--crypto', 'pure']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(decoded.get(e.id)!.stdout));
  });

  test('an unreadable file is a one-line error with exit status 2', async () => {
    const r = await srup(['decode', join(tmp, 'no-such.bin'), '--key', SIGNER_PUBLIC]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^srup decode: cannot read message .*no-such\.bin: no such file\n$/);
  });

  test('a file that is not a key is a one-line error with exit status 2', async () => {
    const r = await srup(['decode', join(VECTORS, 'vectors', 'activate-01.bin'), '--key', join(VECTORS, 'vectors', 'activate-01.bin')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--key');
  });

  test('a private key where the public one belongs is refused with exit status 2', async () => {
    const r = await srup(['decode', join(VECTORS, 'vectors', 'activate-01.bin'), '--key', SIGNER_PRIVATE]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not a usable RSA public key');
  });

  test('--key is required', async () => {
    const r = await srup(['decode', join(VECTORS, 'vectors', 'activate-01.bin')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--key is required');
    expect(r.stderr).toContain('Usage: srup decode');
  });
});

describe('srup encode', () => {
  test.each(valid.map((e) => [e.id, e]))('%s re-encoded from its sidecar is byte for byte the vector', (_id, e) => {
    const r = encoded.get(e.id)!;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const expected = readFileSync(join(VECTORS, e.file));
    const actual = readFileSync(join(tmp, e.id + '.bin'));
    expect(actual.equals(expected)).toBe(true);
    expect(r.stdout).toBe(`${join(tmp, e.id + '.bin')}: ${expected.length} bytes\n`);
  });

  test('a hand-written description with text, numbers and a typed payload', async () => {
    const fields = {
      sequence_id: '258',
      sender_id: '0xfedcba9876543210',
      token: { text: 'tk' },
      fields: { data_id: { text: 'temp' }, data: { type: 'int16', value: -300 } },
    };
    const out = join(tmp, 'data-hand.bin');
    const r = await srup(['encode', 'data', '--fields', JSON.stringify(fields), '--key', SIGNER_PRIVATE, '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // SRUP-WIRE.md §13.3: the same values give exactly this message.
    expect(readFileSync(out).toString('hex')).toBe(
      '050502010000000000001032547698badcfe0002746b010060f6704124e4d1e6' +
        '5a416edbcfb625a1462346b96b6cac7017d45f1db3ba7eb1f46900048910bd36' +
        'f26f2c900d4dcecc358ed9ec131660236876845bf471deca87901878b913d8f2' +
        'f47b4526d3906c8bf656f9526d76275bfaad6be4b7ae80b02b151d287ef511ac' +
        'ea9d587ba1351be82c1b65e9ef6abb9dec6e12f6beba4a3d6a8c674cacf09290' +
        'c33dcf8e376727ea6ff9aca276be3f87b2ddbfb1d067e6266d729cc72aadab76' +
        'bed870ea00c12e733b5d47ec734c0f6ae383167ffbf166a2a7dbda8dd2a78dd6' +
        '9ff86ac93b10c8a04fd3374a6c3fed0b2cd2c2481ba262b39987d6198213282f' +
        '340c8c86f158ddc737f04e2a272dded3306816512dd9810f000474656d700002' +
        'd4fe',
    );
  });

  test('the output of decode encodes back to the same message', async () => {
    const file = join(VECTORS, 'vectors', 'syndicated-c2-request-01.bin');
    const d = await srup(['decode', file, '--key', SIGNER_PUBLIC]);
    const json = join(tmp, 'c2.json');
    writeFileSync(json, d.stdout);
    const out = join(tmp, 'c2.bin');
    const r = await srup(['encode', '--fields', '@' + json, '--key', SIGNER_PRIVATE, '-o', out]);
    expect(r.code).toBe(0);
    expect(readFileSync(out).equals(readFileSync(file))).toBe(true);
  });

  test('a plaintext with --recipient_key is sealed, and opens again with the private key', async () => {
    const fields = {
      sequence_id: 7,
      sender_id: { hex: '0123456789abcdef' },
      token: { text: 'hj' },
      fields: { joining_device_id: '0x4a0f00000000beef' },
      encrypted: { plaintext_text: '636dd7ad8c004d09b2c391d0cc3aa2b0', recipient_key: RECIPIENT_PUBLIC },
    };
    const out = join(tmp, 'obs.bin');
    const r = await srup(['encode', 'observation_request', '-f', JSON.stringify(fields), '-k', SIGNER_PRIVATE, '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const d = await srup(['decode', out, '--key', SIGNER_PUBLIC, '--recipient-key', RECIPIENT_PRIVATE]);
    expect(d.code).toBe(0);
    const j = JSON.parse(d.stdout);
    expect(j.fields).toEqual({ joining_device_id: { dec: BigInt('0x4a0f00000000beef').toString(), hex: '4a0f00000000beef' } });
    expect(j.encrypted.plaintext.text).toBe('636dd7ad8c004d09b2c391d0cc3aa2b0');
    expect(j.encrypted.envelope_len).toBe(332);
  });

  test('-o - writes the message to standard output', async () => {
    const e = valid.find((v) => v.id === 'action-01')!;
    const r = await srup(['encode', '--fields', '@' + join(VECTORS, 'vectors', 'action-01.json'), '--key', SIGNER_PRIVATE, '-o', '-']);
    expect(r.code).toBe(0);
    expect(r.out.equals(readFileSync(join(VECTORS, e.file)))).toBe(true);
  });

  const base = { sequence_id: '1', sender_id: '1', token: { text: 't' } };
  test.each([
    ['an unknown field', 'action', { ...base, fields: { actionid: 3 } }, /fields\.actionid: not a field of action \(its fields: action_id\)/],
    ['a value out of range', 'action', { ...base, fields: { action_id: 300 } }, /fields\.action_id: 300 is out of range \(0 to 255\)/],
    ['a missing field', 'syndicated_action', { ...base, fields: { action_id: 1 } }, /fields\.target_id: missing/],
    ['bad hex', 'data', { ...base, fields: { data_id: { hex: 'xyz' }, data: { hex: '00' } } }, /fields\.data_id\.hex: expected an even number of hex digits/],
    ['a 65-bit id', 'join_command', { ...base, fields: { device_id: '0x10000000000000000' } }, /fields\.device_id: .* out of range/],
    ['an unknown type', 'telepathy', base, /type: unknown message type "telepathy"/],
    ['a missing envelope', 'human_join_response', base, /encrypted: missing/],
    ['non-zero padding', 'syndicated_c2_request', { ...base, fields: { data: { hex: '' }, req_id: 1, padding_hex: '0001' } }, /fields\.padding_hex: the padding is always "0000"/],
    ['len disagreeing with hex', 'activate', { ...base, token: { len: 3, hex: 'aabb' } }, /token\.len: is 3 but the value has 2 bytes/],
  ])('%s is refused naming the field (exit status 1)', async (_what, type, fields, message) => {
    const out = join(tmp, 'refused.bin');
    rmSync(out, { force: true });
    const r = await srup(['encode', type as string, '--fields', JSON.stringify(fields), '--key', SIGNER_PRIVATE, '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
  });

  test('--fields that is not JSON is a usage-level error (exit status 2)', async () => {
    const r = await srup(['encode', 'activate', '--fields', '{sequence', '--key', SIGNER_PRIVATE, '-o', join(tmp, 'x.bin')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--fields is not valid JSON');
  });

  test('--key and -o are required', async () => {
    const r1 = await srup(['encode', 'activate', '--fields', JSON.stringify(base), '-o', join(tmp, 'x.bin')]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain('--key is required');
    const r2 = await srup(['encode', 'activate', '--fields', JSON.stringify(base), '--key', SIGNER_PRIVATE]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('--output is required');
  });
});

describe('JSON mapping (tools/lib/json.ts)', () => {
  const U64_MAX = (1n << 64n) - 1n;
  const valueOf: Record<string, fc.Arbitrary<unknown>> = {
    u8: fc.integer({ min: 0, max: 0xff }),
    u32: fc.integer({ min: 0, max: 0xffffffff }),
    u64: fc.bigInt({ min: 0n, max: U64_MAX }),
    bytes: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.string({ maxLength: 20 }).map((t) => new TextEncoder().encode(t))),
  };
  const messageArb = fc.constantFrom(...TYPE_NAMES).chain((type: TypeName) => {
    const fields: Record<string, fc.Arbitrary<unknown>> = {};
    for (const [name, kind] of typeInfo(type).fields) if (kind !== 'zero2') fields[name] = valueOf[kind];
    return fc.record({
      type: fc.constant(type),
      sequenceId: valueOf.u64,
      senderId: valueOf.u64,
      token: valueOf.bytes,
      signature: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      fields: fc.record(fields),
    }) as fc.Arbitrary<Message>;
  });

  test('every message of every type survives message -> JSON text -> message', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const bytes = encode(m);
        const text = JSON.stringify(messageJson(bytes, decode(bytes)));
        const back = parseMessageJson(JSON.parse(text));
        expect(encode({ ...back, signature: m.signature } as Message)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  test('--data-as shows a typed reading, and a payload of the wrong size is rejected as bad_data', async () => {
    const ok = await srup(['decode', join(VECTORS, 'vectors', 'data-07.bin'), '--key', SIGNER_PUBLIC, '--data-as', 'int16']);
    expect(JSON.parse(ok.stdout).fields.data.interpretation).toEqual({ type: 'int16', value: -300 });
    const bad = await srup(['decode', join(VECTORS, 'vectors', 'data-02.bin'), '--key', SIGNER_PUBLIC, '--data-as', 'int16']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ rejected: true, reason: 'bad_data' });
  });
});

describe('srup keygen', () => {
  test('writes a PKCS#8 private key (mode 0600) and an SPKI public key that belong together', async () => {
    const dir = join(tmp, 'keys-a');
    const r = await srup(['keygen', '--out', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const priv = join(dir, 'private.pem');
    const pub = join(dir, 'public.pem');
    expect(r.stdout).toBe(`private key: ${priv}\npublic key:  ${pub}\n`);
    expect(statSync(priv).mode & 0o777).toBe(0o600);
    expect(readFileSync(priv, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    expect(readFileSync(pub, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    // A 2048-bit key: a message signed with it carries a 256-byte signature and verifies with the public key.
    const msg = join(dir, 'msg.bin');
    const fields = { sequence_id: '1', sender_id: '0x4a0f000000000001', token: { text: 'k' } };
    expect((await srup(['encode', 'id_request', '--fields', JSON.stringify(fields), '--key', priv, '-o', msg])).code).toBe(0);
    const d = await srup(['decode', msg, '--key', pub]);
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout).signature.len).toBe(256);
  });

  test('refuses to overwrite existing keys unless --force', async () => {
    const dir = join(tmp, 'keys-b');
    expect((await srup(['keygen', '--out', dir])).code).toBe(0);
    const before = readFileSync(join(dir, 'private.pem'), 'utf8');
    const r = await srup(['keygen', '--out', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/private\.pem already exists; use --force/);
    expect(readFileSync(join(dir, 'private.pem'), 'utf8')).toBe(before);
    const f = await srup(['keygen', '--out', dir, '--force']);
    expect(f.code).toBe(0);
    expect(readFileSync(join(dir, 'private.pem'), 'utf8')).not.toBe(before);
    expect(statSync(join(dir, 'private.pem')).mode & 0o777).toBe(0o600);
  });

  test('--out is required', async () => {
    const r = await srup(['keygen']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--out is required');
  });
});

describe('srup', () => {
  test('--help lists the commands', async () => {
    const r = await srup(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: srup <command>/);
    for (const c of ['decode', 'encode', 'keygen']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  test('<command> --help shows its options', async () => {
    const r = await srup(['decode', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: srup decode FILE --key/);
    expect(r.stdout).toContain('--recipient-key PEM');
    const h = await srup(['help', 'encode']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Usage: srup encode/);
  });

  test('an unknown command prints the usage and exits 2', async () => {
    const r = await srup(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^srup: unknown command 'frobnicate'\n\nUsage: srup <command>/);
  });

  test('no command at all prints the usage and exits 2', async () => {
    const r = await srup([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Usage: srup <command>/);
  });

  test('an unknown option or a stray argument is a usage error', async () => {
    const r = await srup(['decode', 'x.bin', '--key', SIGNER_PUBLIC, '--frob']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^srup decode: Unknown option '--frob'/);
    const s = await srup(['keygen', '--out', join(tmp, 'k'), 'extra']);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain("unexpected argument 'extra'");
  });

  test('without the build, bin/srup.js says to run npm run build', async () => {
    const dir = join(tmp, 'unbuilt');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    copyFileSync(join(ROOT, 'bin', 'srup.js'), join(dir, 'bin', 'srup.js'));
    writeFileSync(join(dir, 'package.json'), '{"type": "module"}');
    const r = await srup(['--help'], { bin: join(dir, 'bin', 'srup.js') });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("run 'npm run build'");
  });
});
