/**
 * MQTT topics as the reference uses them (SRUP-WIRE.md §8). Ids in topics are lowercase hex without leading
 * zeros, exactly as pySRUP writes them, or pySRUP peers will not hear us.
 *
 *   SRUP/<device>                     device <-> its server, both directions (each side drops its own messages)
 *   SRUP/servers/<server>/<device>    join requests (simple, human, observed) from a device to a server
 *
 * The MQTT client id follows the same rule (`srupClientId`), on every host.
 */
import { idTopicHex, parseIdHex } from './bytes.js';

export const TOPIC_ROOT = 'SRUP';

/**
 * The MQTT client id of a SRUP peer (device or server): "SRUP Client: " and its id in lowercase hex without
 * leading zeros, as pySRUP builds it. Both hosts (hosts/node, hosts/moddable) use this one rule, so the broker
 * keeps a device's persistent session, and applies any ACL written for pySRUP peers, whichever host runs it.
 * It can be longer than the 23 characters MQTT 3.1.1 obliges every broker to accept: the broker must allow
 * longer client ids (Mosquitto does), as it must for pySRUP.
 */
export function srupClientId(id: bigint): string {
  return 'SRUP Client: ' + idTopicHex(id);
}

/** The topic a device listens on and publishes everything but join requests to. */
export function deviceTopic(device: bigint): string {
  return `${TOPIC_ROOT}/${idTopicHex(device)}`;
}

/** The topic a device sends its join requests to. */
export function joinTopic(server: bigint, device: bigint): string {
  return `${TOPIC_ROOT}/servers/${idTopicHex(server)}/${idTopicHex(device)}`;
}

/** What a server subscribes to at connect: every join request addressed to it. */
export function serverJoinFilter(server: bigint): string {
  return `${TOPIC_ROOT}/servers/${idTopicHex(server)}/#`;
}

/** What a server subscribes to for a device it controls (the reference subscribes SRUP/<device>/#). */
export function deviceFilter(device: bigint): string {
  return `${TOPIC_ROOT}/${idTopicHex(device)}/#`;
}

export type ParsedTopic =
  | { kind: 'device'; device: bigint }
  | { kind: 'join'; server: bigint; device: bigint }
  | { kind: 'other' };

/** Classifies a topic. Accepts ids with leading zeros too (lenient on input, exact on output). */
export function parseTopic(topic: string): ParsedTopic {
  const parts = topic.split('/');
  const id = (s: string): bigint | null => (/^[0-9a-fA-F]{1,16}$/.test(s) ? parseIdHex(s) : null);
  if (parts[0] !== TOPIC_ROOT) return { kind: 'other' };
  if (parts.length === 2) {
    const device = id(parts[1]);
    return device === null ? { kind: 'other' } : { kind: 'device', device };
  }
  if (parts.length === 4 && parts[1] === 'servers') {
    const server = id(parts[2]);
    const device = id(parts[3]);
    if (server === null || device === null) return { kind: 'other' };
    return { kind: 'join', server, device };
  }
  return { kind: 'other' };
}

/**
 * The sequence ID to put on the next message to a peer: one more than anything sent to or accepted from it,
 * so that a reference peer (one counter per peer for both directions) accepts it.
 */
export function nextSequenceId(lastSent: bigint, lastAccepted: bigint): bigint {
  return (lastSent > lastAccepted ? lastSent : lastAccepted) + 1n;
}
