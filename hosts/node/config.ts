/**
 * A device's configuration directory, as provisioning writes it:
 *
 *   device.json   {
 *                   "id": "<16 hex>",                  this device
 *                   "serverId": "<16 hex>" | null,     the C2 server it obeys (optional)
 *                   "broker": "mqtts://host:8883",     mqtt:// or mqtts://
 *                   "clientId": "...",                 optional (default "SRUP Client: <hex id>")
 *                   "username": "...",                 optional broker user name (docs/broker-acl.md)
 *                   "password": "..." | "passwordFile": "broker-password",   optional; without either, the
 *                                                      environment's SRUP_BROKER_PASSWORD (if set)
 *                   "joinTimeoutSeconds": 120,         optional: how long a join waits for its answer
 *                   "tls": { "ca": "ca.crt", "cert": "client.crt", "key": "client.key" },   optional
 *                   "downloadCa": "download-ca.crt",   optional trust anchor for https downloads
 *                   "firmware": { "name": "...", "version": "..." },
 *                   "stateDir": "state"                optional (default "state")
 *                 }
 *   private.pem   this device's RSA private key
 *   server.pem    the server's public key (when serverId is set)
 *   peers/<16 hex>.pem   further trusted peer keys (optional)
 *
 * File names inside device.json are relative to the directory. Every error names the file and field.
 */
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import nodeTls from 'node:tls';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../../crypto/keys.js';
import { HostFileError, hexToId, readJsonObject } from './durable.js';
import { srupClientId } from './mqtt.js';

export { HostFileError as ConfigError };

export interface DeviceConfig {
  /** The configuration directory. */
  dir: string;
  deviceId: bigint;
  serverId: bigint | null;
  brokerUrl: string;
  clientId: string;
  username?: string;
  password?: string;
  /** How long a join waits for the server's answer (undefined: the agent's default, 120 s). */
  joinTimeoutMs?: number;
  /** PEM contents (not paths), or undefined. */
  tls: { ca?: string; cert?: string; key?: string };
  downloadCa?: string;
  firmware: { name: string; version: string };
  privateKey: RsaPrivateKey;
  /** server.pem under serverId, and peers/*.pem. */
  peers: Map<bigint, RsaPublicKey>;
  /** Where the key store, sequence store and image slots live (absolute). */
  stateDir: string;
}

function readText(file: string, field: string | null): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HostFileError(file, field, code === 'ENOENT' ? 'missing' : `cannot read (${code ?? String(e)})`);
  }
}

/**
 * A trust anchor file must hold at least one PEM certificate, each one parseable. (OpenSSL takes any text as a
 * CA list without complaint, and every connection would then fail without naming the file.)
 */
function checkCertificates(file: string, text: string): void {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (blocks === null) throw new HostFileError(file, null, 'not a usable CA certificate (no PEM certificate in it)');
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (e) {
      throw new HostFileError(file, null, `not a usable CA certificate (${(e as Error).message})`);
    }
  }
}

