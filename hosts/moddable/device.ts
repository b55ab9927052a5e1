/**
 * The device API on the firmware: `openDevice` starts the device from its `srup` flash partition (identity,
 * keys, server, broker, CA, Wi-Fi, presenter settings as `srup provision` wrote them), brings the network up and
 * hands back a Device (modules/device) for the application's handlers. What differs between the ESP32 and the
 * simulator comes from `hosts/moddable/platform` (modules/device/manifest.json `platforms`).
 *
 *   import { openDevice } from 'hosts/moddable/device';
 *   const device = await openDevice({ name: 'sensor', version: '1.0.0', join: 'human' });
 *   if (device) { device.onAction(1, () => led.blink()); await device.start(); }
 */
import { Device, type DeviceOptions } from '../../modules/device/device.js';
import type { AgentHost, Presenter } from '../../modules/agent/host.js';
import { idHex16 } from '../../modules/srup/bytes.js';
import { FlashKeyStore, FlashSequenceStore } from '../../modules/store/flash-stores.js';
import type { DeviceRecord } from '../../modules/store/record.js';
import { moddableClock, traceLog } from './clock.js';
import { moddableCrypto } from './crypto.js';
import { HttpDownloader } from './downloader.js';
import { configureNetwork } from './network-config.js';
import { heapUsed, makePresenter, makeUpdater, openFlash, PLATFORM, randomBytes, startNetwork } from './platform.js';
import { MqttTransport } from './transport.js';

export interface ModdableDeviceOptions extends DeviceOptions {
  /** One line of the device's own output (default: trace as "srup: <line>"). */
  line?: (s: string) => void;
  /** What shows the join challenge (default: the LED or matrix the partition names; the screen on the simulator). */
  presenter?: (record: DeviceRecord, line: (s: string) => void) => Presenter;
}

/** Where the device's own lines go by default. */
export function srupLine(s: string): void {
  trace(`srup: ${s}\n`);
}

/**
 * Opens the `srup` partition, starts the network and builds the device; resolves with the Device (not started:
 * register handlers, then start()), or null when the partition cannot be used (not provisioned, or written by a
 * later firmware's format): the device does not run on a guess; the reason is logged.
 */
export async function openDevice(options: ModdableDeviceOptions): Promise<Device | null> {
  const line = options.line ?? srupLine;
  const flash = openFlash();
  let keys: FlashKeyStore;
  let sequences: FlashSequenceStore;
  try {
    keys = new FlashKeyStore(flash);
    sequences = new FlashSequenceStore(flash);
  } catch (e) {
    const why = (e as { reason?: string }).reason === 'not_provisioned' ? 'not provisioned' : 'cannot use the srup partition';
    line(`${why}: ${String(e)}`);
    return null;
  }
  const rec = keys.record;
  // The join timeout provisioned in the record (srup provision --join-timeout), unless the application sets one.
  const joinTimeoutMs = options.joinTimeoutMs ?? (rec.joinTimeoutSeconds === undefined ? undefined : rec.joinTimeoutSeconds * 1000);
  const joinTimeout = joinTimeoutMs === undefined ? 'default' : `${joinTimeoutMs / 1000} s`;
  line(`${PLATFORM} device ${idHex16(keys.deviceId)} broker ${rec.brokerUrl} join timeout ${joinTimeout} heap ${heapUsed() ?? 'n/a'}`);
  await startNetwork(rec.wifi, line, rec.brokerUrl.startsWith('mqtts:'));
  configureNetwork(rec.ca, line, rec.dns ?? null);
  const host: AgentHost = {
    transport: new MqttTransport({ url: rec.brokerUrl, deviceId: keys.deviceId }),
    keys,
    sequences,
    clock: moddableClock,
    crypto: moddableCrypto,
    random: randomBytes,
    presenter: options.presenter ? options.presenter(rec, line) : makePresenter(rec.presenter, line),
    downloader: new HttpDownloader(),
    updater: makeUpdater(),
    log: traceLog,
  };
  return new Device(host, joinTimeoutMs === options.joinTimeoutMs ? options : { ...options, joinTimeoutMs });
}
