/**
 * `srup provision`: a new device identity (64-bit id, RSA-2048 key pair) and everything the device needs to
 * reach and obey its C2 server, written as
 *   DIR/srup-partition.bin   the ESP32 `srup` partition image, flashed with the printed esptool line
 *   DIR/srup-sim.bin         the same image for the simulator (it writes its counter log into this file)
 *   DIR/device.json          the device's id and public key for the C2 registry
 *   DIR/device-public.pem    the device's public key
 * The private key exists only inside the two images.
 */
import { deviceAclLines } from '../c2/acl.js';
import { randomBytes } from 'node:crypto';
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { makeDirs } from '../../hosts/node/durable.js';
import { join } from 'node:path';
import { generateRsaKeyPair } from '../../hosts/node/crypto.js';
import { idHex16, parseIdHex } from '../../modules/srup/bytes.js';
import { SRUP_PARTITION_SIZE } from '../../modules/store/flash.js';
import { DEFAULT_PRESENTER, MAX_DNS_SERVERS, MAX_JOIN_TIMEOUT_SECONDS, encodeDns, type PresenterSettings, type Rotation } from '../../modules/store/record.js';
import { CliError, UsageError, optBoolean, optString, requireString, type Command } from '../lib/cli.js';
import { loadPublicKey, readBytes, readText } from '../lib/files.js';
import { caBytes, deviceIdFromRandom, esptoolLine, findPartition, provisionImage } from '../lib/provision.js';

export const IMAGE_FILE = 'srup-partition.bin';
export const SIM_IMAGE_FILE = 'srup-sim.bin';
export const REGISTRY_FILE = 'device.json';
export const PUBLIC_KEY_FILE = 'device-public.pem';
/** Where partitions.csv puts `srup` when no partitions file is given or found. */
export const DEFAULT_SRUP_OFFSET = 0x12000;

function pinOption(values: Record<string, unknown>, name: string): number | null {
  const v = optString(values as never, name);
  if (v === undefined) return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 48) throw new UsageError(`--${name} must be a GPIO number (0-48)`);
  return n;
}

/**
 * Writes a file holding the private key, readable by its owner only. A file being replaced (--force) is removed
 * first: the mode given when writing applies only to a file that is created, and the old file may be readable
 * by others (or be a link to somewhere else).
 */
function writeSecret(path: string, bytes: Uint8Array): void {
  if (existsSync(path)) unlinkSync(path);
  writeFileSync(path, bytes, { mode: 0o600, flag: 'wx' });
}

