/**
 * Update campaigns: one image sent to a set of devices. The protocol work (initiate, response matching,
 * activate, confirmation, timeouts) is the engine's; a campaign only remembers which update token belongs to
 * which device, whether the operator asked for activation, and the image the server serves.
 *
 * Everything is in the registry, so a restarted server carries on: targets whose initiate never went out are
 * sent, and targets marked for activation whose device has reported a good download are activated. Activation
 * follows the device's 0x00 by itself when the campaign is automatic or the operator pressed Activate early.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { C2Engine } from '../../modules/c2/engine.js';
import type { C2Event } from '../../modules/c2/events.js';
import type { Log } from '../../modules/c2/host.js';
import type { UpdateRecord } from '../../modules/c2/registry.js';
import { idToHex } from '../../hosts/node/durable.js';
import type { SqlRegistry } from '../../hosts/node/sql-registry.js';
import type { C2Store, CampaignRecord, CampaignTarget } from './store.js';

export const MAX_IMAGE_BYTES = 256 * 1024 * 1024;

export interface ImageInfo {
  /** File name under the images directory: "<sha256>.bin". */
  readonly file: string;
  readonly digest: string;
  readonly size: number;
}

export interface TargetView {
  readonly device: string;
  readonly token: string | null;
  /** Why the initiate could not be sent, or null. */
  readonly error: string | null;
  readonly activate: boolean;
  /**
   * 'not_sent' until the initiate went out (or 'error'), then the update's state: 'confirmed' (the device
   * confirmed the new image) and 'activated' (a device that never confirms took the activate) are done.
   */
  readonly state: 'not_sent' | 'error' | UpdateRecord['state'];
  readonly status: number | null;
  readonly failure: string | null;
  readonly updatedAt: number;
}

/** A campaign as the API shows it: the stored record, its targets and their counts. */
export interface CampaignView extends CampaignRecord {
  readonly targets: TargetView[];
  /** How many targets are in each state. */
  readonly counts: Record<string, number>;
  /** How many targets are done: 'confirmed', or 'activated' for devices that do not confirm (pySRUP). */
  readonly done: number;
}

/** A target whose update went through: confirmed by the device, or activated on one that never confirms. */
function targetDone(state: TargetView['state']): boolean {
  return state === 'confirmed' || state === 'activated';
}

/** Why a campaign request was refused; the HTTP server (http.ts) maps each code to its status. */
export type CampaignErrorCode =
  | 'bad_argument' // a value the request may not carry (no devices, a device twice, a bad URL or digest...)
  | 'unknown_device' // a device that is not registered
  | 'not_joined' // a device that is not joined
  | 'unknown_image' // no uploaded image with that name
  | 'unknown_campaign'
  | 'unknown_target' // a device that is not in the campaign
  | 'not_retryable' // only failed devices are retried
  | 'image_too_large'
  | 'image_fetch_failed' // the image URL could not be fetched, or answered an HTTP error
  | 'image_fetch_timeout'; // the image URL did not answer

export class CampaignError extends Error {
  readonly code: CampaignErrorCode;
  constructor(code: CampaignErrorCode, message: string) {
    super(message);
    this.name = 'CampaignError';
    this.code = code;
  }
}

export interface CampaignDeps {
  readonly registry: SqlRegistry;
  /** The campaigns and their targets. */
  readonly store: C2Store;
  readonly engine: C2Engine;
  readonly log: Log;
  readonly imagesDir: string;
  /** The URL devices download an image file from. */
  readonly imageUrl: (file: string) => string;
  readonly now: () => number;
  /** Told whenever a campaign changed. */
  readonly changed: (campaign: number) => void;
}

