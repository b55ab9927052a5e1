/**
 * The C2 application: one process holding the server identity, the SQLite registry, the MQTT transport, the
 * engine (modules/c2), update campaigns, and the operator console with its HTTP API on 127.0.0.1.
 *
 *   const app = await C2App.start({ dataDir, brokerUrl: 'mqtt://127.0.0.1:1883', httpPort: 8686 });
 *   app.url            // http://127.0.0.1:8686/
 *   app.operatorToken  // only on first start (print it once)
 *   await app.stop();
 *
 * Restart: the registry keeps pending joins (with their secrets), update records, campaigns and sessions; the
 * engine re-arms the update timers and resubscribes every joined device; the MQTT session is persistent, so
 * answers that arrived while the server was down are delivered when it reconnects.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { parsePublicKeyPem } from '../../crypto/keys.js';
import type { RsaPublicKey } from '../../crypto/types.js';
import { C2Engine, type ActionResult } from '../../modules/c2/engine.js';
import type { C2Event } from '../../modules/c2/events.js';
import type { Clock, Log } from '../../modules/c2/host.js';
import type { RateLimit } from '../../modules/c2/rate.js';
import { isDeviceProfile, type DeviceProfile, type DeviceRecord } from '../../modules/c2/registry.js';
import { blinkCode, blinkSchedule, challengeGrid, DEFAULT_PALETTE, REFERENCE_PALETTE, type Palette } from '../../modules/challenge/index.js';
import { isDataKind, type DataKind, type DataValue } from '../../modules/srup/data.js';
import { nodeCrypto, randomBytes } from '../../hosts/node/crypto.js';
import { hexToId, idToHex } from '../../hosts/node/durable.js';
import { consoleLog, systemClock } from '../../hosts/node/host.js';
import { MqttTransport, srupClientId } from '../../hosts/node/mqtt.js';
import { SqliteRegistry } from '../../hosts/node/sqlite-registry.js';
import { PgRegistry } from '../../hosts/node/pg-registry.js';
import type { SqlRegistry } from '../../hosts/node/sql-registry.js';
import { C2Store, type DeviceSettings } from './store.js';
import { Auth } from './auth.js';
import { CampaignError, Campaigns } from './campaigns.js';
import { AppError, parseDeviceId, type AppEvent, type ChallengeView, type ConsoleApp, type DeviceView, type JoinView } from './api.js';
import { ConsoleHttp } from './http.js';
import { DEFAULT_SILENCE_MS, deviceIdsMatching, parseMeta, queryDevices, type DeviceFilter, type DeviceQuery } from './fleet.js';
import { auditEntries, queryAudit, type AuditFilter, type AuditPage, type AuditView } from './audit-log.js';
import { PgCluster } from './cluster.js';
import { ensurePrivateDir, loadOrCreateIdentity, type ServerIdentity } from './identity.js';

export const DB_FILE = 'c2.db';
export const HTTP_FILE = 'http.json';
/** Held (created exclusively, with the pid) from the start of a server to its end: one server per directory. */
export const LOCK_FILE = 'c2.lock';
export const IMAGES_DIR = 'images';
export const DEFAULT_HTTP_PORT = 8686;
/** Several nodes: how often each takes over the update and join timers (and campaign waves) of a node that died (ms). */
export const SWEEP_MS = 5_000;

/** 90 days, 256 MiB: a year of a quiet fleet's traffic fits; a chatty device cannot fill the disk. */
export const DEFAULT_AUDIT_RETENTION = Object.freeze({ maxAgeMs: 90 * 24 * 3600 * 1000, maxBytes: 256 * 1024 * 1024 });
export const AUDIT_PRUNE_INTERVAL_MS = 60_000;

/** How long a device waits for a join's answer unless provisioned otherwise (modules/agent/join.ts). */
export const DEVICE_JOIN_TIMEOUT_MS = 120_000;
/** The server gives up on a pending join this much before the device does (message transit, clock steps). */
export const JOIN_EXPIRY_MARGIN_MS = 5_000;

export const PALETTES: Record<string, Palette> = { default: DEFAULT_PALETTE, reference: REFERENCE_PALETTE };

