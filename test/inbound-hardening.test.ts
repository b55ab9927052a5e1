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
import { admitMessage, openMessage, sealMessage, type Admission, type SenderView } from '../modules/srup/session.js';
import mqtt from 'mqtt';
import os from 'node:os';
import { Writable } from 'node:stream';
import { main } from '../tools/srup.js';
import { DEFAULT_C2_USER, deviceAclLines, deviceUser, mosquittoAcl, serverAclLines } from '../tools/c2/acl.js';
import { findMosquitto, startMosquitto } from './support/mosquitto.js';

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

/** A side that trusts SERVER: what it reads of a sender, and the sequence IDs it persisted. */
function rules(crypto: Crypto, last: bigint) {
  const accepted: bigint[] = [];
  return {
    accepted,
    crypto,
    read: (sender: bigint): SenderView<true> =>
      sender === SERVER
        ? { peer: true, key: signer.publicKey, lastAccepted: accepted.length ? accepted[accepted.length - 1] : last }
        : { peer: null, key: null, lastAccepted: 0n },
  };
}

/** The decisions, applied as a side applies them: read the sender between them, persist what they say. */
function admit(r: ReturnType<typeof rules>, bytes: Uint8Array): Admission<true> {
  const o = openMessage(DEVICE, bytes);
  const a = o.ok ? admitMessage(r.crypto, o.message, r.read(o.message.senderId)) : o;
  if (a.ok) r.accepted.push(a.persist.sequenceId);
  return a;
}

function action(seq: bigint, key = signer, sender = SERVER): Uint8Array {
  return sealMessage(nodeCrypto, key, { type: 'action', sequenceId: seq, senderId: sender, token: utf8('t'), fields: { actionId: 1 } });
}

describe('refused before RSA', () => {
  test('a forgery that reuses a seen sequence ID is refused as a replay without a signature check', () => {
    const crypto = countingCrypto();
    const r = rules(crypto, 100n);
    for (const seq of [1n, 50n, 100n]) {
      const a = admit(r, action(seq, other));
      expect(a).toMatchObject({ ok: false, reason: 'replay', detail: { last: '100' } });
    }
    expect(crypto.verifies).toBe(0);
    expect(r.accepted).toEqual([]);
  });

  test('unknown senders and malformed bytes cost no signature check; a fresh forgery costs one and changes nothing', () => {
    const crypto = countingCrypto();
    const r = rules(crypto, 100n);
    expect(admit(r, action(101n, other, 0x99n))).toMatchObject({ ok: false, reason: 'unknown_sender' });
    expect(admit(r, new Uint8Array([5, 0x0f, 1]))).toMatchObject({ ok: false, reason: 'truncated' });
    expect(crypto.verifies).toBe(0);
    expect(admit(r, action(101n, other))).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(crypto.verifies).toBe(1);
    expect(admit(r, action(101n))).toMatchObject({ ok: true });
    expect(r.accepted).toEqual([101n]);
  });
});

const describeIf = findMosquitto() ? describe : describe.skip;
if (!findMosquitto()) process.stderr.write('broker ACL test skipped: no mosquitto binary (apt-get install -y mosquitto)\n');

describeIf('the broker access rules', () => {
  test('with the rules `srup c2 acl` prints, only the server reaches a device and only the device reaches the server\'s join topic', async () => {
    const device = 0x4a0fn;
    const rogue = 0xbad1n;
    const acl = mosquittoAcl(SERVER, [device, rogue]);
    const broker = await startMosquitto({ auth: { users: { [DEFAULT_C2_USER]: 'c2-pw', [deviceUser(device)]: 'dev-pw', [deviceUser(rogue)]: 'rogue-pw' }, acl } });
    const connect = (username: string, password: string) =>
      mqtt.connectAsync(broker.url, { username, password, clientId: `test-${username}`, reconnectPeriod: 0 });
    const c2 = await connect(DEFAULT_C2_USER, 'c2-pw');
    const dev = await connect(deviceUser(device), 'dev-pw');
    const bad = await connect(deviceUser(rogue), 'rogue-pw');
    try {
      const atDevice: string[] = [];
      const atServer: string[] = [];
      dev.on('message', (_t, p) => atDevice.push(p.toString()));
      c2.on('message', (_t, p) => atServer.push(p.toString()));
      await dev.subscribeAsync(`SRUP/${deviceUser(device)}`, { qos: 1 });
      await c2.subscribeAsync(`SRUP/servers/${SERVER.toString(16)}/#`, { qos: 1 });
      // The rogue client publishes a command to the device, and a join request in the device's name: the broker
      // takes both (MQTT 3.1.1 has no way to say no) and delivers neither.
      await bad.publishAsync(`SRUP/${deviceUser(device)}`, 'forged command', { qos: 1 });
      await bad.publishAsync(`SRUP/servers/${SERVER.toString(16)}/${deviceUser(device)}`, 'forged join', { qos: 1 });
      await c2.publishAsync(`SRUP/${deviceUser(device)}`, 'real command', { qos: 1 });
      await dev.publishAsync(`SRUP/servers/${SERVER.toString(16)}/${deviceUser(device)}`, 'real join', { qos: 1 });
      const end = Date.now() + 10000;
      while ((atDevice.length === 0 || atServer.length === 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(atDevice).toEqual(['real command']);
      expect(atServer).toEqual(['real join']);
    } finally {
      await Promise.all([c2.endAsync(), dev.endAsync(), bad.endAsync()]);
      await broker.dispose();
    }
  }, 30000);

  test('srup c2 acl prints the rules for the server and a device', async () => {
    expect(deviceAclLines(0x4a0fn, SERVER)).toBe('# device 4a0f\nuser 4a0f\ntopic readwrite SRUP/4a0f\ntopic write SRUP/servers/5e4e3/4a0f\n');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srup-acl-'));
    try {
      fs.writeFileSync(path.join(dir, 'server.json'), JSON.stringify({ id: '000000000005e4e3' }));
      let out = '';
      const stdout = new Writable({ write(c, _e, cb) { out += c.toString(); cb(); } });
      expect(await main(['c2', 'acl', '4a0f', '--data', dir], { stdout: stdout as never, stderr: stdout as never })).toBe(0);
      expect(out).toBe(mosquittoAcl(SERVER, [0x4a0fn]));
      expect(out).toContain(serverAclLines() + '\n' + deviceAclLines(0x4a0fn, SERVER));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('admission is a decision', () => {
  test('openMessage and admitMessage take values and call nothing of the side: the side reads between them and persists', () => {
    const o = openMessage(DEVICE, action(8n));
    if (!o.ok) throw new Error('did not open');
    expect(o.message).toMatchObject({ type: 'action', senderId: SERVER, sequenceId: 8n });
    const view = Object.freeze({ peer: true as const, key: signer.publicKey, lastAccepted: 7n });
    expect(admitMessage(nodeCrypto, o.message, view)).toMatchObject({ ok: true, peer: true, persist: { sender: SERVER, sequenceId: 8n } });
    expect(admitMessage(nodeCrypto, o.message, { ...view, lastAccepted: 8n })).toMatchObject({ ok: false, reason: 'replay', detail: { last: '8' } });
    // Our own message come back, and bytes that do not decode, are refused before the side reads anything.
    expect(openMessage(SERVER, action(9n))).toEqual({ ok: false, reason: null, message: null, detail: {} });
    expect(openMessage(DEVICE, new Uint8Array([5, 0x0f, 1]))).toMatchObject({ ok: false, reason: 'truncated', message: null });
  });
});