/** Streams `body` to `file` (through a temp file) while hashing it; refuses more than `max` bytes. */
export async function storeStream(body: Readable, dir: string, max = MAX_IMAGE_BYTES): Promise<ImageInfo> {
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.upload-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const out = fs.createWriteStream(tmp, { mode: 0o600 });
  const hash = createHash('sha256');
  let size = 0;
  let tooLarge = false;
  try {
    await new Promise<void>((resolve, reject) => {
      body.on('data', (chunk: Buffer) => {
        if (tooLarge) return;
        size += chunk.length;
        if (size > max) {
          // The rest is read and dropped (not a reset connection), so the sender gets the 413 answer.
          tooLarge = true;
          out.removeAllListeners('drain');
          body.resume();
          reject(new CampaignError('image_too_large', `the image is larger than ${max} bytes`));
          return;
        }
        hash.update(chunk);
        if (!out.write(chunk)) {
          body.pause();
          out.once('drain', () => body.resume());
        }
      });
      body.on('end', () => resolve());
      body.on('error', reject);
      out.on('error', reject);
    });
    await new Promise<void>((resolve, reject) => {
      out.end(() => resolve());
      out.on('error', reject);
    });
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const digest = hash.digest('hex');
    const file = `${digest}.bin`;
    fs.renameSync(tmp, path.join(dir, file));
    return { file, digest, size };
  } catch (e) {
    out.destroy();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Refuses what a device could not download: anything but an http:// or https:// URL. */
function checkImageUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CampaignError('bad_argument', `not a URL: ${url}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CampaignError('bad_argument', 'the image URL must be http:// or https://');
}

/** SHA-256 and size of what `url` serves (for campaigns that name an image hosted elsewhere). */
export function digestOfUrl(url: string, redirects = 5): Promise<{ digest: string; size: number }> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new CampaignError('bad_argument', `not a URL: ${url}`));
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      reject(new CampaignError('bad_argument', 'the image URL must be http:// or https://'));
      return;
    }
    const get = u.protocol === 'https:' ? https.get : http.get;
    const req = get(u, (res) => {
      const code = res.statusCode ?? 0;
      if (code >= 300 && code < 400 && res.headers.location && redirects > 0) {
        res.resume();
        digestOfUrl(new URL(res.headers.location, u).href, redirects - 1).then(resolve, reject);
        return;
      }
      if (code < 200 || code >= 300) {
        res.resume();
        reject(new CampaignError('image_fetch_failed', `${url} answered HTTP ${code}`));
        return;
      }
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_IMAGE_BYTES) {
          req.destroy(new CampaignError('image_too_large', 'the image is too large'));
          return;
        }
        hash.update(c);
      });
      res.on('end', () => resolve({ digest: hash.digest('hex'), size }));
      res.on('error', reject);
    });
    req.setTimeout(30000, () => req.destroy(new CampaignError('image_fetch_timeout', `${url} did not answer`)));
    req.on('error', (e) => reject(e instanceof CampaignError ? e : new CampaignError('image_fetch_failed', `cannot fetch ${url}: ${e.message}`)));
  });
}

export class Campaigns {
  private readonly d: CampaignDeps;
  private off: (() => void) | null = null;

  constructor(deps: CampaignDeps) {
    this.d = deps;
  }

  /** Listens to the engine and finishes what a previous run left undone. Call after engine.start(). */
  start(): void {
    this.off = this.d.engine.on((e) => this.onEvent(e));
    const { registry, store } = this.d;
    for (const c of store.campaigns()) {
      for (const t of store.targets(c.id)) {
        if (t.token === null && t.error === null) this.initiate(c, t.device);
        else if (t.token !== null && t.activate) {
          const u = registry.update(t.token);
          if (u !== null && u.state === 'staged') this.sendActivate(c.id, t.token);
        }
      }
    }
  }

  stop(): void {
    this.off?.();
    this.off = null;
  }

  /** Creates a campaign and sends the initiates. Exactly one of `file` (an uploaded image) or `url` is given. */
  async create(req: { name?: string; file?: string; url?: string; digest?: string; devices: bigint[]; autoActivate?: boolean }): Promise<CampaignView> {
    const { registry, store } = this.d;
    if (req.devices.length === 0) throw new CampaignError('bad_argument', 'choose at least one device');
    if (new Set(req.devices).size !== req.devices.length) throw new CampaignError('bad_argument', 'a device is listed twice');
    for (const id of req.devices) {
      const dev = registry.device(id);
      if (dev === null) throw new CampaignError('unknown_device', `device ${idToHex(id)} is not registered`);
      if (dev.state !== 'joined') throw new CampaignError('not_joined', `device ${idToHex(id)} is ${dev.state}, not joined`);
    }
    let url: string;
    let digest: string;
    let size: number | null;
    let file: string | null = null;
    if (req.file !== undefined && req.url === undefined) {
      if (!/^[0-9a-f]{64}\.bin$/.test(req.file) || !fs.existsSync(path.join(this.d.imagesDir, req.file))) {
        throw new CampaignError('unknown_image', 'no uploaded image with that name');
      }
      file = req.file;
      digest = req.file.slice(0, 64);
      size = fs.statSync(path.join(this.d.imagesDir, req.file)).size;
      url = this.d.imageUrl(file);
    } else if (req.url !== undefined && req.file === undefined) {
      url = req.url;
      checkImageUrl(url);
      if (req.digest !== undefined) {
        if (!/^[0-9a-fA-F]{64}$/.test(req.digest)) throw new CampaignError('bad_argument', 'digest must be 64 hex digits');
        digest = req.digest.toLowerCase();
        size = null;
      } else {
        const got = await digestOfUrl(url);
        digest = got.digest;
        size = got.size;
      }
    } else {
      throw new CampaignError('bad_argument', 'give either an uploaded image or a URL');
    }
    const name = (req.name ?? '').trim() || (file !== null ? `image ${digest.slice(0, 12)}` : url);
    const c = store.addCampaign(
      { name: name.slice(0, 200), url, digest, size, file, autoActivate: req.autoActivate === true, devices: req.devices },
      this.d.now(),
    );
    this.d.log('info', 'campaign_created', { campaign: c.id, devices: req.devices.length, digest });
    for (const id of req.devices) this.initiate(c, id);
    this.d.changed(c.id);
    return this.view(c.id) as CampaignView;
  }

  /**
   * Marks devices of a campaign (all when `devices` is omitted) for activation, and sends the activate now to
   * those whose download succeeded; the others are activated when they report 0x00. Returns how many activates
   * were sent now.
   */
  activate(campaign: number, devices?: bigint[]): number {
    const { registry, store } = this.d;
    const c = store.campaign(campaign);
    if (c === null) throw new CampaignError('unknown_campaign', `no campaign ${campaign}`);
    const targets = store.targets(campaign);
    const chosen = devices === undefined ? targets : devices.map((id) => {
      const t = targets.find((x) => x.device === id);
      if (t === undefined) throw new CampaignError('unknown_target', `device ${idToHex(id)} is not in campaign ${campaign}`);
      return t;
    });
    let sent = 0;
    for (const t of chosen) {
      const now = this.d.now();
      if (!t.activate) store.setTarget(campaign, t.device, { activate: true }, now);
      if (t.token !== null && registry.update(t.token)?.state === 'staged') {
        this.sendActivate(campaign, t.token);
        sent++;
      }
    }
    this.d.changed(campaign);
    return sent;
  }

  /**
   * Sends the image again (a new initiate, a new token) to devices of a campaign whose update failed or could
   * not be sent — all such devices when `devices` is omitted. Returns how many initiates were sent.
   */
  retry(campaign: number, devices?: bigint[]): number {
    const { registry, store } = this.d;
    const c = store.campaign(campaign);
    if (c === null) throw new CampaignError('unknown_campaign', `no campaign ${campaign}`);
    const views = new Map(store.targets(campaign).map((t) => [t.device, this.targetView(t)]));
    const chosen = devices ?? [...views.keys()].filter((id) => {
      const v = views.get(id)!;
      return v.state === 'failed' || v.state === 'error';
    });
    for (const id of chosen) {
      const v = views.get(id);
      if (v === undefined) throw new CampaignError('unknown_target', `device ${idToHex(id)} is not in campaign ${campaign}`);
      if (v.state !== 'failed' && v.state !== 'error') throw new CampaignError('not_retryable', `device ${idToHex(id)} is ${v.state}; only failed devices are retried`);
    }
    for (const id of chosen) this.initiate(c, id);
    this.d.changed(campaign);
    return chosen.length;
  }

  view(id: number): CampaignView | null {
    const c = this.d.store.campaign(id);
    return c === null ? null : this.toView(c);
  }

  list(): CampaignView[] {
    return this.d.store.campaigns().reverse().map((c) => this.toView(c));
  }

  private toView(c: CampaignRecord): CampaignView {
    const { registry, store } = this.d;
    const targets = store.targets(c.id).map((t) => this.targetView(t));
    const counts: Record<string, number> = {};
    for (const t of targets) counts[t.state] = (counts[t.state] ?? 0) + 1;
    return { ...c, targets, counts, done: targets.filter((t) => targetDone(t.state)).length };
  }

  private targetView(t: CampaignTarget): TargetView {
    const u = t.token === null ? null : this.d.registry.update(t.token);
    return {
      device: idToHex(t.device),
      token: t.token,
      error: t.error,
      activate: t.activate,
      state: u !== null ? u.state : t.error !== null ? 'error' : 'not_sent',
      status: u?.status ?? null,
      failure: u?.failure ?? null,
      updatedAt: Math.max(t.updatedAt, u?.updatedAt ?? 0),
    };
  }

  private initiate(c: CampaignRecord, device: bigint): void {
    const { registry, store, engine } = this.d;
    try {
      const { token, response } = engine.startUpdate(device, c.url, c.digest);
      // Outcomes arrive as engine events (also after a restart); the promise itself is not needed.
      response.catch(() => undefined);
      store.setTarget(c.id, device, { token, error: null }, this.d.now());
    } catch (e) {
      store.setTarget(c.id, device, { error: e instanceof Error ? e.message : String(e) }, this.d.now());
    }
  }

  private sendActivate(campaign: number, token: string): void {
    this.d.engine.activateUpdate(token).catch((e: unknown) => {
      this.d.log('warn', 'activate_failed', { campaign, token, why: e instanceof Error ? e.message : String(e) });
      this.d.changed(campaign);
    });
  }

  private onEvent(e: C2Event): void {
    if (e.type !== 'update') return;
    const t = this.d.store.targetByToken(e.update.token);
    if (t === null) return;
    if (e.update.state === 'staged' && t.activate) this.sendActivate(t.campaign, t.token as string);
    this.d.changed(t.campaign);
  }
}