export interface C2AppOptions {
  dataDir: string;
  brokerUrl: string;
  /** 0 picks a free port. Default 8686. */
  httpPort?: number;
  /** Broker credentials and TLS (PEM contents). */
  username?: string;
  password?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  /** Base URL devices download campaign images from (default the console's own http://127.0.0.1:PORT). */
  imageBaseUrl?: string;
  /** 'auto' accepts simple joins of provisioned devices; 'manual' holds them for the operator. Default 'auto'. */
  simpleJoins?: 'auto' | 'manual';
  /**
   * How long devices wait for a join's answer (their joinTimeoutMs; default DEVICE_JOIN_TIMEOUT_MS, the agent's
   * default). The server fails a join still pending JOIN_EXPIRY_MARGIN_MS before that, so that it never records
   * a join the device has given up on (and would refuse).
   */
  joinTimeoutMs?: number;
  /** Engine timeouts (ms). */
  requestTimeoutMs?: number;
  initiateTimeoutMs?: number;
  activateTimeoutMs?: number;
  sessionTtlMs?: number;
  /**
   * The registry on PostgreSQL (postgres://user:pass@host/db) instead of SQLite in dataDir. Several servers with
   * the same identity, database and broker serve one fleet together (docs/c2.md).
   */
  databaseUrl?: string;
  /** Make a new operator token (printed once) and CLI token. */
  resetToken?: boolean;
  /**
   * Audit log retention: entries older than maxAgeMs go, and the oldest go while the rest hold more than
   * maxBytes of messages. Applied at start and every AUDIT_PRUNE_INTERVAL_MS. Default DEFAULT_AUDIT_RETENTION.
   */
  auditRetention?: { maxAgeMs?: number; maxBytes?: number };
  /** Per-device limit on unasked messages (modules/c2/rate.ts); default 100 at once, 10 per second. */
  deviceRate?: RateLimit;
  /** A device not heard from for this long is offline (ms); default DEFAULT_SILENCE_MS (5 minutes). */
  silenceMs?: number;
  log?: Log;
  clock?: Clock;
}

/** Byte fields of an event up to this length are sent whole; longer ones only by their length. */
export const MAX_EVENT_BYTES = 256;

/** How the console shows one data id of a device: its latest reading, and the numeric history for the trend line. */
export interface DataView {
  dataId: string;
  /** When the latest reading arrived. */
  at: number;
  /** How the latest payload reads (readingValue). */
  kind: ReadingKind;
  /** The latest value as text. */
  text: string;
  /** Up to READINGS_PER_DATA_ID readings of the same kind as the latest, oldest first (numeric kinds only). */
  history: { at: number; value: number }[];
}

export type ReadingKind = 'text' | 'int32' | 'double' | 'int' | 'bytes';

/**
 * What a data payload most likely is, as the device API sends it (modules/device: string, int32, double, bytes;
 * the wire carries no type tag): printable UTF-8 is text; otherwise 4 bytes an int32, 8 bytes a (finite) double,
 * 1 or 2 bytes an unsigned integer; anything else bytes (shown in hex).
 */
export function readingValue(b: Uint8Array): { kind: ReadingKind; text: string; value: number | null } {
  const text = b.length > 0 ? utf8Text(b) : null;
  if (text !== null && !/[\u0000-\u001f\u007f]/.test(text)) return { kind: 'text', text, value: null };
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length === 4) {
    const n = v.getInt32(0, true);
    return { kind: 'int32', text: String(n), value: n };
  }
  if (b.length === 8 && Number.isFinite(v.getFloat64(0, true))) {
    const n = v.getFloat64(0, true);
    return { kind: 'double', text: String(n), value: n };
  }
  if (b.length === 1 || b.length === 2) {
    const n = b.length === 1 ? b[0] : v.getUint16(0, true);
    return { kind: 'int', text: String(n), value: n };
  }
  return { kind: 'bytes', text: Buffer.from(b).toString('hex'), value: null };
}

function utf8Text(b: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return null;
  }
}

/**
 * JSON form of an engine event: ids as 16 hex digits, bytes as hex. Events carry no bulk payloads: a byte field
 * longer than MAX_EVENT_BYTES becomes null, with its length in `<name>Length` (the data is in the registry).
 */
