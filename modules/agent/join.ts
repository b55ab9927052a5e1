/**
 * Join flows on the device (SRUP-WIRE.md §11): simple, human-moderated and observed joins as the joining
 * device, the observer's side of an observed join, and the server-initiated join_command.
 *
 *   simple    join_request 0x09                      -> response 0x50 / 0x5E / 0x5F (the request's token)
 *   human     human_join_request 0x0B -> 0x0C secret -> presenter.showChallenge -> 0x50 / 0x5E / 0x5F
 *   observed  observed_join_request 0x0D (observer)  -> 0x0E secret -> presenter.showChallenge -> result
 *   observer  observation_request 0x0F -> observe hook -> response 0x60 / 0x6E / 0x6F (the 0x0F's token)
 *   command   join_command 0x0A naming this device   -> server = sender
 *
 * One join at a time. The result may carry the request's token or that of the latest 0x0C/0x0E (the server
 * answers with whichever token it holds as pending); any other token is ignored and logged. The challenge is
 * cleared on the result, on the timeout and on close().
 */
import { CryptoError } from '../../crypto/types.js';
import { openEnvelope } from '../../crypto/envelope.js';
import { equal, idHex16 } from '../srup/bytes.js';
import type { MessageOf } from '../srup/schema.js';
import { Status } from '../srup/schema.js';
import { conversationToken } from '../srup/session.js';
import type { AgentContext, JoinKind, JoinOutcome, Reply } from './context.js';
import { AgentError, constantTimeEqual } from './context.js';

interface PendingJoin {
  readonly kind: JoinKind;
  readonly server: bigint;
  /** Tokens a result may carry: the request's, then that of each 0x0C / 0x0E received. */
  readonly tokens: Uint8Array[];
  readonly resolve: (outcome: JoinOutcome) => void;
  timer: unknown;
  challengeShown: boolean;
}

const DEFAULT_JOIN_TIMEOUT = 120_000;
const DEFAULT_OBSERVE_TIMEOUT = 60_000;

export class JoinFlows {
  private pending: PendingJoin | null = null;
  /** Observe hooks still running (observation_request), each ended early by close(). */
  private readonly observing = new Set<(v: Uint8Array | null, why?: string) => void>();
  private closed = false;

  constructor(private readonly ctx: AgentContext) {}

  private newToken(): Uint8Array {
    return conversationToken(this.ctx.host.random);
  }

  /** The join waiting for its result (for the permission check). */
  waiting(): { server: bigint; kind: JoinKind } | null {
    return this.pending === null ? null : { server: this.pending.server, kind: this.pending.kind };
  }

  /**
   * Opens a join of `kind` with `server`: returns the request for the agent to send and the promise of the
   * outcome. Throws AgentError (busy, no_server_key, bad_argument) when no join can start.
   */
  start(kind: JoinKind, server: bigint, observerId: bigint | undefined): { request: Reply; outcome: Promise<JoinOutcome> } {
    const { host } = this.ctx;
    if (this.pending !== null) throw new AgentError('busy', 'a join is already in progress');
    if (host.keys.peerKey(server) === null) throw new AgentError('no_server_key', `no trusted key for server ${idHex16(server)}`);
    if (kind === 'observed' && (typeof observerId !== 'bigint' || observerId === this.ctx.self)) {
      throw new AgentError('bad_argument', 'an observed join needs the id of another device');
    }
    const token = this.newToken();
    const outcome = new Promise<JoinOutcome>((resolve) => {
      const p: PendingJoin = { kind, server, tokens: [token], resolve, timer: null, challengeShown: false };
      p.timer = host.clock.setTimeout(() => {
        if (this.pending === p) this.finish('timeout');
      }, this.ctx.options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT);
      this.pending = p;
    });
    this.ctx.events.emit({ type: 'join_requested', kind, server });
    const request: Reply =
      kind === 'simple'
        ? { type: 'join_request', peer: server, token, fields: {} }
        : kind === 'human'
          ? { type: 'human_join_request', peer: server, token, fields: {} }
          : { type: 'observed_join_request', peer: server, token, fields: { observerId: observerId as bigint } };
    return { request, outcome };
  }

  /** The broker did not take the request of the join with `token`: that join fails (if it still waits). */
  requestNotSent(token: Uint8Array): void {
    const p = this.pending;
    if (p !== null && p.tokens[0] === token) this.finish('failed');
  }

  /** human_join_response 0x0C / observed_join_response 0x0E from the server we asked (checked by the pipeline). */
  onChallenge(m: MessageOf<'human_join_response'> | MessageOf<'observed_join_response'>): void {
    const p = this.pending;
    if (p === null) return;
    const { host } = this.ctx;
    let secret: Uint8Array;
    try {
      secret = openEnvelope(host.crypto, host.keys.privateKey, m.fields.encrypted);
    } catch (e) {
      host.log('warn', 'bad_envelope', { type: m.type, reason: e instanceof CryptoError ? e.reason : String(e) });
      return;
    }
    p.tokens.push(m.token);
    p.challengeShown = true;
    try {
      host.presenter.showChallenge(secret);
    } catch (e) {
      host.log('warn', 'show_challenge_failed', { why: String(e) });
    } finally {
      secret.fill(0); // the one-time value does not outlive its display, whatever the presenter did
    }
    this.ctx.events.emit({ type: 'challenge_shown', server: p.server, kind: p.kind === 'human' ? 'human' : 'observed' });
  }

