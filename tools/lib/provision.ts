/**
 * Provisioning, the part without a command line: a device identity, its key-store record, the `srup`
 * partition image and where it goes in flash (from partitions.csv).
 */
import { pemDecode } from '../../crypto/keys.js';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { privateKeyToDer, publicKeyToDer } from '../../crypto/keys.js';
import { partitionImage } from '../../modules/store/flash-stores.js';
import { DEFAULT_LAYOUT, SRUP_PARTITION_SIZE } from '../../modules/store/flash.js';
import type { DeviceRecord, PresenterSettings } from '../../modules/store/record.js';

/**
 * A 64-bit device id formed as the reference forms it: the top 64 bits of a random (version 4) UUID, so the
 * 13th of the 16 hex digits is always 4.
 */
export function deviceIdFromRandom(random16: Uint8Array): bigint {
  if (random16.length < 8) throw new RangeError('need at least 8 random bytes');
  const b = random16.slice(0, 8);
  b[6] = (b[6] & 0x0f) | 0x40; // UUID version 4
  let id = 0n;
  for (const x of b) id = (id << 8n) | BigInt(x);
  return id;
}

export interface PartitionEntry {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

function parseSize(v: string): number {
  const t = v.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return parseInt(t, 16);
  if (/^\d+[kK]$/.test(t)) return parseInt(t) * 1024;
  if (/^\d+[mM]$/.test(t)) return parseInt(t) * 1024 * 1024;
  if (/^\d+$/.test(t)) return parseInt(t, 10);
  return NaN;
}

/** The named partition of an ESP-IDF partitions.csv; null when absent. Throws when it has no explicit offset. */
export function findPartition(csv: string, name: string): PartitionEntry | null {
  for (const raw of csv.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const f = line.split(',').map((s) => s.trim());
    if (f[0] !== name) continue;
    const offset = parseSize(f[3] ?? '');
    const size = parseSize(f[4] ?? '');
    if (!Number.isFinite(offset) || !Number.isFinite(size))
      throw new Error(`partition ${name} needs an explicit offset and size in partitions.csv`);
    return { name, offset, size };
  }
  return null;
}

export function esptoolLine(offset: number, file: string): string {
  return `esptool.py write_flash 0x${offset.toString(16)} ${file}`;
}

/** A CA given as PEM becomes the DER of its first certificate (smaller in the record); DER stays as it is. */
export function caBytes(input: Uint8Array): Uint8Array {
  const text = new TextDecoder('latin1').decode(input);
  if (!text.includes('-----BEGIN')) return input;
  const m = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(text);
  if (m === null) throw new Error('the CA file is PEM but holds no CERTIFICATE');
  return pemDecode(m[0]).der;
}

export interface ProvisionInput {
  readonly deviceId: bigint;
  readonly privateKey: RsaPrivateKey;
  readonly serverId: bigint;
  readonly serverKey: RsaPublicKey;
  readonly brokerUrl: string;
  readonly ca: Uint8Array | null;
  readonly wifi: { ssid: string; password: string } | null;
  readonly presenter: PresenterSettings;
  /** DNS servers that replace the network's (absent: the network's own). */
  readonly dns?: readonly string[];
  /** Seconds a join waits for its answer (absent: the agent's default, 120). */
  readonly joinTimeoutSeconds?: number;
}

export function provisionRecord(p: ProvisionInput): DeviceRecord {
  return {
    deviceId: p.deviceId,
    privateKey: privateKeyToDer(p.privateKey),
    serverId: p.serverId,
    peers: [{ id: p.serverId, der: publicKeyToDer(p.serverKey) }],
    brokerUrl: p.brokerUrl,
    ca: p.ca,
    wifi: p.wifi,
    presenter: p.presenter,
    ...(p.dns === undefined || p.dns.length === 0 ? {} : { dns: p.dns }),
    ...(p.joinTimeoutSeconds === undefined ? {} : { joinTimeoutSeconds: p.joinTimeoutSeconds }),
  };
}

/** The whole `srup` partition: the record in slot A (generation 1), everything else erased. */
export function provisionImage(p: ProvisionInput, partitionSize = SRUP_PARTITION_SIZE): Uint8Array {
  if (partitionSize < (DEFAULT_LAYOUT.logFirstBlock + DEFAULT_LAYOUT.logBlocks) * 4096)
    throw new Error(`the srup partition must be at least 0x${((DEFAULT_LAYOUT.logFirstBlock + DEFAULT_LAYOUT.logBlocks) * 4096).toString(16)} bytes`);
  return partitionImage(provisionRecord(p), partitionSize);
}
