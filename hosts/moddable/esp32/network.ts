/**
 * Wi-Fi on the ESP32 with the credentials from the key-store record, then the wall clock from SNTP (TLS
 * checks certificate dates); resolves once both are done (or SNTP gave up: the agent still starts).
 */
import SNTP from 'sntp';
import Time from 'time';
import WiFi from 'wifi';

function setClock(log: (msg: string) => void): Promise<void> {
  return new Promise((resolve) => {
    // eslint-disable-next-line no-new
    new SNTP({ host: 'pool.ntp.org' }, (message, value) => {
      if (message === SNTP.time && value !== undefined) {
        Time.set(value);
        resolve();
      } else if (message === SNTP.error) {
        log('sntp failed: certificate dates cannot be checked until the clock is set');
        resolve();
      }
    });
  });
}

export async function startNetwork(wifi: { ssid: string; password: string } | null, log: (msg: string) => void): Promise<void> {
  await connectWifi(wifi, log);
  await setClock(log);
}

function connectWifi(wifi: { ssid: string; password: string } | null, log: (msg: string) => void): Promise<void> {
  return new Promise((resolve) => {
    if (wifi === null) {
      log('no Wi-Fi in the record: assuming a wired or preconfigured network');
      return resolve();
    }
    let resolved = false;
    const connect = (): void => {
      // eslint-disable-next-line no-new
      new WiFi({ ssid: wifi.ssid, password: wifi.password }, (msg: string) => {
        if (msg === WiFi.gotIP && !resolved) {
          resolved = true;
          resolve();
        } else if (msg === WiFi.disconnected) {
          log('wifi disconnected, reconnecting');
          WiFi.connect({ ssid: wifi.ssid, password: wifi.password });
        }
      });
    };
    WiFi.mode = 1;
    connect();
  });
}