  /** A response 0x02 from the server we asked: the join result. */
  onResponse(m: MessageOf<'response'>): void {
    const p = this.pending;
    if (p === null) return;
    const status = m.fields.status;
    const known = status === Status.JOIN_SUCCESS || status === Status.JOIN_REFUSED || status === Status.JOIN_FAIL;
    if (!known || !p.tokens.some((t) => equal(t, m.token))) {
      this.ctx.host.log('warn', 'unexpected_response', { status, sender: idHex16(m.senderId) });
      return;
    }
    this.finish(status === Status.JOIN_SUCCESS ? 'joined' : status === Status.JOIN_REFUSED ? 'refused' : 'failed');
  }

  /** join_command naming this device from a trusted peer (checked by the pipeline): the sender is the server. */
  onJoinCommand(m: MessageOf<'join_command'>): void {
    this.ctx.host.keys.setServerId(m.senderId);
    this.ctx.events.emit({ type: 'joined', server: m.senderId, via: 'join_command' });
  }

  /**
   * observation_request 0x0F from the server: this device is the observer of another device's join. Returns the
   * verdict to send (null when the agent was closed meanwhile).
   */
  async onObservationRequest(m: MessageOf<'observation_request'>): Promise<Reply | null> {
    const { host, options } = this.ctx;
    const joining = m.fields.joiningDeviceId;
    let status: number = Status.OBSERVED_JOIN_FAIL;
    let expected: Uint8Array | null = null;
    try {
      expected = openEnvelope(host.crypto, host.keys.privateKey, m.fields.encrypted);
    } catch (e) {
      host.log('warn', 'bad_envelope', { type: m.type, reason: e instanceof CryptoError ? e.reason : String(e) });
    }
    if (expected !== null && options.observe !== undefined) {
      const seen = await this.observeWithTimeout(options.observe, joining);
      if (this.closed) {
        expected.fill(0);
        return null; // the agent was closed while the hook ran: nothing more is sent
      }
      if (seen !== null) status = constantTimeEqual(seen, expected) ? Status.OBSERVED_JOIN_VALID : Status.OBSERVED_JOIN_INVALID;
      expected.fill(0);
    } else if (options.observe === undefined) {
      host.log('warn', 'no_observe_hook', { joining: idHex16(joining) });
    }
    this.ctx.events.emit({ type: 'observation', server: m.senderId, joiningDevice: joining, status });
    return { type: 'response', peer: m.senderId, token: m.token, fields: { status } };
  }

  /** Ends a waiting join and any running observe hook, with their timers (close()). */
  close(): void {
    this.closed = true;
    for (const settle of [...this.observing]) settle(null, 'closed');
    if (this.pending !== null) this.finish('failed', 'closed');
  }

  private observeWithTimeout(
    hook: NonNullable<AgentContext['options']['observe']>,
    joining: bigint,
  ): Promise<Uint8Array | null> {
    const { host, options } = this.ctx;
    return new Promise((resolve) => {
      let done = false;
      const settle = (v: Uint8Array | null, why?: string) => {
        if (done) return;
        done = true;
        this.observing.delete(settle);
        host.clock.clearTimeout(timer);
        if (why !== undefined) host.log('warn', 'observe_failed', { why, joining: idHex16(joining) });
        resolve(v);
      };
      const timer = host.clock.setTimeout(() => settle(null, 'timeout'), options.observeTimeoutMs ?? DEFAULT_OBSERVE_TIMEOUT);
      this.observing.add(settle);
      Promise.resolve()
        .then(() => hook(joining))
        .then(
          (v) => settle(v instanceof Uint8Array ? v : null, v instanceof Uint8Array ? undefined : 'no_value'),
          (e) => settle(null, `threw: ${String(e)}`),
        );
    });
  }

  private finish(outcome: JoinOutcome, why?: 'closed'): void {
    const p = this.pending;
    if (p === null) return;
    this.pending = null;
    const { host } = this.ctx;
    // join() resolves whatever the host throws below: a throw must not leave its caller waiting for ever.
    try {
      host.clock.clearTimeout(p.timer);
      if (p.challengeShown) {
        try {
          host.presenter.clearChallenge();
        } catch (e) {
          host.log('warn', 'clear_challenge_failed', { why: String(e) });
        }
        this.ctx.events.emit({ type: 'challenge_cleared', server: p.server });
      }
      if (outcome === 'joined') {
        try {
          host.keys.setServerId(p.server);
        } catch (e) {
          // Not joined if the key store cannot keep it: the device would forget its server at the next start.
          host.log('error', 'join_not_saved', { server: idHex16(p.server), why: String(e) });
          outcome = 'failed';
        }
      }
      if (outcome === 'joined') {
        this.ctx.events.emit({ type: 'joined', server: p.server, via: p.kind });
      } else if (outcome === 'refused') {
        this.ctx.events.emit({ type: 'join_refused', server: p.server, kind: p.kind });
      } else {
        this.ctx.events.emit({ type: 'join_failed', server: p.server, kind: p.kind, reason: why ?? (outcome === 'timeout' ? 'timeout' : 'failed') });
      }
    } finally {
      p.resolve(outcome);
    }
  }
}
