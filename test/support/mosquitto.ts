/**
 * A private Mosquitto broker for tests: the Debian `mosquitto` binary on a free loopback port, with a generated
 * config in a temp dir (persistence on, so persistent sessions survive `restart()`), and optionally TLS with a
 * CA, server and client certificate made by the `openssl` CLI.
 *
 *   const broker = await startMosquitto({ tls: true });
 *   ... broker.url, broker.tls.ca ...
 *   await broker.restart();
 *   await broker.stop();
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const CANDIDATES = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/bin/mosquitto'];

export interface MosquittoOptions {
  /**
   * TLS listener with a generated CA (or the given `pki`); `requireCertificate` makes the broker demand a client
   * certificate.
   */
  tls?: boolean | { requireCertificate?: boolean; pki?: TlsFiles };
  /** Listen on this port (default: a free one). */
  port?: number;
  /** Per-client queue limit for offline persistent sessions (default 10000). */
  maxQueuedMessages?: number;
  /**
   * Clients must log in as one of `users` (name -> password) and may use only the topics `acl` (a Mosquitto
   * acl_file) gives them; anonymous clients are refused.
   */
  auth?: { users: Record<string, string>; acl: string };
}

export interface TlsFiles {
  /** PEM contents. */
  ca: string;
  clientCert: string;
  clientKey: string;
  /** File paths of the same (and of the server's pair), for configs that name files. */
  caFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  /** The server certificate followed by the CA's: what a server should send (see makeTestPki). */
  serverChainFile: string;
}

export interface Mosquitto {
  readonly host: string;
  readonly port: number;
  /** `mqtt://127.0.0.1:<port>` or `mqtts://127.0.0.1:<port>`. */
  readonly url: string;
  readonly dir: string;
  readonly tls: TlsFiles | null;
  /** Stops the broker gracefully (SIGTERM: it saves its persistence file first). */
  stop(): Promise<void>;
  /**
   * Stops and starts it again on the same port with the same persistence file; with `wipe`, the persistence
   * file is deleted in between, so the broker forgets every session (as a replaced broker would).
   */
  restart(opts?: { wipe?: boolean }): Promise<void>;
  /** Kills it without letting it save (SIGKILL). */
  kill(): Promise<void>;
  /** The broker's log so far. */
  log(): string;
  /** Stops the broker and removes its temp dir. */
  dispose(): Promise<void>;
}

