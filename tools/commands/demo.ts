/**
 * `srup demo` (and `npm start`): the whole system on one machine with nothing else installed — an embedded MQTT
 * broker (aedes) on a free loopback port, the C2 server with its console, and N virtual devices running the
 * real agent, provisioned automatically and joining (the first one human-moderated, its challenge drawn in this
 * terminal, waiting for the operator's approval in the console).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { idToHex } from '../../hosts/node/durable.js';
import { consoleLog } from '../../hosts/node/host.js';
import { C2App, DEFAULT_HTTP_PORT } from '../c2/app.js';
import { demoImage, provisionVirtualDevice, VirtualDevice } from '../c2/virtual.js';
import { CliError, UsageError, optBoolean, optString, untilInterrupted, type Command } from '../lib/cli.js';

export const DEFAULT_DEMO_DIR = 'srup-demo';

interface EmbeddedBroker {
  readonly url: string;
  close(): Promise<void>;
}

async function startAedes(): Promise<EmbeddedBroker> {
  let Aedes: typeof import('aedes').Aedes;
  try {
    ({ Aedes } = await import('aedes'));
  } catch (e) {
    throw new CliError(`cannot load the embedded broker (npm package aedes): ${(e as Error).message}; give --broker URL instead`, 2);
  }
  const broker = await Aedes.createBroker();
  const server = net.createServer((socket) => broker.handle(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close();
        broker.close(() => resolve());
      }),
  };
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run a broker, the C2 server and console, and virtual devices: the whole system on this machine.',
  synopsis: '[--virtual-devices N] [--data DIR] [--broker URL] [--http PORT]',
  positionals: { min: 0, max: 0 },
  options: {
    'virtual-devices': { type: 'string', value: 'N', description: 'how many virtual devices to run (default 3, 0-500)' },
    data: { type: 'string', value: 'DIR', description: `where the server and the devices keep their files (default ./${DEFAULT_DEMO_DIR})` },
    broker: { type: 'string', value: 'URL', description: 'use this MQTT broker instead of the embedded one' },
    http: { type: 'string', value: 'PORT', description: `console port on 127.0.0.1 (default ${DEFAULT_HTTP_PORT}, or a free one if taken)` },
    fresh: { type: 'boolean', description: 'delete the data directory first (new server identity and devices)' },
    verbose: { type: 'boolean', description: 'log every server event to the terminal (default: to DIR/c2.log)' },
  },
  details: `The first virtual device asks for a human-moderated join: its challenge (8x8 grid and blink code) is printed
here, and the console shows the same challenge under "Joins" — compare them and press Approve. The other
devices join at once. Then select devices under "Devices", start a campaign with DIR/firmware-1.1.0.bin,
activate it, and watch the devices restart and confirm (0x10). The data directory is reused on the next start (devices stay joined).

The login token is printed on every start (the demo makes a new one each time). Stop with Ctrl-C.`,

  async run({ values }, { stdout }) {
    const n = Number(optString(values, 'virtual-devices') ?? '3');
    if (!Number.isInteger(n) || n < 0 || n > 500) throw new UsageError('--virtual-devices must be 0..500');
    const dir = path.resolve(optString(values, 'data') ?? DEFAULT_DEMO_DIR);
    let port = DEFAULT_HTTP_PORT;
    const portText = optString(values, 'http');
    if (portText !== undefined) {
      port = Number(portText);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--http must be a port number');
    }
    const say = (s: string) => stdout.write(s + '\n');
    if (optBoolean(values, 'fresh')) fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });

    let broker: EmbeddedBroker | null = null;
    let brokerUrl = optString(values, 'broker');
    if (brokerUrl === undefined) {
      stdout.write('Starting the embedded MQTT broker… ');
      broker = await startAedes();
      brokerUrl = broker.url;
      say(brokerUrl);
    } else say(`Using the MQTT broker at ${brokerUrl}`);

    const logFile = path.join(dir, 'c2.log');
    const logStream = optBoolean(values, 'verbose') ? process.stderr : fs.createWriteStream(logFile, { flags: 'a' });
    const log = consoleLog({ format: 'text', stream: logStream });
    stdout.write('Starting the C2 server… ');
    const options = { dataDir: path.join(dir, 'c2'), brokerUrl, httpPort: port, resetToken: true, log };
    let app: C2App;
    try {
      app = await C2App.start(options);
    } catch (e) {
      if (portText !== undefined || !/in use/.test((e as Error).message)) {
        await broker?.close();
        throw new CliError(`cannot start the C2 server: ${(e as Error).message}`, 2);
      }
      app = await C2App.start({ ...options, httpPort: 0 });
    }
    say(`id ${idToHex(app.identity.id)}${app.identityCreated ? ' (new)' : ''}`);

    const devices: VirtualDevice[] = [];
    const joins: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const human = i === 0;
      stdout.write(`Virtual device ${i + 1}/${n}: `);
      const p = provisionVirtualDevice(path.join(dir, 'devices', String(i)), {
        brokerUrl,
        serverId: app.identity.id,
        serverPublicPem: app.identity.publicPem,
        firmware: { name: 'srup-demo', version: '1.0.0' },
      });
      const known = app.registry.device(p.id);
      if (known === null) app.addDevice(p.id, p.publicPem, { label: human ? 'demo (human join)' : `demo ${i + 1}` });
      const d = VirtualDevice.start(p.dir, { terminal: human ? (stdout as Writable) : null, log });
      devices.push(d);
      const state = app.registry.device(p.id)?.state;
      if (state === 'joined') {
        say(`${idToHex(p.id)} already joined`);
        continue;
      }
      say(`${idToHex(p.id)} ${human ? 'asks for a human-moderated join' : 'joins'}`);
      joins.push(
        d.join(human ? 'human' : 'simple').then(
          (outcome) => {
            say(`Device ${idToHex(p.id)}: ${outcome}`);
          },
          (e: unknown) => {
            say(`Device ${idToHex(p.id)}: join failed (${(e as Error).message})`);
          },
        ),
      );
    }

    const image = path.join(dir, 'firmware-1.1.0.bin');
    if (!fs.existsSync(image)) fs.writeFileSync(image, demoImage('srup-demo', '1.1.0', 256 * 1024));

    say('');
    say(`Console:      ${app.url}/`);
    say(`Login token:  ${app.operatorToken}`);
    say(`Update image: ${image}`);
    say(`CLI:          npx srup c2 list --data ${path.join(dir, 'c2')}`);
    say(`Server log:   ${optBoolean(values, 'verbose') ? 'this terminal' : logFile}`);
    say('Press Ctrl-C to stop.');

    await untilInterrupted();
    say('\nStopping…');
    for (const d of devices) await d.close().catch(() => undefined);
    await app.stop();
    await broker?.close();
    if (logStream !== process.stderr) (logStream as fs.WriteStream).end();
    void joins;
    return 0;
  },
};
