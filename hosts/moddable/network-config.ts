/**
 * The ECMA-419 network stack the host uses, as `device.network.{mqtt,mqtts,http,https}` (the shape the SDK's
 * `mqtt/js` client and its examples read): DNS over UDP, TCP, and TLS 1.2 trusting only the CA from the
 * key-store record. The MQTT entries ask for a persistent session (clean: false, read by the MQTT client).
 */
import TCP from 'embedded:io/socket/tcp';
import TLSSocket from 'embedded:io/socket/tcp/tls';
import UDP from 'embedded:io/socket/udp';
import Resolver from 'embedded:network/dns/resolver/udp';
import HTTPClient from 'embedded:network/http/client';
import MQTTClient from 'embedded:network/mqtt/client';

export function configureNetwork(ca: Uint8Array | null): void {
  const dns = { io: Resolver, servers: ['1.1.1.1', '8.8.8.8'], socket: { io: UDP } };
  const secure: Record<string, unknown> = { protocolVersion: 0x303 };
  if (ca !== null) secure.certificate = ca.slice().buffer;
  const tls = { io: TLSSocket, TCP: { io: TCP }, secure };
  const g = globalThis as unknown as { device?: { network?: Record<string, unknown> } };
  g.device = Object.freeze({
    ...g.device,
    network: {
      ...g.device?.network,
      mqtt: { io: MQTTClient, dns, clean: false, socket: { io: TCP } },
      mqtts: { io: MQTTClient, dns, clean: false, socket: tls },
      http: { io: HTTPClient, dns, socket: { io: TCP } },
      https: { io: HTTPClient, dns, port: 443, socket: tls },
    },
  });
}
