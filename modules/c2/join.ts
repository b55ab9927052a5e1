/**
 * Join flows on the server (SRUP-WIRE.md §11), with the approval hooks of C2Options.
 *
 *   simple    join_request 0x09 -> onJoinRequest (default accept) -> response 0x50 / 0x5E / 0x5F, the request's
 *             token; 'defer' waits for approveJoin / refuseJoin / failJoin
 *   human     human_join_request 0x0B -> onChallengeRequest (default 'challenge') -> a fresh secret sealed to the
 *             device in human_join_response 0x0C (new token) -> 'challenge' event (secret, grid, blink code) ->
 *             the operator compares and calls approveJoin / refuseJoin -> 0x50 / 0x5E with the 0x0C's token
 *   observed  observed_join_request 0x0D naming a joined observer -> onChallengeRequest -> the secret sealed to
 *             the joining device in observed_join_response 0x0E (new token) and to the observer in
 *             observation_request 0x0F (new token, joining id in clear) -> the observer's response
 *             0x60 / 0x6E / 0x6F with the 0x0F's token -> onObservationResult (default valid → accept,
 *             invalid → refuse, fail → fail) -> 0x50 / 0x5E / 0x5F with the 0x0E's token
 *   command   join_command 0x0A naming the device (no answer comes back): joined at once
 *
 * The pending join lives in the registry (state 'pending', joinToken, joinSecret, observer), so a restarted
 * engine can still approve it. With options.joinTimeoutMs a join still pending that long after its request is
 * failed (0x5F), so that abandoned joins do not pile up. A newer join request from the same device supersedes an older one: a hook
 * that answers late for a superseded request changes nothing.
 */
import { sealEnvelope } from '../../crypto/envelope.js';
import { blinkCode, challengeGrid } from '../challenge/index.js';
import { equal, idHex16, toHex } from '../srup/bytes.js';
import type { MessageOf } from '../srup/schema.js';
import { Status } from '../srup/schema.js';
import { C2Error } from './errors.js';
import type { Challenge } from './events.js';
import type { EngineCore } from './core.js';
import type { ChallengeDecision, JoinDecision, JoinRequestInfo } from './host.js';
import type { DeviceRecord, JoinKind } from './registry.js';
import { KeyedTimers } from './timers.js';
import { ascii, joinSecret } from './tokens.js';

/** The secret's pictures, as modules/challenge draws them on the device. */
export function challengeOf(secret: string): Challenge {
  return { secret, grid: challengeGrid(secret), blink: blinkCode(secret).digits };
}

const CLEAR = { joinToken: null, joinSecret: null, observerId: null, observationToken: null } as const;

const JOIN_DECISIONS: ReadonlySet<string> = new Set(['accept', 'refuse', 'fail', 'defer']);
const CHALLENGE_DECISIONS: ReadonlySet<string> = new Set(['challenge', 'refuse', 'fail']);

function statusOf(decision: 'accept' | 'refuse' | 'fail'): number {
  return decision === 'accept' ? Status.JOIN_SUCCESS : decision === 'refuse' ? Status.JOIN_REFUSED : Status.JOIN_FAIL;
}

/** When a pending join was asked for, and when it is failed (null: never). */
export interface JoinTiming {
  readonly requestedAt: number;
  readonly expiresAt: number | null;
}

export class JoinFlows {
  private readonly timers: KeyedTimers<bigint>;
  /** When each pending join's request arrived (after a restart: the record's last change). */
  private readonly requestedAt = new Map<bigint, number>();

  constructor(private readonly core: EngineCore) {
    this.timers = new KeyedTimers(core.host.clock);
  }

  /** After a restart: pending joins get the rest of their time (or expire now). */
  rearm(): void {
    const ms = this.core.options.joinTimeoutMs;
    if (ms === undefined) return;
    const now = this.core.now();
    for (const d of this.core.host.registry.devices('pending')) {
      if (!this.requestedAt.has(d.id)) this.requestedAt.set(d.id, d.updatedAt);
      this.arm(d.id, Math.max(0, ms - (now - (this.requestedAt.get(d.id) as number))));
    }
  }

  /** When the pending join of `id` was asked for and when it expires; null when none is pending. */
  timing(id: bigint): JoinTiming | null {
    const d = this.core.host.registry.device(id);
    if (d === null || d.state !== 'pending') return null;
    const requestedAt = this.requestedAt.get(id) ?? d.updatedAt;
    const ms = this.core.options.joinTimeoutMs;
    return { requestedAt, expiresAt: ms === undefined ? null : requestedAt + ms };
  }

  /** Clears every join timer (the pending joins stay in the registry). */
  stop(): void {
    this.timers.disarmAll();
  }

