/**
 * The device API on Node (`import { openNodeDevice } from 'srup-agent/device'`): a SRUP device on a Linux
 * gateway, a Raspberry Pi or any computer, from a configuration directory made by `srup device init`. The same
 * Device as on the firmware (modules/device); this file only builds its host (hosts/node/host.ts).
 *
 *   const device = openNodeDevice('dev1', { name: 'greenhouse', version: '1.2.0', join: 'simple' });
 *   device.onAction(1, () => relay.on());
 *   device.onData('setpoint', 'double', (v) => { setpoint = v; });
 *   await device.start();
 *   setInterval(() => device.sendData('temperature', sensor.read(), 'double').catch(console.error), 10_000);
 */
import type { Writable } from 'node:stream';
import type { Log } from '../../modules/agent/host.js';
import { Device, type DeviceOptions } from '../../modules/device/device.js';
import { loadDeviceConfig, type DeviceConfig } from './config.js';
import { consoleLog, createNodeHost } from './host.js';

export { AgentError, Device, defaultDataKind } from '../../modules/device/device.js';
export type { ActionHandler, AgentEvent, DataKind, DataValue, DeviceEvent, DeviceOptions, JoinKind, JoinOutcome } from '../../modules/device/device.js';
export { consoleLog } from './host.js';
export type { Log, LogLevel } from '../../modules/agent/host.js';

export interface NodeDeviceOptions extends Omit<DeviceOptions, 'name' | 'version'> {
  /** Default: `firmware.name` and `firmware.version` of device.json. */
  name?: string;
  version?: string;
  /** Where the device logs (default: one JSON line per event on stderr, from 'info'). */
  log?: Log;
  /** Where a join challenge is drawn (default stdout). */
  out?: Writable;
  /** What an activated update does once the switch is durable (default: exit with status 75, as `srup device`). */
  restart?: () => void;
}

/** A Device over the configuration directory `dir` (or a loaded configuration); call start() to connect. */
export function openNodeDevice(dir: string | DeviceConfig, options: NodeDeviceOptions = {}): Device {
  const config = typeof dir === 'string' ? loadDeviceConfig(dir) : dir;
  const log = options.log ?? consoleLog();
  const host = createNodeHost(config, { log, out: options.out, restart: options.restart });
  return new Device(host, {
    ...options,
    name: options.name ?? config.firmware.name,
    version: options.version ?? config.firmware.version,
  });
}