export function findMosquitto(): string | null {
  const fromEnv = process.env.MOSQUITTO;
  if (fromEnv && fs.existsSync(fromEnv)) return fromEnv;
  for (const c of CANDIDATES) if (fs.existsSync(c)) return c;
  return null;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; code?: string };
    if (err.code === 'ENOENT') throw new Error('openssl not found: install the Debian package "openssl"');
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString() ?? String(e)}`);
  }
}

/**
 * A CA, a server certificate for 127.0.0.1/localhost and a client certificate, valid 2 days. RSA-2048, because
 * a device may be the one connecting: the Moddable SDK's TLS client has RSA, DHE_RSA and ECDHE_RSA suites only,
 * so a broker or download server a device talks to needs an RSA certificate. `serverChainFile` holds the
 * server certificate and then the CA's: servers send that chain, because the SDK checks the host name only
 * on chain entries before the last one (a server that sends its leaf alone fails the check).
 */
export function makeTestPki(dir: string, options: { caName?: string } = {}): TlsFiles {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'rsa:2048', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${options.caName ?? 'SRUP test CA'}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  fs.writeFileSync(path.join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  for (const [name, cn] of [['server', 'localhost'], ['client', 'SRUP test client']] as const) {
    openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
  }
  const f = (n: string) => path.join(dir, n);
  fs.writeFileSync(f('server-chain.crt'), fs.readFileSync(f('server.crt'), 'utf8') + fs.readFileSync(f('ca.crt'), 'utf8'));
  return {
    ca: fs.readFileSync(f('ca.crt'), 'utf8'),
    clientCert: fs.readFileSync(f('client.crt'), 'utf8'),
    clientKey: fs.readFileSync(f('client.key'), 'utf8'),
    caFile: f('ca.crt'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
    serverCertFile: f('server.crt'),
    serverKeyFile: f('server.key'),
    serverChainFile: f('server-chain.crt'),
  };
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const bin = findMosquitto();
  if (!bin) {
    throw new Error('mosquitto not found (looked in ' + CANDIDATES.join(', ') +
      '): install the Debian package "mosquitto" (apt-get install mosquitto), or set MOSQUITTO to its path');
  }
  installExitHook();
  const host = '127.0.0.1';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srup-mosquitto-'));
  const tlsOpt = options.tls === true ? {} : options.tls || null;
  const tls = tlsOpt ? (tlsOpt.pki ?? makeTestPki(path.join(dir, 'pki'))) : null;
  const port = options.port ?? (await freePort());
  const logFile = path.join(dir, 'mosquitto.log');
  const lines = [
    `listener ${port} ${host}`,
    `allow_anonymous ${options.auth ? 'false' : 'true'}`,
    'persistence true',
    `persistence_location ${dir}/`,
    'persistence_file mosquitto.db',
    `max_queued_messages ${options.maxQueuedMessages ?? 10000}`,
    'max_inflight_messages 100',
    `log_dest file ${logFile}`,
    'log_type all',
    'connection_messages true',
    // Without this the broker's own writes wait for delayed ACKs (Nagle): ~44 ms on every relayed QoS 1 leg.
    'set_tcp_nodelay true',
  ];
  // Started as root, mosquitto switches to the user `mosquitto`, who cannot write our temp dir: stay as we are.
  if (process.getuid?.() === 0) lines.push('user root');
  if (tls && tlsOpt) {
    lines.push(`cafile ${tls.caFile}`, `certfile ${tls.serverChainFile}`, `keyfile ${tls.serverKeyFile}`,
      `require_certificate ${tlsOpt.requireCertificate ? 'true' : 'false'}`);
  }
  if (options.auth) {
    const passwordFile = path.join(dir, 'passwords');
    fs.writeFileSync(passwordFile, Object.entries(options.auth.users).map(([u, p]) => `${u}:${p}`).join('\n') + '\n', { mode: 0o600 });
    const passwd = ['/usr/bin/mosquitto_passwd', '/usr/local/bin/mosquitto_passwd'].find((f) => fs.existsSync(f)) ?? 'mosquitto_passwd';
    execFileSync(passwd, ['-U', passwordFile]);
    const aclFile = path.join(dir, 'acl');
    fs.writeFileSync(aclFile, options.auth.acl);
    lines.push(`password_file ${passwordFile}`, `acl_file ${aclFile}`);
  }
  const confFile = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(confFile, lines.join('\n') + '\n');

  let child: ChildProcess | null = null;
  let stderr = '';

  async function launch(): Promise<void> {
    stderr = '';
    const c = spawn(bin!, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    running.add(c);
    let exited: number | null | undefined;
    c.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    c.on('exit', (code) => { exited = code; running.delete(c); });
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (exited !== undefined) break;
      if (await canConnect(host, port)) return;
      await sleep(25);
    }
    c.kill('SIGKILL');
    throw new Error(`mosquitto did not start on ${host}:${port} (exit ${String(exited)}): ${stderr}\n${readLog()}`);
  }

  function readLog(): string {
    try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; }
  }

  async function halt(signal: NodeJS.Signals): Promise<void> {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.once('exit', () => { clearTimeout(t); resolve(); });
      c.kill(signal);
    });
    // The port must be free again before a restart binds it.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await canConnect(host, port))) await sleep(20);
  }

  await launch();
  return {
    host,
    port,
    url: `${tls ? 'mqtts' : 'mqtt'}://${host}:${port}`,
    dir,
    tls,
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    async restart(opts) {
      await halt('SIGTERM');
      if (opts?.wipe) fs.rmSync(path.join(dir, 'mosquitto.db'), { force: true });
      await launch();
    },
    log: readLog,
    async dispose() {
      await halt('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
