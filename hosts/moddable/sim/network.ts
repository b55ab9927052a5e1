/** The simulator uses the host's network and clock directly. */
export function startNetwork(
  _wifi: { ssid: string; password: string } | null,
  _log: (msg: string) => void,
  _clockRequired?: boolean,
): Promise<void> {
  return Promise.resolve();
}
