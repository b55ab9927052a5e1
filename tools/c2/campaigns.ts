/**
 * Update campaigns: one image sent to a set of devices, in waves. The protocol work (initiate, response matching,
 * activate, confirmation, timeouts) is the engine's; a campaign only remembers which update token belongs to
 * which device, whether the operator asked for activation, the image the server serves, and where the rollout
 * stands.
 *
 * Waves. A campaign is one wave, or a first wave (N devices or P % of them) and then the rest. When every target
 * of the first wave has settled (its update confirmed, activated or failed, its initiate could not be sent, or
 * its download is good and no activation was asked), the rest is sent by itself if the plan says 'auto' and the
 * wave's failure rate is at most maxFailureRate; otherwise the campaign waits, with the reason, for the operator's
 * go (proceed). The move to the next wave is one conditional write (C2Store.transition): with several server
 * nodes, whichever node sees the wave settle first makes it, and only that node sends the next wave.
 *
 * The operator can pause (no initiate and no activate is sent until resume; updates already under way finish),
 * resume, and cancel (final: nothing more is sent, the history stays). 'done' is not stored: a running campaign
 * is done when its last wave is sent and every target has settled.
 *
 * Everything is in the registry, so a restarted server carries on: targets of sent waves whose initiate never
 * went out are sent, targets marked for activation whose device has reported a good download are activated, and
 * a wave that settled while no server was running is moved on. Activation follows the device's 0x00 by itself
 * when the campaign is automatic or the operator pressed Activate early.
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
import type { DeviceState } from '../../modules/c2/registry.js';
import { Status } from '../../modules/srup/schema.js';
import { hexToId, idToHex } from '../../hosts/node/durable.js';
import type { SqlRegistry } from '../../hosts/node/sql-registry.js';
import type { C2Store, CampaignRecord, CampaignState, CampaignTarget, ImageRecord, TargetSpec, WavePlan } from './store.js';

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
  /** The wave it belongs to (0 first). */
  readonly wave: number;
  /** The device answered the activate with 0x1F: the new image did not stay, the previous one runs again. */
  readonly rolledBack: boolean;
  readonly updatedAt: number;
}

/** One wave of a campaign: its targets, how many initiates went out, how many are done, how many failed. */
export interface WaveView {
  readonly index: number;
  readonly size: number;
  readonly sent: number;
  readonly done: number;
  readonly failed: number;
}

export type CampaignStateView = CampaignState | 'done';

/** A campaign as the API shows it: the stored record, its targets, waves and their counts. */
export interface CampaignView extends Omit<CampaignRecord, 'state'> {
  /** The stored state, or 'done' for a running campaign whose last wave is sent and has settled. */
  readonly state: CampaignStateView;
  readonly targets: TargetView[];
  readonly waves: WaveView[];
  /** How many targets are in each state. */
  readonly counts: Record<string, number>;
  /** How many targets are done: 'confirmed', or 'activated' for devices that do not confirm (pySRUP). */
  readonly done: number;
  /** Failed targets by the status code the device sent ("0xfe"), or by why ("initiate_timeout", "send_error"). */
  readonly failures: Record<string, number>;
}

/** A target whose update went through: confirmed by the device, or activated on one that never confirms. */
function targetDone(state: TargetView['state']): boolean {
  return state === 'confirmed' || state === 'activated';
}

function targetFailed(state: string): boolean {
  return state === 'failed' || state === 'error';
}

/**
 * A target that needs nothing more for its wave to be finished: its update ended (done or failed), its initiate
 * could not be sent, or its download is good and no activation was asked for it.
 */
function targetSettled(state: string, activate: boolean): boolean {
  return targetDone(state as TargetView['state']) || targetFailed(state) || (state === 'staged' && !activate);
}

/** The key a failed target is counted under: the device's status byte, else why the server gave up. */
function failureKey(state: string, status: number | null, failure: string | null): string {
  if (state === 'error') return 'send_error';
  if (status !== null) return `0x${status.toString(16).padStart(2, '0')}`;
  return failure ?? 'failed';
}