export function eventJson(e: C2Event): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (typeof v === 'bigint') out[k] = idToHex(v);
    else if (v instanceof Uint8Array) {
      out[k] = v.length <= MAX_EVENT_BYTES ? Buffer.from(v).toString('hex') : null;
      out[k + 'Length'] = v.length;
    }
    else if (k === 'update' && v !== null && typeof v === 'object') {
      const u = v as Record<string, unknown>;
      out[k] = { ...u, device: idToHex(u.device as bigint) };
    } else if (k === 'challenge') continue; // the console reads challenges from /api/joins, in the device's palette
    else out[k] = v;
  }
  return out;
}

export { AppError, parseDeviceId, type AppEvent, type ChallengeView, type DeviceView, type JoinView };

export class C2App implements ConsoleApp {
  readonly dataDir: string;
  readonly identity: ServerIdentity;
  readonly registry: SqlRegistry;
  /** The application's tables (campaigns, sessions, console settings), in the registry's database. */
  readonly store: C2Store;
  readonly engine: C2Engine;
  readonly campaigns: Campaigns;
  readonly auth: Auth;
  readonly log: Log;
  readonly brokerUrl: string;
  /** Set on first start (or with resetToken): show it to the operator once. */
  readonly operatorToken: string | null;
  readonly identityCreated: boolean;
  private readonly transport: MqttTransport;
  private readonly clock: Clock;
  /** The console's HTTP server (public for tests: its open event streams). */
  readonly http: ConsoleHttp;
  private readonly listeners = new Set<(e: AppEvent) => void>();
  /** The other nodes (registry on PostgreSQL), or null. */
  private readonly cluster: PgCluster | null;
  private connected = false;
  private stopped = false;
  private readonly retention: { maxAgeMs: number; maxBytes: number };
  private pruneTimer: ReturnType<typeof setInterval> | null = null;
  /** The silence threshold (ms): a device not heard from for longer is offline. */
  readonly silenceMs: number;
  /** The operator whose request is being handled (runAs), for the audit entries it causes. */
  private readonly operatorScope = new AsyncLocalStorage<string>();
  private campaignTimer: ReturnType<typeof setInterval> | null = null;

