/** ECMA-419 socket classes: the host only passes them to the MQTT client's configuration. */
declare class Socket {
  constructor(options: Record<string, unknown>);
  close(): void;
}
export default Socket;