/** What a device list, a tag or a filter chooses (TargetSpec); what the resolver is asked. */
export interface TargetFilter {
  readonly search?: string;
  readonly state?: DeviceState;
  readonly online?: boolean;
  readonly firmware?: string;
  readonly tag?: string;
}

/**
 * Resolves a filter to device ids (any state: the campaign keeps the joined ones). Throws
 * CampaignError('bad_argument') for a part it cannot resolve.
 */
export type TargetResolver = (filter: TargetFilter) => bigint[];

const DEVICE_STATES: readonly DeviceState[] = ['provisioned', 'pending', 'joined', 'refused', 'failed', 'terminated', 'deregistered', 'resigned'];
const TAG = /^[A-Za-z0-9_.:-]{1,32}$/;
/** Most devices one campaign may list. */
export const MAX_CAMPAIGN_DEVICES = 100_000;

/**
 * The resolver of the registry alone: search (id, label, firmware), state and firmware. Tags and the online state
 * are not kept by the registry: a filter on them is refused.
 */
export function registryResolver(registry: SqlRegistry, store: C2Store): TargetResolver {
  return (f) => {
    if (f.tag !== undefined) throw new CampaignError('bad_argument', 'tags are not available');
    if (f.online !== undefined) throw new CampaignError('bad_argument', 'the online state is not available for targeting');
    const labels = store.allDeviceSettings();
    const search = f.search?.toLowerCase();
    const firmware = f.firmware?.toLowerCase();
    const fw = (d: { firmwareName: string | null; firmwareVersion: string | null }) =>
      [d.firmwareName, d.firmwareVersion].filter((x) => x !== null).join(' ').toLowerCase();
    return registry
      .devices(f.state)
      .filter((d) => {
        if (firmware !== undefined && !fw(d).includes(firmware)) return false;
        if (search === undefined) return true;
        const label = labels.get(d.id)?.label?.toLowerCase() ?? '';
        return idToHex(d.id).includes(search) || label.includes(search) || fw(d).includes(search);
      })
      .map((d) => d.id);
  };
}

/** A campaign request as the API takes it, checked (parseCampaignRequest). */
export interface CampaignRequest {
  name?: string;
  /** A library image's id. */
  image?: number;
  /** An uploaded file ("<sha256>.bin"; the API body before the library). */
  file?: string;
  url?: string;
  digest?: string;
  target: TargetSpec;
  waves?: WavePlanRequest;
  autoActivate?: boolean;
  /** The operator who made it. */
  createdBy?: string;
}

