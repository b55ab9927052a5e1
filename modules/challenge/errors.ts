/**
 * The one error type of the challenge layer. `reason` is machine-readable and stable; `message` is for people.
 */
export type ChallengeErrorReason =
  | 'bad_type' // the secret is neither a string nor a Uint8Array
  | 'bad_length' // the secret is not exactly 32 characters (or 32 bytes)
  | 'not_hex' // the secret holds a character outside 0-9, a-f, A-F
  | 'bad_cells' // a grid that is not 64 integers in 0..3
  | 'bad_palette' // a palette that is not 4 colours of integer channels in 0..255
  | 'bad_code' // a blink code that is not 10 digits in 1..4
  | 'bad_options' // blink timings out of range, not clearly distinct, or too long for 30 s
  | 'bad_schedule' // a blink schedule that is empty or holds a step that is not { on: boolean, ms > 0 }
  | 'bad_time'; // a clock value that is not a finite number ≥ 0

export class ChallengeError extends Error {
  readonly reason: ChallengeErrorReason;
  constructor(reason: ChallengeErrorReason, message: string) {
    super(message);
    this.name = 'ChallengeError';
    this.reason = reason;
  }
}

export function isChallengeError(e: unknown): e is ChallengeError {
  return e instanceof ChallengeError;
}