  private constructor(o: C2AppOptions) {
    this.dataDir = path.resolve(o.dataDir);
    this.log = o.log ?? consoleLog({ format: 'text' });
    this.clock = o.clock ?? systemClock;
    this.brokerUrl = o.brokerUrl;
    const { identity, created } = loadOrCreateIdentity(this.dataDir);
    this.identity = identity;
    this.identityCreated = created;
    if (o.databaseUrl !== undefined) {
      this.registry = new PgRegistry(o.databaseUrl);
    } else {
      // SQLite gives its -wal and -shm files the database file's mode: make it private before it opens.
      const dbFile = path.join(this.dataDir, DB_FILE);
      fs.closeSync(fs.openSync(dbFile, 'a', 0o600));
      fs.chmodSync(dbFile, 0o600);
      this.registry = new SqliteRegistry(dbFile);
    }
    this.store = new C2Store(this.registry.db);
    this.registry.auditOperator = () => this.operatorScope.getStore() ?? null;
    this.silenceMs = o.silenceMs ?? DEFAULT_SILENCE_MS;
    if (!Number.isSafeInteger(this.silenceMs) || this.silenceMs <= 0) throw new Error('the silence threshold must be a positive whole number of ms');
    // On PostgreSQL this node may be one of several: a shared subscription, a clean session under a client id of
    // its own, notes to the other nodes, and their console events forwarded to this node's event streams.
    const clustered = this.registry instanceof PgRegistry;
    this.cluster = this.registry instanceof PgRegistry ? new PgCluster(this.registry.db, this.log) : null;
    this.cluster?.onAppEvent((e) => this.emitLocal(e as AppEvent));
    this.auth = new Auth(this.store, this.dataDir, { sessionTtlMs: o.sessionTtlMs, now: () => this.clock.now() });
    this.operatorToken = this.auth.setup(o.resetToken === true).operatorToken;
    this.transport = new MqttTransport({
      url: o.brokerUrl,
      clientId: this.cluster === null ? srupClientId(identity.id) : `${srupClientId(identity.id)} node ${this.cluster.node}`,
      cleanSession: clustered,
      username: o.username,
      password: o.password,
      ca: o.tls?.ca,
      cert: o.tls?.cert,
      key: o.tls?.key,
      log: this.log,
    });
    const manual = o.simpleJoins === 'manual';
    this.engine = new C2Engine(
      {
        transport: this.transport,
        registry: this.registry,
        crypto: nodeCrypto,
        random: randomBytes,
        clock: this.clock,
        log: this.log,
        serverId: identity.id,
        privateKey: identity.privateKey,
        ...(this.cluster !== null ? { cluster: this.cluster } : {}),
      },
      {
        ...(clustered ? { sharedGroup: `srup-c2-${identity.id.toString(16)}`, sweepMs: SWEEP_MS } : {}),
        onJoinRequest: () => (manual ? 'defer' : 'accept'),
        joinTimeoutMs: Math.max(1000, (o.joinTimeoutMs ?? DEVICE_JOIN_TIMEOUT_MS) - JOIN_EXPIRY_MARGIN_MS),
        identifyOnJoin: true,
        autoActivate: false,
        requestTimeoutMs: o.requestTimeoutMs,
        initiateTimeoutMs: o.initiateTimeoutMs,
        activateTimeoutMs: o.activateTimeoutMs,
        onEvent: (e) => this.onEngineEvent(e),
        deviceRate: o.deviceRate,
      },
    );
    this.retention = { ...DEFAULT_AUDIT_RETENTION, ...o.auditRetention };
    this.http = new ConsoleHttp(this, { port: o.httpPort ?? DEFAULT_HTTP_PORT });
    this.campaigns = new Campaigns({
      registry: this.registry,
      store: this.store,
      engine: this.engine,
      log: this.log,
      imagesDir: path.join(this.dataDir, IMAGES_DIR),
      imageUrl: (file) => `${(o.imageBaseUrl ?? this.http.origin).replace(/\/$/, '')}/images/${file}`,
      now: () => this.clock.now(),
      changed: (id) => this.emit({ kind: 'campaign', id }),
      resolve: (f) => this.devicesMatching(f),
    });
  }

  /** Opens everything and starts serving; resolves once the HTTP server listens and MQTT subscriptions are made. */
  static async start(o: C2AppOptions): Promise<C2App> {
    const dir = path.resolve(o.dataDir);
    ensurePrivateDir(dir);
    // Taken before anything in the directory is made or read: two servers started at once on a new
    // directory would otherwise each make an identity and an operator token, and one of each would be lost.
    C2App.lock(dir);
    let app: C2App;
    try {
      C2App.checkNotRunning(dir);
      app = new C2App(o);
    } catch (e) {
      C2App.unlock(dir);
      throw e;
    }
    try {
      await app.http.listen();
      fs.writeFileSync(path.join(app.dataDir, HTTP_FILE), JSON.stringify({ url: app.http.origin, pid: process.pid }) + '\n', { mode: 0o600 });
      await app.engine.start();
      app.campaigns.start();
      app.pruneAudit();
      app.pruneTimer = setInterval(() => app.pruneAudit(), AUDIT_PRUNE_INTERVAL_MS);
      app.pruneTimer.unref();
      // A campaign wave that settled while its last answer's node died is moved on by another (several nodes).
      app.campaignTimer = setInterval(() => {
        try {
          app.campaigns.sweep();
        } catch (e) {
          app.log('warn', 'campaign_sweep_failed', { why: String(e) });
        }
      }, SWEEP_MS);
      app.campaignTimer.unref();
    } catch (e) {
      await app.stop();
      throw e;
    }
    return app;
  }