export interface WavePlanRequest {
  readonly first: { readonly count: number } | { readonly percent: number };
  readonly then: 'manual' | 'auto';
  readonly maxFailureRate?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(message: string): never {
  throw new CampaignError('bad_argument', message);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(`${what}: unknown field "${k}" (allowed: ${allowed.join(', ')})`);
}

function deviceList(v: unknown, what: string): string[] {
  if (!Array.isArray(v)) bad(`${what} must be a list of device ids`);
  if (v.length === 0) bad('choose at least one device');
  if (v.length > MAX_CAMPAIGN_DEVICES) bad(`at most ${MAX_CAMPAIGN_DEVICES} devices per campaign`);
  return v.map((d) => {
    const id = hexToId(d);
    if (id === null) bad(`not a device id (1 to 16 hex digits): ${String(d)}`);
    return idToHex(id);
  });
}

/**
 * Checks a POST /api/campaigns body (docs/c2.md): the image (`image`, or `url` with an optional `digest`, or the
 * older `file`), the targets (`target`, or the older `devices`), `waves`, `autoActivate`, `name`. Throws
 * CampaignError('bad_argument') naming what is wrong.
 */
export function parseCampaignRequest(b: Record<string, unknown>): CampaignRequest {
  const out: CampaignRequest = { target: { devices: [] } };
  if (b.name !== undefined && b.name !== null) {
    if (typeof b.name !== 'string') bad('name must be text');
    out.name = b.name;
  }
  const present = (v: unknown) => v !== undefined && v !== null && v !== '';
  const images = ['image', 'file', 'url'].filter((k) => present(b[k]));
  if (images.length !== 1) bad('give exactly one of image (a library image id), url (with digest) or file');
  if (present(b.image)) {
    if (typeof b.image !== 'number' || !Number.isSafeInteger(b.image) || b.image < 1) bad('image must be a library image id');
    out.image = b.image;
  } else if (present(b.file)) {
    if (typeof b.file !== 'string') bad('file must be text');
    out.file = b.file;
  } else {
    if (typeof b.url !== 'string') bad('url must be text');
    out.url = b.url;
  }
  if (present(b.digest)) {
    if (out.url === undefined) bad('digest goes with url');
    if (typeof b.digest !== 'string' || !/^[0-9a-fA-F]{64}$/.test(b.digest)) bad('digest must be 64 hex digits');
    out.digest = b.digest;
  }
  if (b.target !== undefined && b.devices !== undefined) bad('give target or devices, not both');
  if (b.target === undefined) {
    if (b.devices === undefined) bad('target is required: { devices: [...] }, { tag: T } or { filter: {...} }');
    out.target = { devices: deviceList(b.devices, 'devices') };
  } else {
    const t = b.target;
    if (!isObject(t) || Object.keys(t).length !== 1) bad('target must be one of { devices: [...] }, { tag: T }, { filter: {...} }');
    if (t.devices !== undefined) out.target = { devices: deviceList(t.devices, 'target.devices') };
    else if (t.tag !== undefined) {
      if (typeof t.tag !== 'string' || !TAG.test(t.tag)) bad('target.tag must be 1 to 32 of A-Z a-z 0-9 _ . : -');
      out.target = { tag: t.tag };
    } else if (t.filter !== undefined) {
      const f = t.filter;
      if (!isObject(f)) bad('target.filter must be an object');
      onlyKeys(f, ['search', 'state', 'online', 'firmware', 'tag'], 'target.filter');
      const filter: Record<string, string | boolean> = {};
      for (const k of ['search', 'firmware']) {
        if (f[k] === undefined) continue;
        if (typeof f[k] !== 'string' || f[k].length > 200) bad(`target.filter.${k} must be text (at most 200 characters)`);
        if (f[k] !== '') filter[k] = f[k];
      }
      if (f.state !== undefined) {
        if (!DEVICE_STATES.includes(f.state as DeviceState)) bad(`target.filter.state must be one of ${DEVICE_STATES.join(', ')}`);
        filter.state = f.state as string;
      }
      if (f.online !== undefined) {
        if (typeof f.online !== 'boolean') bad('target.filter.online must be true or false');
        filter.online = f.online;
      }
      if (f.tag !== undefined) {
        if (typeof f.tag !== 'string' || !TAG.test(f.tag)) bad('target.filter.tag must be 1 to 32 of A-Z a-z 0-9 _ . : -');
        filter.tag = f.tag;
      }
      out.target = { filter };
    } else bad('target must be one of { devices: [...] }, { tag: T }, { filter: {...} }');
  }
  if (b.waves !== undefined && b.waves !== null) {
    const w = b.waves;
    if (!isObject(w)) bad('waves must be { first: { count: N } | { percent: P }, then: "manual" | "auto", maxFailureRate?: 0..1 }');
    onlyKeys(w, ['first', 'then', 'maxFailureRate'], 'waves');
    const f = w.first;
    if (!isObject(f) || Object.keys(f).length !== 1) bad('waves.first must be { count: N } or { percent: P }');
    let first: WavePlanRequest['first'];
    if (f.count !== undefined) {
      if (typeof f.count !== 'number' || !Number.isSafeInteger(f.count) || f.count < 1) bad('waves.first.count must be a whole number of at least 1');
      first = { count: f.count };
    } else if (f.percent !== undefined) {
      if (typeof f.percent !== 'number' || !Number.isFinite(f.percent) || f.percent <= 0 || f.percent > 100) bad('waves.first.percent must be more than 0 and at most 100');
      first = { percent: f.percent };
    } else bad('waves.first must be { count: N } or { percent: P }');
    const then = w.then ?? 'manual';
    if (then !== 'manual' && then !== 'auto') bad('waves.then must be "manual" or "auto"');
    let maxFailureRate: number | undefined;
    if (w.maxFailureRate !== undefined) {
      const r = w.maxFailureRate;
      if (typeof r !== 'number' || !Number.isFinite(r) || r < 0 || r > 1) bad('waves.maxFailureRate must be a number from 0 to 1');
      maxFailureRate = r;
    }
    out.waves = { first, then, ...(maxFailureRate !== undefined ? { maxFailureRate } : {}) };
  }
  if (b.autoActivate !== undefined && b.autoActivate !== null) {
    if (typeof b.autoActivate !== 'boolean') bad('autoActivate must be true or false');
    out.autoActivate = b.autoActivate;
  }
  return out;
}

/** Checks an image's name and version for the library (the upload's query parameters). */
export function checkImageName(name: string | null, version: string | null): { name: string | null; version: string } {
  const n = name === null ? null : name.trim();
  if (n !== null && (n.length === 0 || n.length > 100 || /[\u0000-\u001f\u007f]/.test(n))) bad('name must be 1 to 100 printable characters');
  const v = (version ?? '').trim();
  if (v.length > 64 || /[\u0000-\u001f\u007f]/.test(v)) bad('version must be at most 64 printable characters');
  return { name: n, version: v };
}

/** Why a campaign request was refused; the HTTP server (http.ts) maps each code to its status. */
export type CampaignErrorCode =
  | 'bad_argument' // a value the request may not carry (no devices, a device twice, a bad URL, digest, wave plan...)
  | 'unknown_device' // a device that is not registered
  | 'not_joined' // a device that is not joined
  | 'unknown_image' // no uploaded image with that name, no library image with that id
  | 'unknown_campaign'
  | 'unknown_target' // a device that is not in the campaign
  | 'not_retryable' // only failed devices are retried
  | 'bad_campaign_state' // paused, cancelled, done, no further wave, a wave not sent yet, changed meanwhile
  | 'image_in_use' // a library image a campaign that is not over sends
  | 'image_missing' // the image's file is gone (removed from the library)
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
  /** Chooses the devices of a tag or filter target (default registryResolver). */
  readonly resolve?: TargetResolver;
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
  private readonly resolve: TargetResolver;
  private off: (() => void) | null = null;

