// A sensor on a Linux gateway or a Raspberry Pi, on the SRUP device API (the same API as the firmware's).
//
//   npx srup device init --out dev1 --server-id <hex> --server-key server.pem --broker mqtt://127.0.0.1:1883
//   npx srup c2 add-device dev1/device.json --data c2-data        # register it with the C2 server
//   node examples/node/sensor.mjs dev1                             # joins, then reports every 10 s
//
// It reads the board's temperature (/sys/class/thermal, as on a Raspberry Pi), or a simulated one where there is
// none, and sends it as data "temperature" (double). Action 1 blinks (prints), action 2 fails on purpose; data
// "period" (int32, seconds) from the server changes the reporting period.
import { readFileSync } from 'node:fs';
import { openNodeDevice } from 'srup-agent/device';

const dir = process.argv[2] ?? 'dev1';
let periodMs = Number(process.env.SENSOR_PERIOD_MS ?? 10_000);

function readTemperature() {
  try {
    return Number(readFileSync('/sys/class/thermal/thermal_zone0/temp', 'utf8')) / 1000;
  } catch {
    return Math.round((21 + 2 * Math.sin(Date.now() / 60_000)) * 100) / 100; // simulated
  }
}

const device = openNodeDevice(dir, { name: 'node-sensor', version: '1.0.0', join: 'simple' });
device.onAction(1, () => console.log('action 1: blink'));
device.onAction(2, () => false);
device.onData('period', 'int32', (seconds) => {
  periodMs = seconds * 1000;
  console.log(`period now ${seconds} s`);
  schedule();
});

let timer = null;
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const t = readTemperature();
    try {
      await device.sendData('temperature', t, 'double');
      console.log(`sent temperature=${t}`);
    } catch (e) {
      console.log(`not sent: ${e.message}`);
    }
    schedule();
  }, periodMs);
}

process.once('SIGINT', () => device.close().then(() => process.exit(0)));
process.once('SIGTERM', () => device.close().then(() => process.exit(0)));

await device.start();
console.log(`ready: device ${device.id.toString(16).padStart(16, '0')}, server ${device.serverId.toString(16).padStart(16, '0')}`);
schedule();
