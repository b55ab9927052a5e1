/**
 * The update flow on the server (SRUP-WIRE.md §11 "Update"), with the post-reboot confirmation our agent adds.
 *
 *   initiate 0x01 (new token; url and digest as text + 00)    state 'initiated'
 *     <- response 0x00 with that token                        'staged'  (autoActivate: activate follows)
 *     <- response 0xFC / 0xFD / 0xFE / 0xFF                   'failed', status kept
 *     no answer in initiateTimeoutMs                          'failed', failure 'initiate_timeout'
 *   activate 0x03 with the same token                         'activating'
 *     <- response 0x10 with that token (after the reboot)     'confirmed'
 *     <- response 0x1F                                        'failed', status 0x1F
 *     no answer in activateTimeoutMs                          'failed', failure 'activate_timeout'
 *
 * A device with profile 'reference' (pySRUP) installs on the activate but never confirms (SRUP-WIRE.md §11):
 *
 *   activate 0x03 with the same token                         'activating' (no timer)
 *     the broker took it (PUBACK)                             'activated'
 *     the broker did not take it                              'staged' again (as for every device)
 *
 * The records live in the registry, so a restarted engine picks up where it stopped (timers are re-armed with
 * the time left; a 'reference' activate whose PUBACK was lost in the restart goes back to 'staged', to be sent
 * again). A late answer after a timeout is still recorded: the device did what it says; so is a 0x10 / 0x1F
 * after 'activated'.
 */
import { concat, utf8, utf8DecodeOrNull } from '../srup/bytes.js';
import { Status } from '../srup/schema.js';
import { C2Error } from './errors.js';
import type { EngineCore } from './core.js';
import type { UpdatePatch, UpdateRecord } from './registry.js';
import { updateEnded } from './registry.js';
import { KeyedTimers } from './timers.js';
import { ascii } from './tokens.js';

const DEFAULT_INITIATE_TIMEOUT = 300_000;
const DEFAULT_ACTIVATE_TIMEOUT = 600_000;

/** Status bytes that answer an initiate, and those that answer an activate. */
export const INITIATE_STATUSES: ReadonlySet<number> = new Set([
  Status.UPDATE_SUCCESS,
  Status.UPDATE_FAIL_HTTP_ERROR,
  Status.UPDATE_FAIL_SERVER,
  Status.UPDATE_FAIL_FILE,
  Status.UPDATE_FAIL_DIGEST,
]);
export const ACTIVATE_STATUSES: ReadonlySet<number> = new Set([Status.ACTIVATE_SUCCESS, Status.ACTIVATE_FAIL]);

type Failure = 'initiate_timeout' | 'activate_timeout';

interface Waiter {
  /** 'response': settles when the initiate is answered; 'settled': when the update ends (updateEnded). */
  readonly until: 'response' | 'settled';
  /** Reject (timeout, publish failure) rather than resolve with the failed record. */
  readonly rejectOnFailure: boolean;
  readonly resolve: (u: UpdateRecord) => void;
  readonly reject: (e: Error) => void;
}

export class UpdateFlow {
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly timers: KeyedTimers<string>;

  constructor(private readonly core: EngineCore) {
    this.timers = new KeyedTimers(core.host.clock);
  }

  /** Sends the initiate to a joined device (checked by the caller); see C2Engine.startUpdate. */
  start(id: bigint, url: string, digestHex: string): { token: string; response: Promise<UpdateRecord> } {
    if (typeof url !== 'string' || url.length === 0 || url.indexOf('\0') >= 0) {
      throw new C2Error('bad_argument', 'url must be non-empty text without NUL');
    }
    if (typeof digestHex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(digestHex)) {
      throw new C2Error('bad_argument', 'digest must be the SHA-256 of the file as 64 hex digits');
    }
    const { core } = this;
    const digest = digestHex.toLowerCase();
    const tokenBytes = core.newToken();
    const token = String.fromCharCode(...tokenBytes);
    const fields = { url: concat(utf8(url), new Uint8Array(1)), digest: concat(ascii(digest), new Uint8Array(1)) };
    // Fails here, before anything is stored, if the url is too long for the message.
    core.checkFits('initiate', tokenBytes, fields);
    const rec = core.host.registry.addUpdate({ token, device: id, url, digest }, core.now());
    const response = this.wait(token, 'response', true);
    this.arm(token, core.options.initiateTimeoutMs ?? DEFAULT_INITIATE_TIMEOUT, 'initiate_timeout');
    core.emit({ type: 'update', update: rec });
    core.send('initiate', id, tokenBytes, fields).catch((e: unknown) => this.publishFailed(token, e));
    return { token, response };
  }

