/**
 * What the console's HTTP server (http.ts) uses of the C2 application (app.ts implements it), and the errors
 * and events the two share: http.ts depends on this file only, so the application and its HTTP server do not
 * import each other.
 */
import type { RsaPublicKey } from '../../crypto/types.js';
import type { ActionResult } from '../../modules/c2/engine.js';
import type { DeviceProfile, DeviceRecord } from '../../modules/c2/registry.js';
import type { Log } from '../../modules/c2/host.js';
import type { C2Store } from './store.js';
import { hexToId } from '../../hosts/node/durable.js';
import type { Auth } from './auth.js';
import type { Campaigns } from './campaigns.js';
import type { DeviceFilter, DeviceQuery } from './fleet.js';
import type { AuditFilter, AuditPage, AuditView } from './audit-log.js';

import { AppError } from './errors.js';

export { AppError, type AppErrorCode } from './errors.js';

export type AppEvent =
  | { kind: 'c2'; event: Record<string, unknown> }
  | { kind: 'devices' }
  | { kind: 'campaign'; id: number };

export function parseDeviceId(s: unknown): bigint {
  const id = hexToId(s);
  if (id === null) throw new AppError('bad_argument', `not a device id (1 to 16 hex digits): ${String(s)}`);
  return id;
}

export interface ConsoleApp {
  readonly dataDir: string;
  readonly auth: Auth;
  readonly store: C2Store;
  readonly campaigns: Campaigns;
  readonly log: Log;
  on(listener: (e: AppEvent) => void): () => void;
  state(): Record<string, unknown>;
  /** The server, device counts and pending joins: what every console view shows (no device list). */
  overview(): Record<string, unknown>;
  devices(): DeviceView[];
  searchDevices(q: DeviceQuery): { devices: DeviceView[]; total: number; page: number; pageSize: number };
  tags(): { tag: string; count: number }[];
  /** The ids of every device matching a filter (fleet.ts parseDeviceFilter checks one given as JSON). */
  devicesMatching(f: DeviceFilter): bigint[];
  setDeviceMeta(id: bigint, body: Record<string, unknown>): DeviceView;
  removeDevice(id: bigint): void;
  /** Runs `fn` on behalf of `operator` (the messages it sends are audited with the name). */
  runAs<T>(operator: string, fn: () => T): T;
  /** Adds an operator's action to the audit log. */
  record(operator: string, type: string, device: bigint | null, summary: string): void;
  /** The same, durable when the promise resolves rather than on return (the database picks its cheapest durable path). */
  recordAwaited(operator: string, type: string, device: bigint | null, summary: string): Promise<void>;
  auditLog(q: AuditPage): { entries: AuditView[]; total: number; page: number; pageSize: number };
  auditAll(f: AuditFilter): Iterable<AuditView>;
  device(id: bigint): DeviceView & { audit: Record<string, unknown>[]; updates: Record<string, unknown>[] };
  joins(): JoinView[];
  audit(after: number, limit: number): Record<string, unknown>[];
  addDevice(id: bigint, key: RsaPublicKey | string, opts?: { palette?: string; label?: string | null; profile?: DeviceProfile }): DeviceView;
  setProfile(id: bigint, profile: unknown): DeviceView;
  approve(id: bigint): Promise<void>;
  refuse(id: bigint): Promise<void>;
  joinCommand(id: bigint): Promise<void>;
  action(id: bigint, actionId: number): Promise<ActionResult>;
  sendData(id: bigint, dataId: string, kind: string, value: unknown): Promise<void>;
  requestId(id: bigint): Promise<string>;
  terminate(id: bigint): Promise<void>;
  deregister(id: bigint): Promise<void>;
}

/** A device as the console and the CLI show it. */
export interface DeviceView {
  id: string;
  state: DeviceRecord['state'];
  /** 'srup' (answers actions, confirms activation) or 'reference' (pySRUP: does neither). */
  profile: DeviceProfile;
  joinKind: DeviceRecord['joinKind'];
  label: string | null;
  tags: string[];
  palette: string;
  /** When the device was last heard from (any accepted message), or null. */
  lastSeen: number | null;
  /** Heard from within the server's silence threshold. */
  online: boolean;
  /** Its join waits for the operator or the device (state 'pending'). */
  pendingJoin: boolean;
  /** "name version" as the device reported them, or null. */
  firmware: string | null;
  identification: string | null;
  firmwareName: string | null;
  firmwareVersion: string | null;
  lastResponse: { status: number; at: number } | null;
  observer: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface ChallengeView {
  /** 64 colour indices, row-major from the top-left (modules/challenge challengeGrid). */
  grid: number[];
  /** The palette the device draws with: its name and the four RGB colours. */
  palette: { name: string; colours: { name: string; symbol: string; rgb: [number, number, number] }[] };
  /** The 10 blink digits and one repetition of the on/off schedule (blinkSchedule). */
  blink: string;
  schedule: { on: boolean; ms: number }[];
}

export interface JoinView extends DeviceView {
  /** Null for a simple join held for the operator (or before the secret went out). */
  challenge: ChallengeView | null;
  /** When the join request arrived, and when the server fails it (the device gives up then). */
  requestedAt: number;
  expiresAt: number | null;
}