  /** A join request of any kind that passed the receive pipeline. Resolves true when the device joined. */
  async onRequest(
    m: MessageOf<'join_request'> | MessageOf<'human_join_request'> | MessageOf<'observed_join_request'>,
    kind: Exclude<JoinKind, 'command'>,
    observer: bigint | null,
  ): Promise<boolean> {
    const { core } = this;
    const device = m.senderId;
    core.setDeviceState(device, 'pending', { ...CLEAR, joinKind: kind, joinToken: m.token, observerId: observer });
    this.requestedAt.set(device, core.now());
    if (core.options.joinTimeoutMs !== undefined) this.arm(device, core.options.joinTimeoutMs);
    core.emit({ type: 'join_request', device, kind, observer });
    const info: JoinRequestInfo = { device, kind, observer };

    if (kind === 'simple') {
      const hook = core.options.onJoinRequest;
      const decision = await this.decide<JoinDecision>(JOIN_DECISIONS, hook ? () => hook(info) : () => 'accept');
      if (!this.current(device, m.token) || decision === 'defer') return false;
      return this.answer(device, statusOf(decision));
    }

    const hook = core.options.onChallengeRequest;
    const decision = await this.decide<ChallengeDecision>(CHALLENGE_DECISIONS, hook ? () => hook(info) : () => 'challenge');
    if (!this.current(device, m.token)) return false;
    if (decision !== 'challenge') return this.answer(device, statusOf(decision));
    if (kind === 'human') {
      await this.sendHumanChallenge(device);
      return false;
    }
    return this.sendObservation(device, observer as bigint);
  }

  /**
   * A response 0x60 / 0x6E / 0x6F from a joined device: the verdict of the observer of some pending join.
   * Resolves with that device when it joined, else null.
   */
  async onObservation(m: MessageOf<'response'>): Promise<bigint | null> {
    const { core } = this;
    const observer = m.senderId;
    const status = m.fields.status;
    const d = core.host.registry
      .devices('pending')
      .find((x) => x.observerId === observer && x.observationToken !== null && equal(x.observationToken, m.token));
    if (d === undefined) {
      core.host.log('warn', 'unmatched_observation', { observer: idHex16(observer), token: toHex(m.token) });
      return null;
    }
    const device = d.id;
    const joinToken = d.joinToken as Uint8Array;
    // One verdict per observation request.
    core.setDeviceState(device, 'pending', { observationToken: null });
    core.emit({ type: 'observation_result', device, observer, status });
    const hook = core.options.onObservationResult;
    const byDefault: JoinDecision =
      status === Status.OBSERVED_JOIN_VALID ? 'accept' : status === Status.OBSERVED_JOIN_INVALID ? 'refuse' : 'fail';
    const decision = await this.decide<JoinDecision>(JOIN_DECISIONS, hook ? () => hook({ device, observer, status }) : () => byDefault);
    if (!this.current(device, joinToken) || decision === 'defer') return null;
    return (await this.answer(device, statusOf(decision))) ? device : null;
  }

  /**
   * Answers the pending join of `id` with 0x50 / 0x5E / 0x5F and the pending token. Resolves true when the device
   * joined (the engine then does what follows a join: C2Options.identifyOnJoin).
   */
  async answer(id: bigint, status: number): Promise<boolean> {
    const { core } = this;
    const d = core.host.registry.device(id);
    if (d === null) throw new C2Error('unknown_device', `device ${idHex16(id)} is not registered`);
    if (d.state !== 'pending' || d.joinToken === null) {
      throw new C2Error('no_pending_join', `device ${idHex16(id)} has no join in progress (${d.state})`);
    }
    const token = d.joinToken;
    const kind = d.joinKind;
    const timing = this.timing(id);
    if (status === Status.JOIN_SUCCESS && timing !== null && timing.expiresAt !== null && core.now() >= timing.expiresAt) {
      // The device has given up waiting: it would refuse the acceptance, so the join is never recorded.
      await this.answer(id, Status.JOIN_FAIL);
      throw new C2Error('join_expired', `the join of ${idHex16(id)} expired: the device no longer waits for it`);
    }
    this.timers.disarm(id);
    this.requestedAt.delete(id);
    // The new state is made durable by the group commit (with the writes of other messages of the moment), before
    // the answer is published.
    if (status === Status.JOIN_SUCCESS) {
      await core.host.registry.group(() => core.setDeviceState(id, 'joined', CLEAR));
      // Subscribed before the device learns it joined, so its first message is heard.
      await core.subscribeDevice(id).catch((e: unknown) => core.host.log('error', 'subscribe_failed', { why: String(e) }));
      await core.send('response', id, token, { status });
      core.host.log('info', 'joined', { device: idHex16(id), kind });
      core.emit({ type: 'joined', device: id, kind: kind ?? 'simple' });
      return true;
    }
    const refused = status === Status.JOIN_REFUSED;
    await core.host.registry.group(() => core.setDeviceState(id, refused ? 'refused' : 'failed', CLEAR));
    const sent = core.send('response', id, token, { status });
    // A joined device asking to join again and refused is no longer ours.
    core.unsubscribeDevice(id).catch((e: unknown) => core.host.log('warn', 'unsubscribe_failed', { why: String(e) }));
    core.host.log('info', refused ? 'join_refused' : 'join_failed', { device: idHex16(id), kind });
    core.emit(refused ? { type: 'join_refused', device: id, kind } : { type: 'join_failed', device: id, kind });
    await sent;
    return false;
  }

