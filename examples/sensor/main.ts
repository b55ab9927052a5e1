/**
 * A sensor on the SRUP device agent: a user's own firmware, built the way a user builds theirs. Its manifest
 * includes the agent's (modules/device/manifest.json) and adds only what is its own: this file and the board.
 *
 *   - reads the temperature (ECMA-419 sensor class: a TMP102 on the ESP32, a simulated one in the simulator) and
 *     sends it to the C2 server as data "temperature" (double) every N seconds;
 *   - action 1: report every 1 s; action 2: every 10 s; data "period" (int32, seconds) from the server: any N;
 *     the period is kept across restarts (preference);
 *   - action 3: blinks the LED three times;
 *   - joins its server at first start (mcconfig srupJoin=human shows the challenge like the default firmware).
 */
import config from 'mc/config';
import Preference from 'preference';
import Timer from 'timer';
import { openDevice } from 'hosts/moddable/device';
import { openSensor, setLed } from 'board';

const settings = config as { srupJoin?: string };
const DOMAIN = 'srup-sensor';
const DEFAULT_PERIOD_MS = 3000;

function say(s: string): void {
  trace(`srup-sensor: ${s}\n`);
}

function savedPeriod(): number {
  const v = Preference.get(DOMAIN, 'period');
  return typeof v === 'number' && v >= 1000 && v <= 3_600_000 ? v : DEFAULT_PERIOD_MS;
}

async function main(): Promise<void> {
  let periodMs = savedPeriod();
  say(`period ${periodMs} ms`);
  const sensor = openSensor();
  const join = settings.srupJoin === 'simple' || settings.srupJoin === 'human' ? settings.srupJoin : 'none';
  const device = await openDevice({
    name: 'srup-sensor',
    version: '1.0.0',
    join,
    onEvent: (e) => {
      if (e.type === 'ready' || e.type === 'joined' || e.type === 'connected' || e.type === 'disconnected') say(`event ${e.type}`);
    },
  });
  if (device === null) return;

  let timer: Timer | undefined;
  const schedule = (ms: number) => {
    periodMs = ms;
    Preference.set(DOMAIN, 'period', ms);
    say(`period ${ms} ms`);
    if (timer !== undefined) Timer.schedule(timer, ms, ms);
  };
  device
    .onAction(1, () => schedule(1000))
    .onAction(2, () => schedule(10_000))
    .onAction(3, () => {
      let n = 0;
      const t = Timer.repeat(() => {
        setLed(n % 2 === 0);
        if (++n === 6) Timer.clear(t);
      }, 200);
    })
    .onData('period', 'int32', (seconds) => {
      if (seconds >= 1 && seconds <= 3600) schedule(seconds * 1000);
    });

  await device.start();
  timer = Timer.repeat(() => {
    const s = sensor.sample();
    if (s === undefined) return;
    device.sendData('temperature', s.temperature, 'double').then(
      () => say(`sent temperature=${s.temperature}`),
      (e: unknown) => say(`not sent: ${String(e)}`),
    );
  }, periodMs);
}

main().catch((e: unknown) => say(`fatal ${String(e)}`));