  /** Takes DIR/c2.lock, or throws if a live process (another server) holds it. A dead holder's lock is taken over. */
  private static lock(dir: string): void {
    const file = path.join(dir, LOCK_FILE);
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = fs.openSync(file, 'wx', 0o600);
        fs.writeSync(fd, `${process.pid}\n`);
        fs.closeSync(fd);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      }
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid) {
        let alive = true;
        try {
          process.kill(pid, 0);
        } catch (e) {
          alive = (e as NodeJS.ErrnoException).code === 'EPERM';
        }
        if (alive) throw new Error(`another C2 server (pid ${pid}) is using ${dir}`);
      }
      fs.rmSync(file, { force: true }); // a server that ended without cleaning up
    }
  }

  private static unlock(dir: string): void {
    const file = path.join(dir, LOCK_FILE);
    try {
      if (Number(fs.readFileSync(file, 'utf8').trim()) === process.pid) fs.rmSync(file, { force: true });
    } catch {
      // already gone
    }
  }

  /** Refuses to start a second server on one data directory (same registry, same MQTT client id). */
  private static checkNotRunning(dir: string): void {
    let pid: unknown;
    try {
      pid = (JSON.parse(fs.readFileSync(path.join(dir, HTTP_FILE), 'utf8')) as { pid?: unknown }).pid;
    } catch {
      return;
    }
    if (typeof pid !== 'number' || pid === process.pid) return;
    try {
      process.kill(pid, 0);
    } catch {
      return; // a server that ended without cleaning up
    }
    throw new Error(`another C2 server (pid ${pid}) is using ${dir}`);
  }

  /** The console's origin, e.g. http://127.0.0.1:8686 */
  get url(): string {
    return this.http.origin;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.pruneTimer !== null) clearInterval(this.pruneTimer);
    if (this.campaignTimer !== null) clearInterval(this.campaignTimer);
    // Campaigns first (they would answer a 0x00 with an activate that can no longer be sent; the next start
    // sends it), then the transport: a message the broker hands over while it closes is still recorded by the
    // engine before it is acknowledged, so nothing the devices sent is lost across a restart.
    this.campaigns.stop();
    await this.transport.close().catch(() => undefined);
    await this.engine.idle();
    this.engine.stop();
    await this.http.close();
    try {
      const f = path.join(this.dataDir, HTTP_FILE);
      const cur = JSON.parse(fs.readFileSync(f, 'utf8')) as { pid?: number; url?: string };
      if (cur.pid === process.pid && cur.url === this.http.origin) fs.rmSync(f, { force: true });
    } catch {
      // already gone
    }
    this.cluster?.close();
    this.registry.close();
    C2App.unlock(this.dataDir);
  }

  /** Applies the audit retention now; returns how many entries went. */
  pruneAudit(): number {
    try {
      const n = this.registry.pruneAudit(this.clock.now() - this.retention.maxAgeMs, this.retention.maxBytes);
      if (n > 0) this.log('info', 'audit_pruned', { entries: n });
      return n;
    } catch (e) {
      this.log('error', 'audit_prune_failed', { why: String(e) });
      return 0;
    }
  }

  on(listener: (e: AppEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(e: AppEvent): void {
    this.cluster?.publishAppEvent(e);
    this.emitLocal(e);
  }

  private emitLocal(e: AppEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.log('warn', 'listener_threw', { why: String(err) });
      }
    }
  }

  private onEngineEvent(e: C2Event): void {
    if (e.type === 'connected') this.connected = true;
    if (e.type === 'disconnected') this.connected = false;
    // A confirmed update means new firmware: ask the device who it is now.
    if (e.type === 'update' && e.update.state === 'confirmed') {
      const device = e.update.device;
      setImmediate(() => {
        if (!this.stopped) this.engine.requestId(device).catch(() => undefined);
      });
    }
    this.emit({ kind: 'c2', event: eventJson(e) });
  }

  // ============================================================================================ views

  deviceView(d: DeviceRecord, s: DeviceSettings = this.store.deviceSettings(d.id), tags: string[] = this.store.tags(d.id)): DeviceView {
    const now = this.clock.now();
    return {
      id: idToHex(d.id),
      state: d.state,
      profile: d.profile,
      joinKind: d.joinKind,
      label: s.label,
      tags,
      palette: s.palette,
      lastSeen: d.lastSeen,
      online: d.lastSeen !== null && d.lastSeen >= now - this.silenceMs,
      pendingJoin: d.state === 'pending',
      identification: d.identification,
      firmware: d.firmwareName === null && d.firmwareVersion === null ? null : [d.firmwareName, d.firmwareVersion].filter((x) => x !== null).join(' '),
      firmwareName: d.firmwareName,
      firmwareVersion: d.firmwareVersion,
      lastResponse: d.lastResponse === null ? null : { status: d.lastResponse.status, at: d.lastResponse.at },
      observer: d.observerId === null ? null : idToHex(d.observerId),
      createdAt: d.createdAt,
      updatedAt: d.updatedAt,
    };
  }

  /** Every device (the console's state and the CLI; the device list pages through searchDevices instead). */
  devices(): DeviceView[] {
    const settings = this.store.allDeviceSettings();
    const all = this.registry.devices();
    const tags = this.store.allTags();
    return all.map((d) => this.deviceView(d, settings.get(d.id) ?? { palette: 'default', label: null }, tags.get(idToHex(d.id)) ?? []));
  }

  /** One page of the device list (fleet.ts): the database searches, filters, orders and pages. */
  searchDevices(q: DeviceQuery): { devices: DeviceView[]; total: number; page: number; pageSize: number } {
    const { rows, total } = queryDevices(this.registry.db, q, this.clock.now(), this.silenceMs);
    const tags = this.store.tagsOf(rows.map((r) => idToHex(r.device.id)));
    return {
      devices: rows.map((r) => this.deviceView(r.device, { label: r.label, palette: r.palette }, tags.get(idToHex(r.device.id)) ?? [])),
      total,
      page: q.page,
      pageSize: q.pageSize,
    };
  }

  /** The ids of every device matching `f` (fleet.ts parseDeviceFilter), in id order: a campaign's target group. */
  devicesMatching(f: DeviceFilter): bigint[] {
    return deviceIdsMatching(this.registry.db, f, this.clock.now(), this.silenceMs);
  }

  /** Every tag in use and how many devices carry it. */
  tags(): { tag: string; count: number }[] {
    return this.store.tagCounts();
  }

  /** The data history of a device, one entry per data id, in the order the ids first appeared. */
  deviceData(id: bigint): DataView[] {
    const byId = new Map<string, { at: number; data: Uint8Array }[]>();
    for (const r of this.registry.readings(id)) {
      const list = byId.get(r.dataId) ?? [];
      list.push({ at: r.at, data: r.data });
      byId.set(r.dataId, list);
    }
    const out: DataView[] = [];
    for (const [dataId, list] of byId) {
      const last = list[list.length - 1];
      const latest = readingValue(last.data);
      const history: { at: number; value: number }[] = [];
      if (latest.value !== null) {
        for (const x of list) {
          const r = readingValue(x.data);
          if (r.kind === latest.kind && r.value !== null) history.push({ at: x.at, value: r.value });
        }
      }
      out.push({ dataId, at: last.at, kind: latest.kind, text: latest.text, history });
    }
    return out;
  }

  device(id: bigint): DeviceView & { audit: Record<string, unknown>[]; updates: Record<string, unknown>[]; data: DataView[] } {
    const d = this.registry.device(id);
    if (d === null) throw new AppError('unknown_device', `device ${idToHex(id)} is not registered`);
    const audit = this.registry.latestAudit(20, id).map((a) => ({
      seq: a.seq,
      at: a.at,
      direction: a.direction,
      type: a.type,
      sequenceId: a.sequenceId.toString(),
      status: a.status,
      token: Buffer.from(a.token).toString('utf8').replace(/[^\x20-\x7e]/g, '.'),
      length: a.bytes.length,
    }));
    const updates = this.registry.updates(id).slice(-10).reverse().map((u) => ({ ...u, device: idToHex(u.device) }));
    return { ...this.deviceView(d), audit, updates, data: this.deviceData(id) };
  }

  challengeView(secret: string, paletteName: string): ChallengeView {
    const palette = PALETTES[paletteName] ?? DEFAULT_PALETTE;
    const code = blinkCode(secret);
    return {
      grid: challengeGrid(secret),
      palette: { name: palette.name, colours: palette.colours.map((c) => ({ name: c.name, symbol: c.symbol, rgb: [c.rgb[0], c.rgb[1], c.rgb[2]] })) },
      blink: code.digits,
      schedule: blinkSchedule(code).map((s) => ({ on: s.on, ms: s.ms })),
    };
  }

  /** Pending joins, with the challenge of human-moderated ones drawn as the device draws it. */
  joins(): JoinView[] {
    return this.registry.devices('pending').map((d) => {
      const v = this.deviceView(d);
      // Observed joins show it too: it is what the observer is asked to see on the joining device.
      const challenge = (d.joinKind === 'human' || d.joinKind === 'observed') && d.joinSecret !== null ? this.challengeView(d.joinSecret, v.palette) : null;
      const timing = this.engine.joinTiming(d.id);
      return { ...v, challenge, requestedAt: timing?.requestedAt ?? d.updatedAt, expiresAt: timing?.expiresAt ?? null };
    });
  }

  /**
   * What the console needs on every view: the server, the device counts and the pending joins — not the device
   * list (paged through GET /api/devices) nor the campaigns, so it stays small with ten thousand devices.
   */
  overview(): Record<string, unknown> {
    return {
      server: { id: idToHex(this.identity.id), broker: this.brokerUrl, connected: this.connected, publicKey: this.identity.publicPem },
      counts: this.registry.deviceCounts(),
      joins: this.joins(),
    };
  }

  state(): Record<string, unknown> {
    return { ...this.overview(), devices: this.devices(), campaigns: this.campaigns.list() };
  }

  audit(after: number, limit: number): Record<string, unknown>[] {
    const n = Number.isSafeInteger(limit) && limit > 0 ? Math.min(limit, 500) : 100;
    return this.registry.latestAudit(n).filter((a) => a.seq > after).map((a) => ({
      seq: a.seq,
      at: a.at,
      direction: a.direction,
      device: idToHex(a.device),
      type: a.type,
      sequenceId: a.sequenceId.toString(),
      status: a.status,
    }));
  }

  // ============================================================================================ operators and audit

  /** Runs `fn` (and what it causes, awaited or not) on behalf of `operator`: the messages it sends are audited with the name. */
  runAs<T>(operator: string, fn: () => T): T {
    return this.operatorScope.run(operator, fn);
  }

  /** Adds an operator's action to the audit log (`device` null for one on no single device). */
  record(operator: string, type: string, device: bigint | null, summary: string): void {
    try {
      this.store.recordAction({ at: this.clock.now(), operator, type, device, summary });
    } catch (e) {
      this.log('error', 'audit_failed', { operator, type, why: String(e) });
      throw e;
    }
  }

  /**
   * As record(), durable when the promise resolves rather than on return, by the database's cheapest path
   * (SQLite: the group commit, without a disk sync on the event loop). The path of every command.
   */
  async recordAwaited(operator: string, type: string, device: bigint | null, summary: string): Promise<void> {
    try {
      await this.store.recordActionAwaited({ at: this.clock.now(), operator, type, device, summary });
    } catch (e) {
      this.log('error', 'audit_failed', { operator, type, why: String(e) });
      throw e;
    }
  }

  /** The audit log, filtered and paged by the database, newest first (audit-log.ts). */
  auditLog(q: AuditPage): { entries: AuditView[]; total: number; page: number; pageSize: number } {
    return { ...queryAudit(this.registry.db, q), page: q.page, pageSize: q.pageSize };
  }

  /** Every audit entry matching `f`, newest first, a chunk at a time (the CSV export). */
  auditAll(f: AuditFilter): Iterable<AuditView> {
    return auditEntries(this.registry.db, f);
  }

  // ============================================================================================ operations

  /** Changes a device's label and/or tags (fleet.ts parseMeta checks the body); returns the device. */
  setDeviceMeta(id: bigint, body: Record<string, unknown>): DeviceView {
    const meta = parseMeta(body);
    const d = this.registry.device(id);
    if (d === null) throw new AppError('unknown_device', `device ${idToHex(id)} is not registered`);
    this.store.setDeviceMeta(id, meta);
    this.emit({ kind: 'devices' });
    return this.deviceView(d);
  }

  /**
   * Removes a device from the registry: its record, settings, tags, updates and readings go; its sequence
   * counters and its audit entries stay (a device registered again never gets an ID it had already).
   */
  removeDevice(id: bigint): void {
    if (this.registry.device(id) === null) throw new AppError('unknown_device', `device ${idToHex(id)} is not registered`);
    this.registry.transaction(() => {
      this.engine.removeDevice(id);
      this.store.forgetDevice(id);
    });
    this.log('info', 'device_removed', { device: idToHex(id) });
    this.emit({ kind: 'devices' });
  }

  /**
   * Registers (or re-registers) a device's public key, with the palette its matrix uses, a label, and its
   * profile ('reference' for a pySRUP device; default 'srup', or what a re-registered device had).
   */
  addDevice(
    id: bigint,
    key: RsaPublicKey | string,
    opts: { palette?: string; label?: string | null; profile?: DeviceProfile } = {},
  ): DeviceView {
    let publicKey: RsaPublicKey;
    try {
      publicKey = typeof key === 'string' ? parsePublicKeyPem(key) : key;
    } catch (e) {
      throw new AppError('bad_argument', `not a usable RSA public key: ${(e as Error).message}`);
    }
    const palette = opts.palette ?? this.store.deviceSettings(id).palette;
    if (!(palette in PALETTES)) throw new AppError('bad_argument', `palette must be one of ${Object.keys(PALETTES).join(', ')}`);
    if (opts.profile !== undefined && !isDeviceProfile(opts.profile)) throw new AppError('bad_argument', `profile must be srup or reference`);
    const rec = this.engine.provision(id, publicKey, { profile: opts.profile });
    const label = opts.label === undefined ? this.store.deviceSettings(id).label : opts.label;
    this.store.setDeviceSettings(id, { palette, label: label === null ? null : String(label).slice(0, 100) || null });
    this.log('info', 'device_added', { device: idToHex(id), profile: rec.profile });
    this.emit({ kind: 'devices' });
    return this.deviceView(rec);
  }

  async approve(id: bigint): Promise<void> {
    await this.engine.approveJoin(id);
  }

  async refuse(id: bigint): Promise<void> {
    await this.engine.refuseJoin(id);
  }

  async joinCommand(id: bigint): Promise<void> {
    await this.engine.sendJoinCommand(id);
  }

  /** The device's status, or null for a device that does not answer actions (the broker took it). */
  action(id: bigint, actionId: number): Promise<ActionResult> {
    return this.engine.sendAction(id, actionId);
  }

  /** Changes what the server expects of a device ('srup' or 'reference') without registering it again. */
  setProfile(id: bigint, profile: unknown): DeviceView {
    if (!isDeviceProfile(profile)) throw new AppError('bad_argument', 'profile must be srup or reference');
    const rec = this.engine.setProfile(id, profile);
    this.emit({ kind: 'devices' });
    return this.deviceView(rec);
  }

  requestId(id: bigint): Promise<string> {
    return this.engine.requestId(id);
  }

  async sendData(id: bigint, dataId: string, kind: string, value: unknown): Promise<void> {
    if (typeof dataId !== 'string' || dataId.length === 0) throw new AppError('bad_argument', 'dataId is required');
    if (!isDataKind(kind)) throw new AppError('bad_argument', `kind must be a data kind such as string, int32, double, bytes`);
    let v: DataValue<DataKind>;
    if (kind === 'string') v = String(value);
    else if (kind === 'bytes') {
      if (typeof value !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(value)) throw new AppError('bad_argument', 'bytes are given as hex');
      v = Uint8Array.from(Buffer.from(value, 'hex'));
    } else if (kind === 'uint64' || kind === 'int64') {
      try {
        v = BigInt(value as string);
      } catch {
        throw new AppError('bad_argument', `${String(value)} is not an integer`);
      }
    } else {
      const n = Number(value);
      if (typeof value === 'string' && value.trim() === '') throw new AppError('bad_argument', 'value is required');
      if (!Number.isFinite(n)) throw new AppError('bad_argument', `${String(value)} is not a number`);
      v = n;
    }
    await this.engine.sendData(id, dataId, kind, v as never);
  }

  async terminate(id: bigint): Promise<void> {
    await this.engine.terminate(id);
  }

  async deregister(id: bigint): Promise<void> {
    await this.engine.deregister(id);
  }
}

export { CampaignError };
