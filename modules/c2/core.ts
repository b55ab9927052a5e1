/**
 * The engine's way out, shared by the engine (engine.ts) and its flows (join.ts, update.ts): signed messages to
 * devices (sequence ID, audit, publish), the devices' topic subscriptions, events to the application, and the
 * registry write and checks they all use. The engine drives every received message and calls its flows; the
 * flows send through this file, never back through the engine (no call climbs back up), and the engine and its
 * flows do not import each other (as the agent's context.ts for its flows).
 */
import { encode } from '../srup/codec.js';
import { idHex16 } from '../srup/bytes.js';
import { SrupError } from '../srup/errors.js';
import type { FieldsOf, Message, TypeName } from '../srup/schema.js';
import { conversationToken, sealMessage } from '../srup/session.js';
import { deviceFilter, deviceTopic } from '../srup/topics.js';
import { C2Error } from './errors.js';
import type { C2Event, C2Listener } from './events.js';
import type { C2Host, C2Options } from './host.js';
import type { DeviceRecord, DeviceState } from './registry.js';

/**
 * The audit log keeps a message whole up to this size; of a longer one only its first AUDIT_MAX_BYTES (the
 * header, token, signature and the start of the fields): a device's 60 KB data messages must not each cost
 * 60 KB of audit log for ever.
 */
export const AUDIT_MAX_BYTES = 1024;

/** What the audit log keeps of a message (see AUDIT_MAX_BYTES). */
export function auditBytes(payload: Uint8Array): Uint8Array {
  return payload.length <= AUDIT_MAX_BYTES ? payload : payload.slice(0, AUDIT_MAX_BYTES);
}

export class EngineCore {
  /** Event listeners (C2Engine.on). */
  readonly listeners = new Set<C2Listener>();
  /** The devices whose SRUP/<device>/# this node subscribes (the joined ones). */
  readonly subscribed = new Set<bigint>();
  /** Whether messages may go out: between the engine's start() and stop(). */
  running = false;

  constructor(
    readonly host: C2Host,
    readonly options: C2Options,
  ) {}

  /**
   * Signs and publishes one message to SRUP/<device>. The sequence ID (nextSequenceId(lastSent, lastAccepted))
   * is persisted and the message audited before it is published; the returned promise settles on PUBACK and
   * rejects C2Error('publish_failed'), or C2Error('stopped') when the engine is not running. Rejects
   * C2Error('bad_argument') if a value does not fit.
   */
  send<T extends TypeName>(type: T, device: bigint, token: Uint8Array, fields: FieldsOf<T>): Promise<void> {
    const { registry, crypto, transport } = this.host;
    if (!this.running) return Promise.reject(new C2Error('stopped', 'the engine is not running'));
    // One group: the sequence ID and the audit line are durable (with those of other messages sent at the same
    // moment: one commit) before the message is published. A value that does not fit undoes the allocation.
    const sealed = registry.group(() => {
      const sequenceId = registry.allocateSequence(device);
      const bytes = sealMessage(crypto, this.host.privateKey, { type, sequenceId, senderId: this.host.serverId, token, fields });
      registry.recordAudit({
        at: this.now(),
        direction: 'out',
        device,
        type,
        sequenceId,
        token,
        status: type === 'response' ? (fields as FieldsOf<'response'>).status : null,
        bytes: auditBytes(bytes),
      });
      return bytes;
    });
    return sealed.then(
      (bytes) =>
        transport.publish(deviceTopic(device), bytes).then(
          () => undefined,
          (e: unknown) => {
            this.host.log('warn', 'publish_failed', { type, device: idHex16(device), why: String(e) });
            throw new C2Error('publish_failed', `the broker did not take the ${type}: ${String(e)}`);
          },
        ),
      (e: unknown) => {
        if (e instanceof SrupError) throw new C2Error('bad_argument', e.message);
        throw e;
      },
    );
  }

  /** Throws C2Error('bad_argument') when the message could not be encoded (e.g. a url over 65534 bytes). */
  checkFits<T extends TypeName>(type: T, token: Uint8Array, fields: FieldsOf<T>): void {
    const dummy = { type, sequenceId: 1n, senderId: this.host.serverId, token, fields, signature: new Uint8Array(1) };
    try {
      encode(dummy as unknown as Message);
    } catch (e) {
      if (e instanceof SrupError) throw new C2Error('bad_argument', e.message);
      throw e;
    }
  }

  /** Tells every listener; a listener that throws is logged and the others still hear it. */
  emit(e: C2Event): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.host.log('warn', 'listener_threw', { event: e.type, why: String(err) });
      }
    }
  }

  /** A new conversation's token (modules/srup/session.ts, as the device makes them). */
  newToken(): Uint8Array {
    return conversationToken(this.host.random);
  }

  setDeviceState(id: bigint, state: DeviceState, extra?: Partial<DeviceRecord>): DeviceRecord {
    return this.host.registry.updateDevice(id, { ...extra, state }, this.now());
  }

  /** Subscribes SRUP/<id>/#, and (`announce`) tells the other nodes the device joined. */
  async subscribeDevice(id: bigint, announce = true): Promise<void> {
    this.subscribed.add(id);
    if (announce) this.host.cluster?.publish({ kind: 'membership', device: id, joined: true });
    await this.host.transport.subscribe(this.shared(deviceFilter(id)));
  }

  /** Unsubscribes SRUP/<id>/#, and (`announce`) tells the other nodes the device left. */
  async unsubscribeDevice(id: bigint, announce = true): Promise<void> {
    if (!this.subscribed.delete(id)) return;
    if (announce) this.host.cluster?.publish({ kind: 'membership', device: id, joined: false });
    await this.host.transport.unsubscribe(this.shared(deviceFilter(id)));
  }

  /** The filter as subscribed: through the shared subscription group when there are several nodes. */
  shared(filter: string): string {
    const g = this.options.sharedGroup;
    return g === undefined ? filter : `$share/${g}/${filter}`;
  }

  /** Throws C2Error('not_joined' / 'unknown_device') unless the device is joined. */
  requireJoined(id: bigint): DeviceRecord {
    const d = this.host.registry.device(id);
    if (d === null) throw new C2Error('unknown_device', `device ${idHex16(id)} is not registered`);
    if (d.state !== 'joined') throw new C2Error('not_joined', `device ${idHex16(id)} is ${d.state}, not joined`);
    return d;
  }

  now(): number {
    return this.host.clock.now();
  }
}