  /** Sends the activate for a staged update (by token, or the latest staged one of a device). */
  activate(target: bigint | string): Promise<UpdateRecord> {
    const { core } = this;
    const { registry } = core.host;
    let u: UpdateRecord | null;
    if (typeof target === 'bigint') {
      const staged = registry.updates(target).filter((x) => x.state === 'staged');
      u = staged.length > 0 ? staged[staged.length - 1] : null;
      if (u === null) throw new C2Error('unknown_update', `device ${target.toString(16)} has no staged update`);
    } else {
      u = registry.update(target);
      if (u === null) throw new C2Error('unknown_update', `no update with token ${target}`);
    }
    if (u.state !== 'staged') throw new C2Error('bad_update_state', `update ${u.token} is ${u.state}, not staged`);
    const device = core.requireJoined(u.device);
    const token = u.token;
    const result = this.wait(token, 'settled', true);
    this.set(token, { state: 'activating' });
    if (device.profile === 'reference') {
      // No confirmation will come: the broker taking the activate is all the server can know.
      core.send('activate', u.device, ascii(token), {}).then(
        () => this.activated(token),
        (e: unknown) => this.publishFailed(token, e),
      );
      return result;
    }
    this.arm(token, core.options.activateTimeoutMs ?? DEFAULT_ACTIVATE_TIMEOUT, 'activate_timeout');
    core.send('activate', u.device, ascii(token), {}).catch((e: unknown) => this.publishFailed(token, e));
    return result;
  }

  /** Resolves once the update is 'confirmed', 'activated' or 'failed' (at once if it already is). */
  settled(token: string): Promise<UpdateRecord> {
    const u = this.core.host.registry.update(token);
    if (u === null) return Promise.reject(new C2Error('unknown_update', `no update with token ${token}`));
    if (updateEnded(u.state)) return Promise.resolve(u);
    return this.wait(token, 'settled', false);
  }

  /** A response with an update status from `device`; false when it answers no update of that device. */
  onResponse(device: bigint, tokenBytes: Uint8Array, status: number): boolean {
    const { core } = this;
    const token = utf8DecodeOrNull(tokenBytes);
    const u = token === null ? null : core.host.registry.update(token);
    if (u === null || u.device !== device) return false;
    const activation = ACTIVATE_STATUSES.has(status);
    const waiting = activation
      ? u.state === 'activating' || u.state === 'activated' || (u.state === 'failed' && u.failure === 'activate_timeout')
      : u.state === 'initiated' || (u.state === 'failed' && u.failure === 'initiate_timeout');
    if (!waiting) return false;
    this.timers.disarm(u.token);
    const state = status === Status.UPDATE_SUCCESS ? 'staged' : status === Status.ACTIVATE_SUCCESS ? 'confirmed' : 'failed';
    this.set(u.token, { state, status, failure: null });
    if (state === 'staged' && core.options.autoActivate === true) {
      try {
        this.activate(u.token).catch((e: unknown) => this.logAutoActivate(u.token, e));
      } catch (e) {
        this.logAutoActivate(u.token, e);
      }
    }
    return true;
  }

  /**
   * After a restart: the updates still waiting get the rest of their time (or time out now). An activate to a
   * 'reference' device that was still waiting for its PUBACK may never have reached the broker: the update goes
   * back to 'staged' (the device keeps the staged image, and activates again on the same token).
   */
  rearm(starting: boolean): void {
    const { core } = this;
    const { registry } = core.host;
    const now = core.now();
    for (const u of registry.updates()) {
      if (u.state === 'initiated') {
        const ms = (core.options.initiateTimeoutMs ?? DEFAULT_INITIATE_TIMEOUT) - (now - u.updatedAt);
        this.arm(u.token, Math.max(0, ms), 'initiate_timeout');
      } else if (u.state === 'activating' && registry.device(u.device)?.profile === 'reference') {
        if (!starting) continue; // another node may be waiting for the broker right now
        core.host.log('warn', 'activate_unacknowledged', { token: u.token });
        this.set(u.token, { state: 'staged' });
      } else if (u.state === 'activating') {
        const ms = (core.options.activateTimeoutMs ?? DEFAULT_ACTIVATE_TIMEOUT) - (now - u.updatedAt);
        this.arm(u.token, Math.max(0, ms), 'activate_timeout');
      }
    }
  }

