/**
 * The device: reads the `srup` partition, builds the host (what differs per platform comes from
 * ./platform.js, chosen by manifest.json's `platforms`) and starts the agent.
 */
import config from 'mc/config';
import { Agent } from '../../modules/agent/agent.js';
import type { AgentHost } from '../../modules/agent/host.js';
import { idHex16, toHex } from '../../modules/srup/bytes.js';
import { FlashKeyStore, FlashSequenceStore } from '../../modules/store/flash-stores.js';
import { moddableClock, traceLog } from './clock.js';
import { moddableCrypto } from './crypto.js';
import { HttpDownloader } from './downloader.js';
import { heapUsed, makePresenter, makeUpdater, openFlash, PLATFORM, randomBytes, startHeapProbe, startNetwork } from './platform.js';
import { configureNetwork } from './network-config.js';
import { MqttTransport } from './transport.js';

const FIRMWARE_NAME = 'srup-agent';
const settings = config as { firmwareVersion?: string; srupJoin?: string };
const FIRMWARE_VERSION = settings.firmwareVersion ?? '0.1.0';
/**
 * mcconfig `srupJoin=simple|human`: join the record's server after the first connection, unless the device
 * has already accepted a message from it (bring-up and the simulator run).
 */
const JOIN_KIND = settings.srupJoin === 'simple' || settings.srupJoin === 'human' ? settings.srupJoin : null;

function line(s: string): void {
  trace(`srup: ${s}\n`);
}

async function main(): Promise<void> {
  startHeapProbe(line);
  const flash = openFlash();
  let keys: FlashKeyStore;
  let sequences: FlashSequenceStore;
  try {
    keys = new FlashKeyStore(flash);
    sequences = new FlashSequenceStore(flash);
  } catch (e) {
    // Not provisioned, or a partition written by a later firmware's format (after a rollback): the device
    // does not run on a guess.
    const why = (e as { reason?: string }).reason === 'not_provisioned' ? 'not provisioned' : 'cannot use the srup partition';
    line(`${why}: ${String(e)}`);
    return;
  }
  const rec = keys.record;
  line(`${PLATFORM} device ${idHex16(keys.deviceId)} broker ${rec.brokerUrl} heap ${heapUsed() ?? 'n/a'}`);
  await startNetwork(rec.wifi, line, rec.brokerUrl.startsWith('mqtts:'));
  configureNetwork(rec.ca, line, rec.dns ?? null);
  const host: AgentHost = {
    transport: new MqttTransport({ url: rec.brokerUrl, deviceId: keys.deviceId }),
    keys,
    sequences,
    clock: moddableClock,
    crypto: moddableCrypto,
    random: randomBytes,
    presenter: makePresenter(rec.presenter, line),
    downloader: new HttpDownloader(),
    updater: makeUpdater(),
    log: traceLog,
  };
  let joinAsked = false;
  const agent: Agent = new Agent(host, {
    firmwareName: FIRMWARE_NAME,
    firmwareVersion: FIRMWARE_VERSION,
    actions: { 0: () => (line('action 0'), true) },
    onEvent: (e) => {
      let s = `event ${e.type}`;
      for (const k in e) {
        if (k === 'type') continue;
        const v = (e as unknown as Record<string, unknown>)[k];
        s += ` ${k}=${typeof v === 'bigint' ? idHex16(v) : v instanceof Uint8Array ? toHex(v) : String(v)}`;
      }
      line(s);
      const server = keys.serverId();
      if (e.type === 'connected' && JOIN_KIND !== null && !joinAsked && server !== null && sequences.lastAccepted(server) === 0n) {
        joinAsked = true;
        agent.join(JOIN_KIND).then(
          (outcome) => line(`join ${JOIN_KIND} ${outcome}`),
          (err: unknown) => line(`join ${JOIN_KIND} error ${String(err)}`),
        );
      }
    },
  });
  agent.start();
  line(`started heap ${heapUsed() ?? 'n/a'}`);
}

// Not the module's default export: the runtime would call that a second time.
main().catch((e: unknown) => line(`fatal ${String(e)}`));
