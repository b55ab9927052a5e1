/** The simulator uses the host's network directly. */
export function startNetwork(_wifi: { ssid: string; password: string } | null, _log: (msg: string) => void): Promise<void> {
  return Promise.resolve();
}
