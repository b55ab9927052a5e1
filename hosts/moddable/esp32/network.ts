/**
 * The ESP32's network: Wi-Fi with the credentials from the key-store record through the ECMA-419 interface
 * (`embedded:network/interface/wifi`, the one the SDK builds for ESP32), reconnecting whenever it drops, then
 * the wall clock from SNTP. TLS checks certificate dates against the clock, so SNTP is retried (with a log line
 * each time) until it answers; with `clockRequired` (an mqtts broker) start-up waits for it, otherwise the
 * agent starts after the first failure and the retries go on behind it.
 */
import config from 'mc/config';
import WiFi from 'embedded:network/interface/wifi';
import SNTP from 'sntp';
import Time from 'time';
import Timer from 'timer';

const SNTP_RETRY_MS = [2000, 5000, 10000, 30000, 60000];
const WIFI_RETRY_MS = 5000;
/** Connection states of the ECMA-419 Wi-Fi interface: 500 and over once it has an address. */
const HAS_ADDRESS = 500;
const DISCONNECTED = 200;

function sntpHost(): string {
  const host = (config as { sntp?: unknown }).sntp;
  return typeof host === 'string' && host !== '' ? host : 'pool.ntp.org';
}

/** Resolves once the clock is set (clockRequired) or after the first try (otherwise); retries until it is set. */
function setClock(clockRequired: boolean, log: (msg: string) => void): Promise<void> {
  return new Promise((resolve) => {
    let attempt = 0;
    const host = sntpHost();
    const ask = (): void => {
      // eslint-disable-next-line no-new
      new SNTP({ host }, (message, value) => {
        if (message === SNTP.time && value !== undefined) {
          Time.set(value);
          log(`sntp: clock set from ${host}`);
          resolve();
        } else if (message === SNTP.error) {
          const delay = SNTP_RETRY_MS[Math.min(attempt++, SNTP_RETRY_MS.length - 1)];
          log(`sntp: no time from ${host} (attempt ${attempt}), retrying in ${delay / 1000} s; TLS cannot check certificate dates until the clock is set`);
          if (!clockRequired) resolve();
          Timer.set(ask, delay);
        }
      });
    };
    ask();
  });
}

function connectWifi(wifi: { ssid: string; password: string }, log: (msg: string) => void): Promise<void> {
  return new Promise((resolve) => {
    let up = false;
    let retry: Timer | undefined;
    const options = wifi.password !== '' ? { SSID: wifi.ssid, password: wifi.password } : { SSID: wifi.ssid };
    const w = new WiFi({
      // The SDK types the callback without `this`: the interface object is read through `w`.
      onChanged() {
        const c = w.connection;
        if (c >= HAS_ADDRESS) {
          if (!up) log(`wifi: connected to "${wifi.ssid}", address ${w.address ?? '?'}`);
          up = true;
          resolve();
        } else if (c <= DISCONNECTED) {
          if (up) log('wifi: disconnected, reconnecting');
          up = false;
          if (retry === undefined)
            retry = Timer.set(() => {
              retry = undefined;
              w.connect(options);
            }, WIFI_RETRY_MS);
        }
      },
    });
    w.connect(options);
  });
}

export async function startNetwork(
  wifi: { ssid: string; password: string } | null,
  log: (msg: string) => void,
  clockRequired = true,
): Promise<void> {
  if (wifi === null) log('wifi: none in the record, assuming a network that is already up');
  else await connectWifi(wifi, log);
  await setClock(clockRequired, log);
}
