/** The SDK's MQTT.js-style client (`mqtt/js`). */
export interface ClientOptions {
  clientId?: string;
  keepalive?: number;
  username?: string;
  password?: string;
  will?: { topic: string; payload: string | ArrayBuffer; qos?: 0 | 1 | 2; retain?: boolean };
  reconnectPeriod?: number;
  resubscribe?: boolean;
}
export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly connected: boolean;
  on(event: 'connect', listener: (connack?: unknown) => void): this;
  on(event: 'message', listener: (topic: string, payload: ArrayBuffer) => void): this;
  on(event: 'close' | 'offline' | 'reconnect' | 'end', listener: () => void): this;
  on(event: 'error', listener: (reason?: unknown) => void): this;
  publish(topic: string, message: string | ArrayBuffer, options: { qos?: 0 | 1 | 2; retain?: boolean }, callback?: (err?: unknown) => void): this;
  subscribe(topic: string | string[], options: { qos?: 0 | 1 | 2 }, callback?: (err?: unknown, granted?: unknown) => void): this;
  unsubscribe(topic: string | string[], options: object, callback?: (err?: unknown) => void): this;
  end(force?: boolean, options?: object, callback?: () => void): this;
}
