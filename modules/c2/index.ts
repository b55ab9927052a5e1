/**
 * The C2 engine's public API: the server side of every SRUP flow, for the C2 application and for tests.
 *
 *   registry.ts         the Registry interface (devices, sequence IDs, updates, audit log); synchronous, durable
 *   memory-registry.ts  the in-memory Registry
 *   host.ts             C2Host (transport, registry, crypto, random, clock, log, serverId, privateKey), C2Options
 *   engine.ts           C2Engine: lifecycle, commands, the receive dispatch
 *   core.ts             EngineCore: the way out shared by the engine and its flows (sending with sequence ID
 *                       and audit, subscriptions, events)
 *   receive.ts          the receive pipeline (steps shared with the device: modules/srup/session.ts) and the
 *                       permission table
 *   join.ts             simple, human-moderated, observed joins and the join command
 *   update.ts           initiate, activate, confirmation (or none, for 'reference' devices), timeouts
 *   timers.ts           one timeout per pending join / update, over the host clock
 *   events.ts           C2Event, what the engine tells the application
 *   tokens.ts           uuid4 tokens and join secrets from host randomness
 *   errors.ts           C2Error and its reasons
 */
export { C2Engine, parseIdentification, ID_RESPONSE_DATA_ID, REFERENCE_ID_PREFIX, type ActionResult } from './engine.js';
export { C2Error, isC2Error, type C2ErrorReason } from './errors.js';
export type { C2Event, C2Listener, Challenge, RejectedReason, RemovalReason } from './events.js';
export type {
  C2Host,
  C2Options,
  ChallengeDecision,
  JoinDecision,
  JoinRequestInfo,
  ObservationInfo,
  Clock,
  Log,
  Transport,
} from './host.js';
export type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  DevicePatch,
  DeviceProfile,
  DeviceRecord,
  DeviceState,
  JoinKind,
  Registry,
  SequenceState,
  UpdatePatch,
  UpdateRecord,
  UpdateState,
} from './registry.js';
export { DEVICE_PROFILES, isDeviceProfile, updateEnded } from './registry.js';
export { MemoryRegistry } from './memory-registry.js';
export { PERMISSIONS as SERVER_PERMISSIONS } from './receive.js';
export { challengeOf } from './join.js';
export { joinSecret } from './tokens.js';
export { uuid4, conversationToken } from '../srup/session.js';
