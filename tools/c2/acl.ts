/**
 * Broker access rules that make forged commands impossible to deliver, whatever a device's signature check
 * costs: only the C2 server may publish to a device's topic SRUP/<device> (besides the device's own answers),
 * and only a device may publish its join requests on SRUP/servers/<server>/<device>.
 *
 * Every client logs in with its own broker user name: the C2 server as `c2User` (default 'srup-c2'), each device
 * as its id the way topics write it (lowercase hex without leading zeros). docs/broker-acl.md explains the
 * setup for Mosquitto (acl_file), Mosquitto's dynamic-security plugin and EMQX.
 */
import { idTopicHex } from '../../modules/srup/bytes.js';

export const DEFAULT_C2_USER = 'srup-c2';

/** The broker user name a device logs in with: its id as topics write it. */
export function deviceUser(device: bigint): string {
  return idTopicHex(device);
}

/** Mosquitto acl_file lines for the C2 server's user. */
export function serverAclLines(c2User = DEFAULT_C2_USER): string {
  return `# the C2 server: every device topic, and the join topics\nuser ${c2User}\ntopic readwrite SRUP/#\n`;
}

/** Mosquitto acl_file lines for one device: its own topic, and its join topic on its server. */
export function deviceAclLines(device: bigint, server: bigint): string {
  const d = idTopicHex(device);
  return `# device ${d}\nuser ${deviceUser(device)}\ntopic readwrite SRUP/${d}\ntopic write SRUP/servers/${idTopicHex(server)}/${d}\n`;
}

/** A whole Mosquitto acl_file: the server's user, then each device's. */
export function mosquittoAcl(server: bigint, devices: readonly bigint[], c2User = DEFAULT_C2_USER): string {
  return [
    `# SRUP broker access rules for server ${idTopicHex(server)}: only the server publishes to SRUP/<device>`,
    '# (besides the device itself), only the device publishes on SRUP/servers/<server>/<device>.',
    '',
    serverAclLines(c2User),
    ...devices.map((d) => deviceAclLines(d, server)),
  ].join('\n');
}