  /** join_command 0x0A naming `id`, from this server. */
  async command(id: bigint): Promise<void> {
    const { core } = this;
    const d = core.host.registry.device(id);
    if (d === null) throw new C2Error('unknown_device', `device ${idHex16(id)} is not registered`);
    core.setDeviceState(id, 'joined', { ...CLEAR, joinKind: 'command' });
    await core.subscribeDevice(id).catch((e: unknown) => core.host.log('error', 'subscribe_failed', { why: String(e) }));
    await core.send('join_command', id, core.newToken(), { deviceId: id });
    core.host.log('info', 'joined', { device: idHex16(id), kind: 'command' });
    core.emit({ type: 'joined', device: id, kind: 'command' });
  }

  // ---------------------------------------------------------------------------------------------- internals

  /** Fails the join of `device` (0x5F) if it is still pending after `ms`. */
  private arm(device: bigint, ms: number): void {
    const { core } = this;
    this.timers.arm(device, ms, () => {
      const d = core.host.registry.device(device);
      if (d === null || d.state !== 'pending' || d.joinToken === null) return;
      core.host.log('warn', 'join_expired', { device: idHex16(device), kind: d.joinKind });
      this.answer(device, Status.JOIN_FAIL).catch((e: unknown) => core.host.log('warn', 'join_expiry_failed', { why: String(e) }));
    });
  }

  private async sendHumanChallenge(device: bigint): Promise<void> {
    const { core } = this;
    const { crypto, random } = core.host;
    const d = core.host.registry.device(device) as DeviceRecord;
    const secret = joinSecret(random);
    const token = core.newToken();
    const encrypted = sealEnvelope(crypto, d.publicKey, ascii(secret), random);
    core.setDeviceState(device, 'pending', { joinToken: token, joinSecret: secret });
    const sent = core.send('human_join_response', device, token, { encrypted });
    core.emit({ type: 'challenge', device, kind: 'human', challenge: challengeOf(secret) });
    await sent;
  }

  /** Resolves true when the device joined (a bad observer fails the join: false). */
  private async sendObservation(device: bigint, observer: bigint): Promise<boolean> {
    const { core } = this;
    const { crypto, random, registry } = core.host;
    const o = registry.device(observer);
    if (observer === device || o === null || o.state !== 'joined') {
      core.host.log('warn', 'bad_observer', {
        device: idHex16(device),
        observer: idHex16(observer),
        why: observer === device ? 'self' : o === null ? 'unknown' : o.state,
      });
      return this.answer(device, Status.JOIN_FAIL);
    }
    const d = registry.device(device) as DeviceRecord;
    const secret = joinSecret(random);
    const plain = ascii(secret);
    const joinToken = core.newToken();
    const observationToken = core.newToken();
    const toDevice = sealEnvelope(crypto, d.publicKey, plain, random);
    const toObserver = sealEnvelope(crypto, o.publicKey, plain, random);
    core.setDeviceState(device, 'pending', { joinToken, joinSecret: secret, observerId: observer, observationToken });
    const sent = [
      core.send('observed_join_response', device, joinToken, { encrypted: toDevice }),
      core.send('observation_request', observer, observationToken, { joiningDeviceId: device, encrypted: toObserver }),
    ];
    core.emit({ type: 'challenge', device, kind: 'observed', challenge: challengeOf(secret) });
    core.emit({ type: 'observation_requested', device, observer });
    await Promise.all(sent);
    return false;
  }

  /** True while `token` is still the pending join token of `device` (no newer request, no answer yet). */
  private current(device: bigint, token: Uint8Array): boolean {
    const d = this.core.host.registry.device(device);
    return d !== null && d.state === 'pending' && d.joinToken !== null && equal(d.joinToken, token);
  }

  /** Runs a hook; a throw or an unknown answer is 'fail'. */
  private async decide<T extends string>(allowed: ReadonlySet<string>, hook: () => T | Promise<T>): Promise<T | 'fail'> {
    try {
      const v = await hook();
      if (typeof v === 'string' && allowed.has(v)) return v;
      this.core.host.log('warn', 'bad_decision', { value: String(v) });
    } catch (e) {
      this.core.host.log('warn', 'hook_threw', { why: String(e) });
    }
    return 'fail';
  }
}