export function loadDeviceConfig(dir: string, env: Record<string, string | undefined> = process.env): DeviceConfig {
  const abs = path.resolve(dir);
  const file = path.join(abs, 'device.json');
  const o = readJsonObject(file);
  const bad = (field: string, what: string): never => { throw new HostFileError(file, field, what); };
  const optString = (field: string, v: unknown): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.length === 0) bad(field, 'must be a non-empty string');
    return v as string;
  };

  const deviceId = hexToId(o.id);
  if (deviceId === null) bad('id', 'must be the device id as 16 hex digits');
  let serverId: bigint | null = null;
  if (o.serverId !== undefined && o.serverId !== null) {
    serverId = hexToId(o.serverId);
    if (serverId === null) bad('serverId', 'must be 16 hex digits or null');
  }
  let brokerOk = typeof o.broker === 'string' && /^(mqtts?|tcp|ssl|tls):\/\/[^/]+/.test(o.broker);
  try {
    // Parsed as the transport will parse it (a port past 65535, a broken IPv6 literal): named here, not at start.
    if (brokerOk && new URL(o.broker as string).hostname === '') brokerOk = false;
  } catch {
    brokerOk = false;
  }
  if (!brokerOk) bad('broker', 'must be a broker URL, mqtt://host[:port] or mqtts://host[:port]');
  const clientId = optString('clientId', o.clientId) ?? srupClientId(deviceId!);
  const username = optString('username', o.username);
  let password = optString('password', o.password);
  const passwordFileName = optString('passwordFile', o.passwordFile);
  if (password !== undefined && passwordFileName !== undefined) bad('passwordFile', 'give password or passwordFile, not both');
  if (passwordFileName !== undefined) password = readText(path.resolve(abs, passwordFileName), null).replace(/\r?\n$/, '');
  if (password === undefined && env.SRUP_BROKER_PASSWORD !== undefined && env.SRUP_BROKER_PASSWORD !== '') password = env.SRUP_BROKER_PASSWORD;
  let joinTimeoutMs: number | undefined;
  if (o.joinTimeoutSeconds !== undefined) {
    const t = o.joinTimeoutSeconds;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 1 || t > 86400) bad('joinTimeoutSeconds', 'must be a number of seconds from 1 to 86400');
    joinTimeoutMs = Math.round((t as number) * 1000);
  }

  const tls: DeviceConfig['tls'] = {};
  if (o.tls !== undefined && o.tls !== null) {
    if (typeof o.tls !== 'object' || Array.isArray(o.tls)) bad('tls', 'must be an object {ca, cert, key}');
    const t = o.tls as Record<string, unknown>;
    const files: Partial<Record<'ca' | 'cert' | 'key', string>> = {};
    for (const k of ['ca', 'cert', 'key'] as const) {
      const name = optString(`tls.${k}`, t[k]);
      if (name !== undefined) {
        files[k] = path.resolve(abs, name);
        tls[k] = readText(files[k]!, null);
      }
    }
    if ((tls.cert === undefined) !== (tls.key === undefined)) bad('tls', 'cert and key go together');
    // Let OpenSSL read them now, so that a bad file is named here rather than failing every connection later.
    if (tls.ca !== undefined) checkCertificates(files.ca!, tls.ca);
    try {
      if (tls.ca !== undefined) nodeTls.createSecureContext({ ca: tls.ca });
    } catch (e) {
      throw new HostFileError(files.ca!, null, `not a usable CA certificate (${(e as Error).message})`);
    }
    try {
      if (tls.cert !== undefined) nodeTls.createSecureContext({ cert: tls.cert, key: tls.key });
    } catch (e) {
      throw new HostFileError(`${files.cert!} / ${files.key!}`, null,
        `not a usable certificate and key pair (${(e as Error).message})`);
    }
  }
  const downloadCaName = optString('downloadCa', o.downloadCa);
  const downloadCaFile = downloadCaName === undefined ? undefined : path.resolve(abs, downloadCaName);
  const downloadCa = downloadCaFile === undefined ? undefined : readText(downloadCaFile, null);
  if (downloadCa !== undefined) checkCertificates(downloadCaFile!, downloadCa);

  const fw = o.firmware;
  if (typeof fw !== 'object' || fw === null || Array.isArray(fw)) bad('firmware', 'must be an object {name, version}');
  const f = fw as Record<string, unknown>;
  if (typeof f.name !== 'string' || f.name.length === 0) bad('firmware.name', 'must be a non-empty string');
  if (typeof f.version !== 'string' || f.version.length === 0) bad('firmware.version', 'must be a non-empty string');

  const stateDir = path.resolve(abs, optString('stateDir', o.stateDir) ?? 'state');

  const privateFile = path.join(abs, 'private.pem');
  let privateKey: RsaPrivateKey;
  try {
    privateKey = parsePrivateKeyPem(readText(privateFile, null));
  } catch (e) {
    if (e instanceof HostFileError) throw e;
    throw new HostFileError(privateFile, null, (e as Error).message);
  }

  const peers = new Map<bigint, RsaPublicKey>();
  const readPublic = (p: string): RsaPublicKey => {
    try {
      return parsePublicKeyPem(readText(p, null));
    } catch (e) {
      if (e instanceof HostFileError) throw e;
      throw new HostFileError(p, null, (e as Error).message);
    }
  };
  const serverFile = path.join(abs, 'server.pem');
  if (serverId !== null) peers.set(serverId, readPublic(serverFile));
  else if (fs.existsSync(serverFile)) bad('serverId', 'server.pem is present but serverId is not set');
  const peersDir = path.join(abs, 'peers');
  if (fs.existsSync(peersDir)) {
    for (const name of fs.readdirSync(peersDir).sort()) {
      if (!name.endsWith('.pem')) continue;
      const id = hexToId(name.slice(0, -4));
      if (id === null) throw new HostFileError(path.join(peersDir, name), null, 'name must be <16 hex digits>.pem');
      peers.set(id, readPublic(path.join(peersDir, name)));
    }
  }

  return {
    dir: abs,
    deviceId: deviceId!,
    serverId,
    brokerUrl: o.broker as string,
    clientId,
    username,
    password,
    joinTimeoutMs,
    tls,
    downloadCa,
    firmware: { name: f.name as string, version: f.version as string },
    privateKey,
    peers,
    stateDir,
  };
}
