/**
 * The default firmware: the device API (hosts/moddable/device.ts over modules/device) with one action (0) and
 * the device's events as log lines. A user's own firmware is an application like this one, or like
 * examples/sensor, that includes modules/device/manifest.json.
 */
import config from 'mc/config';
import { idHex16, toHex } from '../../modules/srup/bytes.js';
import type { DeviceEvent } from '../../modules/device/device.js';
import { openDevice, srupLine as line } from './device.js';
import { heapUsed, startHeapProbe } from './platform.js';

const settings = config as { firmwareVersion?: string; srupJoin?: string };
/**
 * mcconfig `srupJoin=simple|human`: join the record's server after the first connection, unless the device
 * has already accepted a message from it (bring-up and the simulator run).
 */
const JOIN_KIND = settings.srupJoin === 'simple' || settings.srupJoin === 'human' ? settings.srupJoin : 'none';

/** One line per event: `event <type> key=value ...`, ids as 16 hex digits, byte strings in hex. */
function eventLine(e: DeviceEvent): string {
  let s = `event ${e.type}`;
  for (const k in e) {
    if (k === 'type') continue;
    const v = (e as unknown as Record<string, unknown>)[k];
    s += ` ${k}=${typeof v === 'bigint' ? idHex16(v) : v instanceof Uint8Array ? toHex(v) : String(v)}`;
  }
  return s;
}

async function main(): Promise<void> {
  startHeapProbe(line);
  const device = await openDevice({
    name: 'srup-agent',
    version: settings.firmwareVersion ?? '0.1.0',
    join: JOIN_KIND,
    onEvent: (e) => {
      if (e.type === 'rejected') return; // logged by the receive pipeline
      line(eventLine(e));
      if (e.type === 'joined' && e.via !== 'join_command') line(`join ${e.via} joined`);
      if (e.type === 'join_refused') line(`join ${e.kind} refused`);
      if (e.type === 'join_failed') line(`join ${e.kind} ${e.reason}`);
    },
  });
  if (device === null) return;
  device.onAction(0, () => void line('action 0'));
  device.start().catch((e: unknown) => line(`not ready: ${String(e)}`));
  line(`started heap ${heapUsed() ?? 'n/a'}`);
}

// Not the module's default export: the runtime would call that a second time.
main().catch((e: unknown) => line(`fatal ${String(e)}`));
