/**
 * The guarded socket class (hosts/moddable/socket-guard.ts) that the firmware hands to the SDK's TLS client as
 * its TCP class: an exception thrown inside a socket callback (the SDK's TLS handshake throws there on a bad
 * certificate, a wrong host name, a leaf-only chain or an unset clock) never leaves the callback; it is reported
 * once, the connection is closed, and the owner's onError runs as for any dropped connection.
 */
import { guardSocket, type RawSocket } from '../hosts/moddable/socket-guard.js';

type Cb = (arg?: unknown) => void;

class FakeTcp implements RawSocket {
  static last: FakeTcp | null = null;
  readonly options: Record<string, unknown>;
  closed = 0;
  format = 'buffer';
  constructor(options: Record<string, unknown>) {
    this.options = options;
    FakeTcp.last = this;
  }
  read(count?: unknown): unknown {
    return `read ${String(count)}`;
  }
  write(data: unknown): number {
    return String(data).length;
  }
  close(): void {
    this.closed++;
  }
  /** What the native code does: call a callback of the owner. */
  fire(name: 'onReadable' | 'onWritable' | 'onError', arg?: unknown): void {
    (this.options[name] as Cb | undefined)?.(arg);
  }
}

function setup(onReadable: Cb) {
  const reports: string[] = [];
  const ownerErrors: number[] = [];
  const Guarded = guardSocket(FakeTcp, (e) => reports.push(e instanceof Error ? e.message : String(e)));
  const socket = new Guarded({ host: 'broker', port: 8883, onReadable, onWritable: () => {}, onError: () => ownerErrors.push(1) });
  return { socket, raw: FakeTcp.last as FakeTcp, reports, ownerErrors };
}

test('a throwing callback is contained: reported once, socket closed, owner told, later callbacks ignored', () => {
  let calls = 0;
  const { socket, raw, reports, ownerErrors } = setup(() => {
    calls++;
    throw new Error('ssl: certificate: auth err');
  });
  expect(() => raw.fire('onReadable', 5)).not.toThrow();
  expect(reports).toEqual(['ssl: certificate: auth err']);
  expect(raw.closed).toBe(1);
  expect(ownerErrors).toEqual([1]);
  // The native side may still deliver events for the dead connection: nothing runs, nothing is reported again.
  expect(() => raw.fire('onReadable', 7)).not.toThrow();
  raw.fire('onError');
  expect(calls).toBe(1);
  expect(reports).toHaveLength(1);
  expect(ownerErrors).toEqual([1]);
  expect(socket.read(3)).toBeUndefined();
  expect(() => socket.write('x')).toThrow('socket closed');
  expect(() => socket.close()).not.toThrow();
});

test('an owner whose onError throws too: both reported, nothing escapes', () => {
  const reports: string[] = [];
  const Guarded = guardSocket(FakeTcp, (e) => reports.push(String((e as Error).message)));
  new Guarded({
    onReadable: () => {
      throw new Error('ssl: no matching name');
    },
    onError: () => {
      throw new Error('owner failed');
    },
  });
  expect(() => (FakeTcp.last as FakeTcp).fire('onReadable', 1)).not.toThrow();
  expect(reports).toEqual(['ssl: no matching name', 'owner failed']);
});

test('a healthy connection passes everything through unchanged', () => {
  const seen: unknown[] = [];
  const { socket, raw, reports } = setup((n) => seen.push(n));
  raw.fire('onReadable', 12);
  raw.fire('onWritable', 1400);
  expect(seen).toEqual([12]);
  expect(socket.read(4)).toBe('read 4');
  expect(socket.write('abc')).toBe(3);
  socket.format = 'number';
  expect(raw.format).toBe('number');
  expect(socket.format).toBe('number');
  expect(raw.options.host).toBe('broker');
  expect(reports).toEqual([]);
  socket.close();
  expect(raw.closed).toBe(1);
});