  constructor(deps: CampaignDeps) {
    this.d = deps;
    this.resolve = deps.resolve ?? registryResolver(deps.registry, deps.store);
  }

  /** Listens to the engine and finishes what a previous run left undone. Call after engine.start(). */
  start(): void {
    this.off = this.d.engine.on((e) => this.onEvent(e));
    for (const c of this.d.store.campaigns()) {
      if (c.state === 'running' || c.state === 'waiting') this.sendPending(c);
      this.advance(c.id);
    }
  }

  stop(): void {
    this.off?.();
    this.off = null;
  }

  /**
   * Moves on every running campaign whose wave has settled (the server application calls it now and then: with
   * several nodes, a node that died between a wave's last answer and the move leaves it to the others).
   */
  sweep(): void {
    for (const c of this.d.store.campaigns()) if (c.state === 'running' && c.plan !== null && c.currentWave < 1) this.advance(c.id);
  }

  // ============================================================================================ images

  /** Adds an uploaded file to the library (the same digest again: the row already there). */
  addImage(info: ImageInfo, o: { name: string | null; version: string; by: string }): { image: ImageRecord; created: boolean } {
    const r = this.d.store.addImage({
      name: o.name ?? `image ${info.digest.slice(0, 12)}`,
      version: o.version,
      digest: info.digest,
      size: info.size,
      file: info.file,
      uploadedAt: this.d.now(),
      uploadedBy: o.by,
    });
    if (r.created) this.d.log('info', 'image_added', { image: r.image.id, digest: info.digest, by: o.by });
    return r;
  }

  images(): (ImageRecord & { usedBy: number })[] {
    return this.d.store.images();
  }

  /** Removes an image from the library and its file; refused (409) while a campaign that is not over sends it. */
  removeImage(id: number): void {
    const { store } = this.d;
    const img = store.image(id);
    if (img === null) throw new CampaignError('unknown_image', `no image ${id}`);
    for (const c of store.campaignsByImage(id)) {
      const state = this.stateOf(c);
      if (state !== 'done' && state !== 'cancelled') throw new CampaignError('image_in_use', `image ${id} is used by campaign ${c.id}, which is ${state}`);
    }
    store.removeImage(id, this.d.now());
    // Another library row never names the same file (one row per digest); a finished campaign keeps its history.
    fs.rmSync(path.join(this.d.imagesDir, img.file), { force: true });
    this.d.log('info', 'image_removed', { image: id, digest: img.digest });
  }

