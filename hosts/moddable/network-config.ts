/**
 * The ECMA-419 network stack the host uses, as `device.network.{mqtt,mqtts,http,https}` (the shape the SDK's
 * `mqtt/js` client and its examples read): DNS over UDP, TCP, and TLS 1.2 trusting only the CA from the
 * key-store record. The MQTT entries ask for a persistent session (clean: false, read by the MQTT client).
 * Every TCP socket, under TLS or not, is the guarded one (socket-guard.ts): a failure inside the SDK's socket
 * callbacks (a TLS handshake that throws) closes that connection and is reported, instead of aborting the VM.
 *
 * DNS servers, in this order: the record's (`srup provision --dns a,b`), else the network's own (on the ESP32
 * those DHCP gave, `Net.get("DNS")`, as the SDK's DNS example takes them), else FALLBACK_DNS (the simulator:
 * the SDK's Linux `Net` has no DNS list). They are read at every connection (the resolver is made per
 * connection and reads `servers` then), so a new DHCP lease is followed without a restart. Broker names only
 * a LAN's DNS knows resolve by default; IP literals and "localhost" need no DNS server at all.
 */
import TCP from 'embedded:io/socket/tcp';
import TLSSocket from 'embedded:io/socket/tcp/tls';
import UDP from 'embedded:io/socket/udp';
import Resolver from 'embedded:network/dns/resolver/udp';
import HTTPClient from 'embedded:network/http/client';
import MQTTClient from 'embedded:network/mqtt/client';
import Net from 'net';
import { guardSocket, type SocketClass } from './socket-guard.js';

/** Public resolvers, used only when neither the record nor the network names a DNS server. */
export const FALLBACK_DNS: readonly string[] = ['1.1.1.1', '8.8.8.8'];

/** The DNS servers to use now: `override` (from the record), the network's, or FALLBACK_DNS. */
export function dnsServers(override: readonly string[] | null): string[] {
  if (override !== null && override.length > 0) return override.slice();
  let fromNetwork: unknown;
  try {
    fromNetwork = Net.get('DNS');
  } catch {
    fromNetwork = undefined;
  }
  // The SDK's resolver writes to IPv4 dotted addresses only. (A regular expression made here, not at module
  // level: this module is preloaded, and what it holds at module level is frozen in flash.)
  const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/;
  const servers = Array.isArray(fromNetwork) ? fromNetwork.filter((s): s is string => typeof s === 'string' && ipv4.test(s)) : [];
  return servers.length > 0 ? servers : FALLBACK_DNS.slice();
}

/** The message of a socket failure, for one log line. */
function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function configureNetwork(
  ca: Uint8Array | null,
  log: (msg: string) => void = (m) => trace(`${m}\n`),
  dnsOverride: readonly string[] | null = null,
): void {
  const guarded = guardSocket(TCP as unknown as SocketClass, (e) => log(`network: connection failed: ${reasonOf(e)}`));
  const dns = {
    io: Resolver,
    get servers(): string[] {
      return dnsServers(dnsOverride);
    },
    socket: { io: UDP },
  };
  // TLS 1.2; records of at most 4 KiB asked for (max_fragment_length), so that a server that honours it never
  // makes the device buffer a 16 KiB record; one that does not still works, at the cost of that buffer.
  const secure: Record<string, unknown> = { protocolVersion: 0x303, tls_max_fragment_length: 4096 };
  if (ca !== null) secure.certificate = ca.slice().buffer;
  const tls = { io: TLSSocket, TCP: { io: guarded }, secure };
  const g = globalThis as unknown as { device?: { network?: Record<string, unknown> } };
  g.device = Object.freeze({
    ...g.device,
    network: {
      ...g.device?.network,
      mqtt: { io: MQTTClient, dns, clean: false, socket: { io: guarded } },
      mqtts: { io: MQTTClient, dns, clean: false, socket: tls },
      http: { io: HTTPClient, dns, socket: { io: guarded } },
      https: { io: HTTPClient, dns, port: 443, socket: tls },
    },
  });
}
