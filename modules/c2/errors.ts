/** The one error type of the C2 engine. `reason` is machine-readable and stable; `message` is for people. */
export type C2ErrorReason =
  | 'unknown_device' // no such device in the registry
  | 'not_joined' // a command to a device that is not joined
  | 'no_pending_join' // approve/refuse/fail without a join in progress
  | 'join_expired' // approve after the join's time ran out (the device has given up): it is failed instead
  | 'unknown_update' // no update with that token (or no staged update for that device)
  | 'bad_update_state' // activate an update that is not staged
  | 'duplicate_token' // a token that is already in use
  | 'bad_argument' // a value that does not fit the message (url, digest, action id...)
  | 'timeout' // the device did not answer in time
  | 'device_removed' // the device left (resign, deregister, terminate) while a request was in flight
  | 'stopped' // the engine was stopped while a request was in flight
  | 'publish_failed' // the transport refused the message
  | 'already_accepted'; // another server node accepted this sequence ID (or a later one) from the device first

export class C2Error extends Error {
  readonly reason: C2ErrorReason;
  constructor(reason: C2ErrorReason, message: string) {
    super(message);
    this.name = 'C2Error';
    this.reason = reason;
  }
}

export function isC2Error(e: unknown): e is C2Error {
  return e instanceof C2Error;
}
