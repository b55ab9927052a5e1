/** ECMA-419 network clients (MQTT, HTTP): the host passes the classes into `device.network` configuration. */
declare class NetworkClient {
  constructor(options: Record<string, unknown>);
  close(): void;
}
export default NetworkClient;