  // ============================================================================================ campaigns

  /**
   * Creates a campaign and sends the first wave's initiates. The image is a library image, an uploaded file or a
   * URL; the targets a list of devices (each registered and joined) or a tag or filter (its joined devices).
   */
  async create(req: CampaignRequest | { name?: string; file?: string; url?: string; digest?: string; devices: bigint[]; autoActivate?: boolean }): Promise<CampaignView> {
    const { store } = this.d;
    const r: CampaignRequest = 'devices' in req ? { ...req, target: { devices: req.devices.map(idToHex) } } : req;
    const devices = this.targetDevices(r.target);
    let url: string;
    let digest: string;
    let size: number | null;
    let file: string | null = null;
    let image: ImageRecord | null = null;
    if (r.image !== undefined) {
      image = store.image(r.image);
      if (image === null) throw new CampaignError('unknown_image', `no image ${r.image} in the library`);
      if (!fs.existsSync(path.join(this.d.imagesDir, image.file))) throw new CampaignError('image_missing', `the file of image ${r.image} is missing`);
      file = image.file;
      digest = image.digest;
      size = image.size;
      url = this.d.imageUrl(file);
    } else if (r.file !== undefined && r.url === undefined) {
      if (!/^[0-9a-f]{64}\.bin$/.test(r.file) || !fs.existsSync(path.join(this.d.imagesDir, r.file))) {
        throw new CampaignError('unknown_image', 'no uploaded image with that name');
      }
      file = r.file;
      digest = r.file.slice(0, 64);
      size = fs.statSync(path.join(this.d.imagesDir, r.file)).size;
      url = this.d.imageUrl(file);
      image = store.imageByDigest(digest);
    } else if (r.url !== undefined && r.file === undefined) {
      url = r.url;
      checkImageUrl(url);
      if (r.digest !== undefined) {
        if (!/^[0-9a-fA-F]{64}$/.test(r.digest)) throw new CampaignError('bad_argument', 'digest must be 64 hex digits');
        digest = r.digest.toLowerCase();
        size = null;
      } else {
        const got = await digestOfUrl(url);
        digest = got.digest;
        size = got.size;
      }
    } else {
      throw new CampaignError('bad_argument', 'give either an uploaded image or a URL');
    }
    let plan: WavePlan | null = null;
    let firstWave = devices.length;
    if (r.waves !== undefined) {
      const f = r.waves.first;
      firstWave = 'count' in f ? Math.min(f.count, devices.length) : Math.max(1, Math.ceil((devices.length * f.percent) / 100));
      plan = { first: f, then: r.waves.then, maxFailureRate: r.waves.maxFailureRate ?? 0 };
    }
    const defaultName = image !== null ? `${image.name}${image.version ? ' ' + image.version : ''}` : file !== null ? `image ${digest.slice(0, 12)}` : url;
    const name = (r.name ?? '').trim() || defaultName;
    const c = store.addCampaign(
      {
        name: name.slice(0, 200),
        url,
        digest,
        size,
        file,
        autoActivate: r.autoActivate === true,
        devices,
        image: image?.id ?? null,
        plan,
        firstWave,
        target: r.target,
        createdBy: r.createdBy ?? null,
      },
      this.d.now(),
    );
    this.d.log('info', 'campaign_created', { campaign: c.id, devices: devices.length, firstWave, digest });
    this.sendWave(c, 0);
    this.d.changed(c.id);
    return this.view(c.id) as CampaignView;
  }

