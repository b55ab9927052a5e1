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

/** Why the console application refused a request; the HTTP server (http.ts) maps each code to its status. */
export type AppErrorCode =
  | 'bad_argument' // a value the request may not carry (an id, a key, a profile, a data kind...)
  | 'unknown_device'; // no such device in the registry

export class AppError extends Error {
  readonly code: AppErrorCode;
  constructor(code: AppErrorCode, message: string) {
    super(message);
    this.name = 'AppError';
    this.code = code;
  }
}

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
  palette: string;
  lastSeen: number | null;
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
