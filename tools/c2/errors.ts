/**
 * The console application's refusal (api.ts re-exports it): a file of its own, importing nothing, so that the
 * modules that check requests (fleet.ts, audit-log.ts, auth.ts) and api.ts, which names their types, do not
 * import each other.
 */

/** Why the console application refused a request; the HTTP server (http.ts) maps each code to its status. */
export type AppErrorCode =
  | 'bad_argument' // a value the request may not carry (an id, a key, a profile, a data kind...)
  | 'unknown_device' // no such device in the registry
  | 'unknown_operator' // no such named operator
  | 'operator_exists'; // a named operator of that name exists already

export class AppError extends Error {
  readonly code: AppErrorCode;
  constructor(code: AppErrorCode, message: string) {
    super(message);
    this.name = 'AppError';
    this.code = code;
  }
}