  /** The devices a target names: a list (each registered and joined) or a tag or filter (its joined devices). */
  private targetDevices(t: TargetSpec): bigint[] {
    const { registry } = this.d;
    if ('devices' in t) {
      const ids = t.devices.map((d) => {
        const id = hexToId(d);
        if (id === null) throw new CampaignError('bad_argument', `not a device id (1 to 16 hex digits): ${d}`);
        return id;
      });
      if (ids.length === 0) throw new CampaignError('bad_argument', 'choose at least one device');
      if (new Set(ids).size !== ids.length) throw new CampaignError('bad_argument', 'a device is listed twice');
      for (const id of ids) {
        const dev = registry.device(id);
        if (dev === null) throw new CampaignError('unknown_device', `device ${idToHex(id)} is not registered`);
        if (dev.state !== 'joined') throw new CampaignError('not_joined', `device ${idToHex(id)} is ${dev.state}, not joined`);
      }
      return ids;
    }
    const filter: TargetFilter = 'tag' in t ? { tag: t.tag } : (t.filter as TargetFilter);
    const ids = [...new Set(this.resolve(filter))].filter((id) => registry.device(id)?.state === 'joined').sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (ids.length === 0) throw new CampaignError('bad_argument', 'no joined device matches the target');
    if (ids.length > MAX_CAMPAIGN_DEVICES) throw new CampaignError('bad_argument', `the target matches more than ${MAX_CAMPAIGN_DEVICES} devices`);
    return ids;
  }

  /** The operator's go: sends the next wave (the campaign running or waiting). Returns how many initiates went out. */
  proceed(campaign: number): number {
    const c = this.require(campaign);
    this.refuseIf(c, ['paused', 'cancelled']);
    if (c.plan === null || c.currentWave >= 1) throw new CampaignError('bad_campaign_state', `campaign ${campaign} has no further wave`);
    const next = c.currentWave + 1;
    if (!this.d.store.transition(campaign, { states: ['running', 'waiting'], wave: c.currentWave }, { state: 'running', wave: next }, this.d.now())) {
      throw new CampaignError('bad_campaign_state', `campaign ${campaign} changed meanwhile; look again`);
    }
    this.d.log('info', 'campaign_wave', { campaign, wave: next, by: 'operator' });
    const sent = this.sendWave(this.require(campaign), next);
    this.d.changed(campaign);
    return sent;
  }

  /** Stops sending initiates and activates (what is under way finishes) until resume. */
  pause(campaign: number): CampaignView {
    const c = this.require(campaign);
    this.refuseIf(c, ['paused', 'cancelled', 'done']);
    if (!this.d.store.transition(campaign, { states: ['running', 'waiting'], wave: c.currentWave }, { state: 'paused' }, this.d.now())) {
      throw new CampaignError('bad_campaign_state', `campaign ${campaign} changed meanwhile; look again`);
    }
    this.d.log('info', 'campaign_paused', { campaign });
    this.d.changed(campaign);
    return this.view(campaign) as CampaignView;
  }

  /** Carries on a paused campaign: what could not be sent while it was paused is sent now. */
  resume(campaign: number): CampaignView {
    const c = this.require(campaign);
    if (c.state !== 'paused') throw new CampaignError('bad_campaign_state', `campaign ${campaign} is ${this.stateOf(c)}, not paused`);
    if (!this.d.store.transition(campaign, { states: ['paused'] }, { state: 'running' }, this.d.now())) {
      throw new CampaignError('bad_campaign_state', `campaign ${campaign} changed meanwhile; look again`);
    }
    this.d.log('info', 'campaign_resumed', { campaign });
    this.sendPending(this.require(campaign));
    this.advance(campaign);
    this.d.changed(campaign);
    return this.view(campaign) as CampaignView;
  }

  /** Ends a campaign for good: nothing more is sent (updates under way finish); its history stays. */
  cancel(campaign: number): CampaignView {
    const c = this.require(campaign);
    this.refuseIf(c, ['cancelled', 'done']);
    if (!this.d.store.transition(campaign, { states: ['running', 'waiting', 'paused'] }, { state: 'cancelled', reason: 'cancelled by the operator' }, this.d.now())) {
      throw new CampaignError('bad_campaign_state', `campaign ${campaign} changed meanwhile; look again`);
    }
    this.d.log('info', 'campaign_cancelled', { campaign });
    this.d.changed(campaign);
    return this.view(campaign) as CampaignView;
  }

