/**
 * The device's one send path: every message it sends (answers, data, join and leave requests) goes through
 * Outbox.send, in order.
 *
 *   sequence ID  sealNext (modules/srup/session.ts): nextSequenceId(last sent, last accepted), sealed, then the
 *                new last sent made durable, then published — the same rule and order as the server's
 *   topic        join requests to SRUP/servers/<server>/<own id>, everything else to SRUP/<own id>
 *   connected    sealed and published at once; the promise resolves true on PUBACK
 *   offline      the message waits, not yet sealed (no sequence ID is used up), and goes out after the reconnect
 *   refused      a publish refused while the transport is connected ends with false (logged)
 *   lost         a publish that fails with the connection (dropped before PUBACK) waits again and is sealed anew, with a
 *                new sequence ID, when it goes out again; should the first copy have arrived after all, the server
 *                recognises the second by its token (one answer, one reading)
 *   bounded      at most `limit` application messages wait (sendData rejects 'queue_full' beyond that), and at
 *                most `limit` + the store's owed capacity in all; what does not fit is refused, never kept
 *
 * An answer to a command the store owes (SequenceStore.owed) carries that command's sequence ID: its status is
 * recorded with the new last sent (setLastSent(peer, seq, answer)), and the store forgets it once the broker has
 * it (settle). After a power cut the agent sends the owed answers again (Agent, resendOwed).
 */
import type { RsaPrivateKey } from '../../crypto/types.js';
import type { FieldsOf, TypeName } from '../srup/schema.js';
import { sealNext } from '../srup/session.js';
import { deviceTopic, joinTopic } from '../srup/topics.js';
import type { AgentHost } from './host.js';

/** Join requests go to SRUP/servers/<server>/<own id>; everything else to SRUP/<own id> (SRUP-WIRE.md §8). */
const JOIN_REQUEST_TYPES: ReadonlySet<TypeName> = new Set<TypeName>(['join_request', 'human_join_request', 'observed_join_request']);

/** How many application messages (sendData) may wait for the broker by default. */
export const DEFAULT_QUEUE_LIMIT = 8;

interface Item {
  readonly type: TypeName;
  readonly peer: bigint;
  readonly token: Uint8Array;
  readonly fields: unknown;
  /** The owed command this answers (its sequence ID) and the answer's status, or null. */
  readonly answering: { readonly seq: bigint; readonly status: number } | null;
  readonly app: boolean;
  readonly done: (ok: boolean) => void;
  /** Position in the order of send() calls; a message that waits again keeps its place. */
  readonly n: number;
}



export type SendOutcome = 'sent' | 'queue_full' | 'closed';

export class Outbox {
  private readonly waiting: Item[] = [];
  private inFlight = 0;
  private closed = false;
  private count = 0;

  constructor(
    private readonly host: AgentHost,
    private readonly self: bigint,
    private readonly key: RsaPrivateKey,
    private readonly limit: number = DEFAULT_QUEUE_LIMIT,
  ) {}

  /** Messages not yet taken by the broker (waiting and in flight). */
  get pending(): number {
    return this.waiting.length + this.inFlight;
  }

  /**
   * Sends a message to `peer` (see the file comment). Resolves true once the broker has it; false when it could
   * not be sealed, the outbox is full or closed (logged). `answering`: the owed command (its sequence ID) this
   * message answers, with the answer's status. `app`: an application message, counted against the limit.
   */
  send<T extends TypeName>(
    type: T,
    peer: bigint,
    token: Uint8Array,
    fields: FieldsOf<T>,
    answering: { seq: bigint; status: number } | null = null,
    app = false,
  ): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const waitingApp = this.waiting.reduce((n, i) => n + (i.app ? 1 : 0), 0);
    if ((app && waitingApp >= this.limit) || this.waiting.length >= this.limit + this.host.sequences.owedCapacity) {
      this.host.log('warn', 'send_queue_full', { type, waiting: this.waiting.length });
      return Promise.resolve(false);
    }
    return new Promise<boolean>((done) => {
      const item: Item = { type, peer, token, fields, answering, app, done, n: ++this.count };
      if (this.waiting.length === 0 && this.host.transport.isConnected) this.transmit(item);
      else this.waiting.push(item);
    });
  }

  /** Whether an application message would be refused now (the limit is reached). */
  full(): boolean {
    return this.waiting.reduce((n, i) => n + (i.app ? 1 : 0), 0) >= this.limit;
  }

  /** Connected (again): everything waiting goes out, in order. */
  flush(): void {
    while (this.waiting.length > 0 && !this.closed && this.host.transport.isConnected) {
      this.transmit(this.waiting.shift() as Item);
    }
  }

  /** Ends every waiting message with false. */
  close(): void {
    this.closed = true;
    const all = this.waiting.splice(0);
    for (const i of all) i.done(false);
  }

  private transmit(item: Item): void {
    const { sequences, crypto, transport, log } = this.host;
    let bytes: Uint8Array;
    try {
      const sealed = sealNext(
        crypto,
        this.key,
        { lastSent: sequences.lastSent(item.peer), lastAccepted: sequences.lastAccepted(item.peer) },
        { type: item.type, senderId: this.self, token: item.token, fields: item.fields } as never,
      );
      // Durable before it is published (sealNext): no sequence ID leaves twice.
      sequences.setLastSent(item.peer, sealed.persist.sequenceId, item.answering ?? undefined);
      bytes = sealed.bytes;
    } catch (e) {
      log('error', 'send_failed', { type: item.type, why: String(e) });
      item.done(false);
      return;
    }
    const topic = JOIN_REQUEST_TYPES.has(item.type) ? joinTopic(item.peer, this.self) : deviceTopic(this.self);
    this.inFlight++;
    transport.publish(topic, bytes).then(
      () => {
        this.inFlight--;
        if (item.answering !== null) {
          try {
            sequences.settle(item.peer, item.answering.seq);
          } catch (e) {
            // Still owed: sent again after the next restart, and recognised by its token.
            log('warn', 'settle_failed', { why: String(e) });
          }
        }
        item.done(true);
      },
      (e: unknown) => {
        this.inFlight--;
        if (this.closed) {
          item.done(false);
          return;
        }
        // Lost with the connection: it goes out again, sealed anew, after the reconnect.
        log('warn', 'publish_failed', { type: item.type, why: String(e) });
        if (transport.isConnected) {
          // Refused with the connection up: sending it again would be refused again.
          item.done(false);
          return;
        }
        let at = 0;
        while (at < this.waiting.length && this.waiting[at].n < item.n) at++;
        this.waiting.splice(at, 0, item);
        this.flush();
      },
    );
  }
}
