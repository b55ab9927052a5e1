/**
 * A TCP socket class whose callbacks cannot throw into the SDK's socket code. The SDK's TLS client
 * (`embedded:io/socket/tcp/tls`) runs its handshake inside the TCP socket's onReadable/onWritable callbacks and
 * throws there on any failure — a certificate from another CA, a host name that does not match, a server that
 * sends only its leaf certificate (the SDK's name check then finds nothing), certificate dates with the clock
 * unset — and an exception that leaves a native callback aborts the whole VM ("XS abort: unhandled
 * exception"): on a device, a restart loop. The TLS socket creates its TCP socket from the class it is
 * configured with (`TCP.io`), so handing it this guarded class contains every such failure: the error is
 * reported once, the connection is closed, and the owner's onError runs, as for any dropped connection (the
 * MQTT transport then reconnects with backoff; a download ends with an error).
 */

export interface RawSocket {
  read(count?: unknown): unknown;
  write(data: unknown, options?: unknown): number;
  close(): void;
  format?: string;
}

export type SocketClass = new (options: Record<string, unknown>) => RawSocket;

type Callback = (arg?: unknown) => void;

export function guardSocket(Socket: SocketClass, report: (error: unknown) => void): SocketClass {
  return class GuardedSocket implements RawSocket {
    #socket: RawSocket | null = null;
    #failed = false;
    /** Storage the TLS socket keeps on its TCP socket. */
    readable = 0;
    writable = 0;

    constructor(options: Record<string, unknown>) {
      const onError = options.onError as Callback | undefined;
      const fail = (e: unknown): void => {
        if (this.#failed) return;
        this.#failed = true;
        report(e);
        const s = this.#socket;
        this.#socket = null;
        try {
          s?.close();
        } catch {
          // closing a socket that failed: nothing more to do
        }
        try {
          onError?.();
        } catch (e2) {
          report(e2);
        }
      };
      const wrap = (fn: unknown): Callback | undefined =>
        typeof fn === 'function'
          ? (arg?: unknown): void => {
              if (this.#failed) return;
              try {
                (fn as Callback)(arg);
              } catch (e) {
                fail(e);
              }
            }
          : undefined;
      this.#socket = new Socket({ ...options, onReadable: wrap(options.onReadable), onWritable: wrap(options.onWritable), onError: wrap(onError) });
    }

    read(count?: unknown): unknown {
      return this.#socket === null ? undefined : this.#socket.read(count);
    }

    write(data: unknown, options?: unknown): number {
      if (this.#socket === null) throw new Error('socket closed');
      return this.#socket.write(data, options);
    }

    close(): void {
      this.#failed = true;
      const s = this.#socket;
      this.#socket = null;
      s?.close();
    }

    get format(): string | undefined {
      return this.#socket?.format;
    }

    set format(f: string | undefined) {
      if (this.#socket !== null && f !== undefined) this.#socket.format = f;
    }
  };
}