export const provisionCommand: Command = {
  name: 'provision',
  summary: 'Create a device identity and its srup partition image (ESP32 and simulator).',
  synopsis: '--out DIR --server-id HEX --server-key PEM --broker URL [options]',
  positionals: { min: 0, max: 0 },
  options: {
    out: { type: 'string', value: 'DIR', description: 'directory for the images, device.json and device-public.pem' },
    'server-id': { type: 'string', value: 'HEX', description: 'the C2 server\'s 64-bit id' },
    'server-key': { type: 'string', value: 'PEM', description: 'the C2 server\'s RSA public key' },
    broker: { type: 'string', value: 'URL', description: 'MQTT broker, mqtts://host:port (or mqtt:// for a lab)' },
    ca: { type: 'string', value: 'FILE', description: 'the broker\'s CA certificate (PEM or DER)' },
    'wifi-ssid': { type: 'string', value: 'SSID', description: 'Wi-Fi network' },
    'wifi-password': { type: 'string', value: 'TEXT', description: 'Wi-Fi password' },
    dns: { type: 'string', value: 'IP,IP', description: `DNS servers (1-${MAX_DNS_SERVERS} IPv4) instead of the network's (DHCP)` },
    'join-timeout': { type: 'string', value: 'S', description: `seconds a join waits for its answer, 1-${MAX_JOIN_TIMEOUT_SECONDS} (default 120; give the C2 server the same)` },
    'led-pin': { type: 'string', value: 'GPIO', description: 'GPIO of the challenge LED' },
    'led-active-low': { type: 'boolean', description: 'the LED lights when the pin is low' },
    'matrix-pin': { type: 'string', value: 'GPIO', description: 'data GPIO of an 8x8 WS2812 matrix' },
    'matrix-layout': { type: 'string', value: 'KIND', description: 'serpentine (default) or progressive wiring' },
    'matrix-rotation': { type: 'string', value: 'DEG', description: '0, 90, 180 or 270 (clockwise)' },
    brightness: { type: 'string', value: 'N', description: `brightness cap per channel, 1-255 (default ${DEFAULT_PRESENTER.brightnessCap})` },
    partitions: { type: 'string', value: 'CSV', description: 'partition table (default: ./partitions.csv)' },
    force: { type: 'boolean', description: 'replace existing files in DIR' },
  },
  details: `Writes DIR/${IMAGE_FILE}, DIR/${SIM_IMAGE_FILE}, DIR/${REGISTRY_FILE} and DIR/${PUBLIC_KEY_FILE}, then prints
the device id and the esptool line that writes the image at the srup partition's offset.

Exit status: 0 written, 1 files exist and --force was not given, 2 usage error or unreadable input.`,

  run({ values }, { stdout }) {
    const dir = requireString(values, 'out');
    const serverId = parseIdHex(requireString(values, 'server-id'));
    if (serverId === null) throw new UsageError('--server-id must be 1-16 hex digits');
    const serverKey = loadPublicKey(requireString(values, 'server-key'), '--server-key');
    const brokerUrl = requireString(values, 'broker');
    if (!/^mqtts?:\/\/[^/:]+(:\d+)?\/?$/.test(brokerUrl)) throw new UsageError('--broker must look like mqtts://host:port');
    const caPath = optString(values, 'ca');
    let ca: Uint8Array | null = null;
    if (caPath !== undefined) {
      try {
        ca = caBytes(readBytes(caPath, '--ca file'));
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(`--ca ${caPath}: ${e instanceof Error ? e.message : String(e)}`, 2);
      }
    }
    const ssid = optString(values, 'wifi-ssid');
    const wifi = ssid === undefined ? null : { ssid, password: optString(values, 'wifi-password') ?? '' };
    const dnsText = optString(values, 'dns');
    let dns: string[] | undefined;
    if (dnsText !== undefined) {
      dns = dnsText.split(',').map((a) => a.trim());
      try {
        encodeDns(dns);
      } catch (e) {
        throw new UsageError(`--dns: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    const joinTimeoutText = optString(values, 'join-timeout');
    let joinTimeoutSeconds: number | undefined;
    if (joinTimeoutText !== undefined) {
      joinTimeoutSeconds = Number(joinTimeoutText);
      if (!/^\d+$/.test(joinTimeoutText.trim()) || joinTimeoutSeconds < 1 || joinTimeoutSeconds > MAX_JOIN_TIMEOUT_SECONDS) {
        throw new UsageError(`--join-timeout must be a whole number of seconds from 1 to ${MAX_JOIN_TIMEOUT_SECONDS}`);
      }
    }
    const layout = optString(values, 'matrix-layout') ?? DEFAULT_PRESENTER.matrixLayout;
    if (layout !== 'serpentine' && layout !== 'progressive') throw new UsageError('--matrix-layout must be serpentine or progressive');
    const rotation = Number(optString(values, 'matrix-rotation') ?? '0');
    if (![0, 90, 180, 270].includes(rotation)) throw new UsageError('--matrix-rotation must be 0, 90, 180 or 270');
    const brightness = Number(optString(values, 'brightness') ?? String(DEFAULT_PRESENTER.brightnessCap));
    if (!Number.isInteger(brightness) || brightness < 1 || brightness > 255) throw new UsageError('--brightness must be 1-255');
    const presenter: PresenterSettings = {
      ledPin: pinOption(values, 'led-pin'),
      ledActiveLow: optBoolean(values, 'led-active-low'),
      matrixPin: pinOption(values, 'matrix-pin'),
      matrixLayout: layout,
      matrixRotation: rotation as Rotation,
      brightnessCap: brightness,
    };

    const csvPath = optString(values, 'partitions') ?? (existsSync('partitions.csv') ? 'partitions.csv' : undefined);
    let offset = DEFAULT_SRUP_OFFSET;
    let size = SRUP_PARTITION_SIZE;
    if (csvPath !== undefined) {
      let entry;
      try {
        entry = findPartition(readText(csvPath, 'partition table'), 'srup');
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(`${csvPath}: ${e instanceof Error ? e.message : String(e)}`, 2);
      }
      if (entry === null) throw new CliError(`${csvPath} has no srup partition`, 2);
      offset = entry.offset;
      size = entry.size;
    }

    const files = [IMAGE_FILE, SIM_IMAGE_FILE, REGISTRY_FILE, PUBLIC_KEY_FILE].map((f) => join(dir, f));
    if (!optBoolean(values, 'force')) {
      for (const f of files) if (existsSync(f)) throw new CliError(`${f} already exists; use --force to replace it`, 1);
    }

    const deviceId = deviceIdFromRandom(new Uint8Array(randomBytes(16)));
    const pair = generateRsaKeyPair(2048);
    let image: Uint8Array;
    try {
      image = provisionImage({ deviceId, privateKey: pair.privateKey, serverId, serverKey, brokerUrl, ca, wifi, presenter, dns, joinTimeoutSeconds }, size);
    } catch (e) {
      throw new CliError(`cannot build the record: ${e instanceof Error ? e.message : String(e)}`, 2);
    }
    const registry = {
      id: idHex16(deviceId),
      publicKey: pair.publicPem,
      server: idHex16(serverId),
      broker: brokerUrl,
      ...(joinTimeoutSeconds === undefined ? {} : { joinTimeoutSeconds }),
    };
    try {
      makeDirs(dir);
      writeSecret(files[0], image);
      writeSecret(files[1], image);
      writeFileSync(files[2], JSON.stringify(registry, null, 2) + '\n');
      writeFileSync(files[3], pair.publicPem);
    } catch (e) {
      throw new CliError(`cannot write to ${dir}: ${e instanceof Error ? e.message : String(e)}`, 2);
    }
    stdout.write(
      `device id: ${idHex16(deviceId)}\n` +
        `partition image: ${files[0]} (srup at 0x${offset.toString(16)}, 0x${size.toString(16)} bytes)\n` +
        `simulator image: ${files[1]}\n` +
        `registry: ${files[2]} and ${files[3]}\n` +
        `flash with: ${esptoolLine(offset, files[0])}\n` +
        `broker access rules for this device (Mosquitto acl_file; see docs/broker-acl.md):\n` +
        deviceAclLines(deviceId, serverId).trimEnd().replace(/^/gm, '  ') + '\n',
    );
    return 0;
  },
};

/** For callers without the dispatcher: runs the command on argv and returns its exit status. */
export async function run(argv: string[]): Promise<number> {
  const { parseCommandArgs, commandHelp } = await import('../lib/cli.js');
  const args = parseCommandArgs(provisionCommand, argv);
  if (args.help) {
    process.stdout.write(commandHelp(provisionCommand));
    return 0;
  }
  return provisionCommand.run(args, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
}