  /**
   * Marks devices of a campaign (all of its sent waves when `devices` is omitted) for activation, and sends the
   * activate now to those whose download succeeded; the others are activated when they report 0x00. Returns how
   * many activates were sent now.
   */
  activate(campaign: number, devices?: bigint[]): number {
    const { registry, store } = this.d;
    const c = this.require(campaign);
    this.refuseIf(c, ['paused', 'cancelled']);
    const targets = store.targets(campaign);
    const chosen = devices === undefined ? targets.filter((t) => t.wave <= c.currentWave) : devices.map((id) => {
      const t = targets.find((x) => x.device === id);
      if (t === undefined) throw new CampaignError('unknown_target', `device ${idToHex(id)} is not in campaign ${campaign}`);
      if (t.wave > c.currentWave) throw new CampaignError('bad_campaign_state', `device ${idToHex(id)} is in a wave not sent yet`);
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
   * not be sent — all such devices when `devices` is omitted. A campaign waiting after its wave runs again (the
   * wave is judged again once the retried devices settle). Returns how many initiates were sent.
   */
  retry(campaign: number, devices?: bigint[]): number {
    const { store } = this.d;
    const c = this.require(campaign);
    this.refuseIf(c, ['paused', 'cancelled']);
    if (c.file !== null && !fs.existsSync(path.join(this.d.imagesDir, c.file))) throw new CampaignError('image_missing', `the image of campaign ${campaign} was removed`);
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
    if (chosen.length > 0 && c.state === 'waiting') store.transition(campaign, { states: ['waiting'], wave: c.currentWave }, { state: 'running' }, this.d.now());
    this.batch(() => {
      for (const id of chosen) this.initiate(c, id);
    });
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

  // ============================================================================================ internals

  private require(id: number): CampaignRecord {
    const c = this.d.store.campaign(id);
    if (c === null) throw new CampaignError('unknown_campaign', `no campaign ${id}`);
    return c;
  }

  /** Throws 409 when the campaign is in one of `states` ('done' as stateOf reads it). */
  private refuseIf(c: CampaignRecord, states: readonly CampaignStateView[]): void {
    const s = this.stateOf(c);
    if (!states.includes(s)) return;
    const why = s === 'paused' ? 'paused (resume it first)' : s;
    throw new CampaignError('bad_campaign_state', `campaign ${c.id} is ${why}`);
  }

  /** The stored state, or 'done' for a running campaign whose last wave is sent and settled. */
  private stateOf(c: CampaignRecord): CampaignStateView {
    if (c.state !== 'running') return c.state;
    const last = c.plan === null ? 0 : 1;
    if (c.currentWave < last) return 'running';
    for (let w = 0; w <= last; w++) if (!this.d.store.waveSettled(c.id, w)) return 'running';
    return 'done';
  }

  /**
   * When the current wave has settled: the next wave goes out by itself (plan 'auto', failure rate within the
   * limit), or the campaign waits for the operator's go with the reason. One conditional write decides, so
   * that with several nodes it happens once.
   */
  private advance(id: number): void {
    const { store } = this.d;
    const c = store.campaign(id);
    if (c === null || c.state !== 'running' || c.plan === null || c.currentWave >= 1) return;
    if (!store.waveSettled(id, c.currentWave)) return;
    const wave = store.waveTargets(id, c.currentWave);
    const states = wave.map((t) => t.updateState ?? (t.error !== null ? 'error' : 'not_sent'));
    const failed = states.filter(targetFailed).length;
    const rate = wave.length === 0 ? 0 : failed / wave.length;
    const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
    const next = c.currentWave + 1;
    const now = this.d.now();
    if (c.plan.then === 'auto' && rate <= c.plan.maxFailureRate) {
      if (!store.transition(id, { states: ['running'], wave: c.currentWave }, { state: 'running', wave: next }, now)) return;
      this.d.log('info', 'campaign_wave', { campaign: id, wave: next, by: 'auto', failed, size: wave.length });
      this.sendWave(this.require(id), next);
    } else {
      const reason =
        c.plan.then === 'auto'
          ? `the first wave failed on ${failed} of ${wave.length} devices (${pct(rate)}), above the limit of ${pct(c.plan.maxFailureRate)}: waiting for the operator's go`
          : `the first wave is finished (${failed} of ${wave.length} failed): waiting for the operator's go`;
      if (!store.transition(id, { states: ['running'], wave: c.currentWave }, { state: 'waiting', reason }, now)) return;
      this.d.log('info', 'campaign_waiting', { campaign: id, failed, size: wave.length });
    }
    this.d.changed(id);
  }

  /**
   * Runs `fn` in one transaction: the update records and target rows of many initiates become durable in one
   * commit rather than one each. The messages themselves are published after it (the engine publishes once its
   * writes are durable, on a later turn of the event loop).
   */
  private batch<T>(fn: () => T): T {
    return this.d.store.db.transaction(fn);
  }

  /** Sends the initiates of a wave's targets that have none yet; returns how many. */
  private sendWave(c: CampaignRecord, wave: number): number {
    return this.batch(() => {
      let n = 0;
      for (const t of this.d.store.waveTargets(c.id, wave)) {
        if (t.token === null && t.error === null) {
          this.initiate(c, t.device);
          n++;
        }
      }
      return n;
    });
  }

  /** What a stop or a pause left undone in the sent waves: initiates not sent, activates owed to staged devices. */
  private sendPending(c: CampaignRecord): void {
    this.batch(() => {
      for (let w = 0; w <= c.currentWave; w++) {
        for (const t of this.d.store.waveTargets(c.id, w)) {
          if (t.token === null && t.error === null) this.initiate(c, t.device);
          else if (t.token !== null && t.activate && t.updateState === 'staged') this.sendActivate(c.id, t.token);
        }
      }
    });
  }

  private toView(c: CampaignRecord): CampaignView {
    const targets = this.d.store.targetsWithUpdates(c.id).map((t): TargetView => ({
      device: idToHex(t.device),
      token: t.token,
      error: t.error,
      activate: t.activate,
      state: (t.updateState ?? (t.error !== null ? 'error' : 'not_sent')) as TargetView['state'],
      status: t.status,
      failure: t.failure,
      wave: t.wave,
      rolledBack: t.updateState === 'failed' && t.status === Status.ACTIVATE_FAIL,
      updatedAt: Math.max(t.updatedAt, t.updateAt ?? 0),
    }));
    const counts: Record<string, number> = {};
    const failures: Record<string, number> = {};
    const waveCount = c.plan === null ? 1 : 2;
    const waves = Array.from({ length: waveCount }, (_, index) => ({ index, size: 0, sent: 0, done: 0, failed: 0 }));
    let unsettled = 0;
    for (const t of targets) {
      counts[t.state] = (counts[t.state] ?? 0) + 1;
      const w = waves[Math.min(t.wave, waveCount - 1)];
      w.size++;
      if (t.token !== null) w.sent++;
      if (targetDone(t.state)) w.done++;
      if (targetFailed(t.state)) {
        w.failed++;
        const k = failureKey(t.state, t.status, t.failure);
        failures[k] = (failures[k] ?? 0) + 1;
      }
      if (!targetSettled(t.state, t.activate)) unsettled++;
    }
    const state: CampaignStateView = c.state === 'running' && c.currentWave >= waveCount - 1 && unsettled === 0 ? 'done' : c.state;
    // A campaign made with a list of devices shows the list (by id).
    const target = c.target ?? { devices: targets.map((t) => t.device) };
    return { ...c, state, target, targets, waves, counts, failures, done: targets.filter((t) => targetDone(t.state)).length };
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
      wave: t.wave,
      rolledBack: u !== null && u.state === 'failed' && u.status === Status.ACTIVATE_FAIL,
      updatedAt: Math.max(t.updatedAt, u?.updatedAt ?? 0),
    };
  }

  private initiate(c: CampaignRecord, device: bigint): void {
    const { store, engine } = this.d;
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
    if (e.update.state === 'staged' && t.activate) {
      // Paused or cancelled: no activate now (resume sends the ones owed).
      const c = this.d.store.campaign(t.campaign);
      if (c !== null && (c.state === 'running' || c.state === 'waiting')) this.sendActivate(t.campaign, t.token as string);
    }
    this.advance(t.campaign);
    this.d.changed(t.campaign);
  }
}