  /** Clears every timer and rejects every waiter with `error` (the records stay as they are). */
  stop(error: () => Error): void {
    this.timers.disarmAll();
    for (const [token, list] of this.waiters) {
      this.waiters.delete(token);
      for (const w of list) w.reject(error());
    }
  }

  // ---------------------------------------------------------------------------------------------- internals

  private wait(token: string, until: Waiter['until'], rejectOnFailure: boolean): Promise<UpdateRecord> {
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(token) ?? [];
      list.push({ until, rejectOnFailure, resolve, reject });
      this.waiters.set(token, list);
    });
  }

  /** Stores an update's new state, tells the listeners and settles the waiters it concerns. */
  private set(token: string, patch: UpdatePatch, error?: Error): UpdateRecord {
    const { core } = this;
    const u = core.host.registry.setUpdate(token, patch, core.now());
    core.emit({ type: 'update', update: u });
    core.host.cluster?.publish({ kind: 'update', token });
    return this.settle(u, error);
  }

  /** Settles the waiters of `u` that its state answers. */
  private settle(u: UpdateRecord, error?: Error): UpdateRecord {
    const token = u.token;
    const list = this.waiters.get(token);
    if (list === undefined) return u;
    const settled = updateEnded(u.state);
    const failedHere = u.state === 'failed' && u.status === null;
    const keep: Waiter[] = [];
    for (const w of list) {
      if (settled || (w.until === 'response' && u.state !== 'initiated' && u.state !== 'activating')) {
        if (failedHere && w.rejectOnFailure) w.reject(error ?? new C2Error('timeout', `update ${token}: ${u.failure ?? 'timeout'}`));
        else w.resolve(u);
      } else keep.push(w);
    }
    if (keep.length > 0) this.waiters.set(token, keep);
    else this.waiters.delete(token);
    return u;
  }

  /**
   * Another node changed the update (several server nodes): settle this node's waiters and drop its timer if
   * the update is no longer waiting for what the timer guards.
   */
  refresh(token: string): void {
    const u = this.core.host.registry.update(token);
    if (u === null) return;
    if (u.state !== 'initiated' && u.state !== 'activating') this.timers.disarm(token);
    this.settle(u);
  }

  /** Fails the update with `failure` unless disarmed within `ms` (or another node answered it meanwhile). */
  private arm(token: string, ms: number, failure: Failure): void {
    const waitingFor = failure === 'initiate_timeout' ? 'initiated' : 'activating';
    this.timers.arm(token, ms, () => {
      const now = this.core.host.registry.update(token);
      if (now === null || now.state !== waitingFor) {
        if (now !== null) this.settle(now);
        return;
      }
      this.core.host.log('warn', 'update_timeout', { token, failure });
      this.set(token, { state: 'failed', status: null, failure });
    });
  }

  /** The broker took the activate of a device that does not confirm: the update is as done as it gets. */
  private activated(token: string): void {
    const u = this.core.host.registry.update(token);
    // A 0x10 / 0x1F came first (the profile was wrong after all): nothing to do.
    if (u === null || u.state !== 'activating') return;
    this.core.host.log('info', 'update_activated', { token, confirmation: 'none expected' });
    this.set(token, { state: 'activated', status: null, failure: null });
  }

  /**
   * The initiate or activate could not be published. A lost initiate fails the update now. A lost activate
   * never reached the device, which still holds the staged image: the update goes back to 'staged' so that
   * the activate can be sent again, and only the caller of that activate is told.
   */
  private publishFailed(token: string, e: unknown): void {
    this.timers.disarm(token);
    const u = this.core.host.registry.update(token);
    if (u === null || (u.state !== 'initiated' && u.state !== 'activating')) return;
    const error = e instanceof Error ? e : new C2Error('publish_failed', String(e));
    if (u.state === 'initiated') {
      this.set(token, { state: 'failed', status: null, failure: 'publish_failed' }, error);
      return;
    }
    this.set(token, { state: 'staged' });
    const list = this.waiters.get(token) ?? [];
    const keep = list.filter((w) => !w.rejectOnFailure);
    for (const w of list) if (w.rejectOnFailure) w.reject(error);
    if (keep.length > 0) this.waiters.set(token, keep);
    else this.waiters.delete(token);
  }

  private logAutoActivate(token: string, e: unknown): void {
    this.core.host.log('warn', 'auto_activate_failed', { token, why: String(e) });
  }
}
