/**
 * `srup c2 <subcommand>`: the C2 server (`serve`) and every console action from the terminal, talking to the
 * running server's HTTP API with the CLI token of its data directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parsePublicKeyPem } from '../../crypto/keys.js';
import { renderGridAnsi, renderGridText, DEFAULT_PALETTE, type Palette } from '../../modules/challenge/index.js';
import { hexToId, idToHex } from '../../hosts/node/durable.js';
import { consoleLog } from '../../hosts/node/host.js';
import { SqliteRegistry } from '../../hosts/node/sqlite-registry.js';
import { C2Store } from '../c2/store.js';
import { PgRegistry, isPostgresUrl } from '../../hosts/node/pg-registry.js';
import { redactUrl } from '../../hosts/node/pg-db.js';
import { MigrateError, copyDatabase } from '../../hosts/node/sql-migrate.js';
import { SqlError } from '../../hosts/node/sql.js';
import { C2App, DB_FILE, DEFAULT_HTTP_PORT, PALETTES, type ChallengeView, type DeviceView, type JoinView } from '../c2/app.js';
import type { CampaignView } from '../c2/campaigns.js';
import { C2Client, ClientError, serverAddress } from '../c2/client.js';
import { CSV_HEADER, csvLine, type AuditView } from '../c2/audit-log.js';
import { MAX_PAGE_SIZE } from '../c2/fleet.js';
import { loadOrCreateIdentity, SERVER_FILE } from '../c2/identity.js';
import { DEVICE_PUBLIC_KEY_FILE } from './device.js';
import { DEFAULT_C2_USER, mosquittoAcl } from '../c2/acl.js';
import {
  CliError,
  UsageError,
  optBoolean,
  optString,
  untilInterrupted,
  type Command,
  type CommandContext,
  type OptionValues,
} from '../lib/cli.js';

export const DEFAULT_DATA_DIR = 'c2-data';

const SUBCOMMANDS: Record<string, string> = {
  serve: 'run the C2 server and the operator console (--db postgres://... for a registry on PostgreSQL)',
  migrate: 'copy the registry of a data directory into an empty PostgreSQL database: migrate --from DIR --to postgres://...',
  'add-device': 'register a device: --id HEX --key PUBLIC.pem, or the device.json of `srup provision`; --reference for a pySRUP device',
  profile: 'what a device answers: profile ID (--reference for pySRUP | --srup for this project\'s agent)',
  list: 'list devices: list [--search TEXT] [--tag TAG] [--state STATE] [--online|--offline]',
  show: 'one device and its recent messages: show ID',
  joins: 'pending joins, with the challenge each device shows',
  approve: 'approve a pending join: approve ID (shows the challenge first)',
  refuse: 'refuse a pending join: refuse ID',
  'join-command': 'send a join command: join-command ID',
  action: 'send an action: action ID --action N',
  data: 'send data: data ID --data-id NAME [--kind KIND] --value VALUE',
  id: 'request a device\'s identification: id ID',
  terminate: 'terminate a device: terminate ID',
  deregister: 'deregister a device: deregister ID',
  update: 'start an update campaign: update (--file IMAGE | --url URL) (--devices ID,ID | --all)',
  activate: 'activate a campaign\'s staged devices: activate CAMPAIGN [--devices ID,ID]',
  retry: 'send a campaign\'s image again to its failed devices: retry CAMPAIGN [--devices ID,ID]',
  campaigns: 'list campaigns, or show one: campaigns [CAMPAIGN]',
  meta: 'a device\'s label and tags: meta ID [--label TEXT] [--tags TAG,TAG]',
  remove: 'remove a device from the registry (its counters are kept): remove ID [--yes]',
  audit: 'the audit log, newest first: audit [--device ID] [--type T] [--operator NAME] [--csv]',
  operator: 'named operator accounts: operator add NAME [--password-file FILE] | operator list | operator remove NAME',
  acl: 'the broker access rules (Mosquitto acl_file) for the server and its devices: acl [ID] (see docs/broker-acl.md)',
};

const STATUS: Record<number, string> = {
  0x00: 'download ok', 0xfc: 'HTTP error', 0xfd: 'server unreachable', 0xfe: 'file error', 0xff: 'digest mismatch',
  0x10: 'activated, confirmed', 0x1f: 'activation failed', 0x20: 'action done', 0x2e: 'unknown action',
  0x2f: 'action failed', 0x50: 'join accepted', 0x5e: 'join refused', 0x5f: 'join failed',
};

function statusText(s: number | null | undefined): string {
  if (s === null || s === undefined) return '';
  return `0x${s.toString(16).padStart(2, '0').toUpperCase()} ${STATUS[s] ?? ''}`.trim();
}

/** What an action's result says: the device's status, or that a 'reference' device never answers. */
function actionText(s: number | null): string {
  return s === null ? 'sent (the device does not answer actions)' : statusText(s);
}

/** A campaign target's outcome: its status, or for an activated 'reference' device that none will come. */
function targetStatusText(t: CampaignView['targets'][number]): string {
  if (t.state === 'activated' && t.status === null) return 'activated (the device does not confirm)';
  return t.status !== null ? statusText(t.status) : shown(t.failure ?? t.error ?? '');
}

const CONTROL_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text a device (or anyone through the API) chose, made safe for a terminal: control characters (terminal
 * escapes, line breaks that would forge table rows) and bidirectional overrides are shown as escapes.
 */
export function shown(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (c) =>
    CONTROL_ESCAPES[c] ?? (c.charCodeAt(0) < 0x100 ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : `\\u${c.charCodeAt(0).toString(16)}`));
}

/** "asked 12 s ago, expires in 1 min 43 s" (or "expired") for a pending join. */
export function joinAge(j: Pick<JoinView, 'requestedAt' | 'expiresAt'>, now: number): string {
  const span = (ms: number) => {
    const s = Math.max(0, Math.round(ms / 1000));
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  };
  const asked = `asked ${span(now - j.requestedAt)} ago`;
  if (j.expiresAt === null) return asked;
  return now >= j.expiresAt ? `${asked}, expired` : `${asked}, expires in ${span(j.expiresAt - now)}`;
}

function profileText(p: DeviceView['profile'] | undefined): string {
  return p === 'reference' ? 'reference (pySRUP)' : 'srup';
}

function time(ms: number | null): string {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-';
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

function dataDir(values: OptionValues): string {
  return path.resolve(optString(values, 'data') ?? process.env.SRUP_C2_DATA ?? DEFAULT_DATA_DIR);
}

function httpPort(values: OptionValues): number | undefined {
  const v = optString(values, 'http');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError('--http must be a port number');
  return n;
}

function seconds(values: OptionValues, name: string): number | undefined {
  const v = optString(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a number of seconds`);
  return Math.round(n * 1000);
}

function deviceArg(positionals: string[], sub: string): string {
  const id = positionals[1];
  if (id === undefined) throw new UsageError(`srup c2 ${sub} needs a device id`);
  if (hexToId(id) === null) throw new UsageError(`'${id}' is not a device id (1 to 16 hex digits)`);
  return idToHex(hexToId(id) as bigint);
}

function readFileOption(values: OptionValues, name: string): string | undefined {
  const p = optString(values, name);
  if (p === undefined) return undefined;
  try {
    return fs.readFileSync(p, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read --${name} ${p}: ${(e as Error).message}`, 2);
  }
}

function paletteOf(name: string): Palette {
  return PALETTES[name] ?? DEFAULT_PALETTE;
}

/** The challenge as the device shows it: the grid in colour (and letters), the blink digits. */
export function renderChallenge(c: ChallengeView, colour: boolean): string {
  const palette = paletteOf(c.palette.name);
  return (
    (colour ? renderGridAnsi(c.grid, palette) : '') +
    renderGridText(c.grid, palette) +
    `Blink code: ${c.blink.split('').join(' ')}\n` +
    `Palette: ${palette.colours.map((x) => `${x.symbol} ${x.name}`).join(', ')}\n`
  );
}

function deviceRows(devices: DeviceView[]): string[][] {
  return [
    ['ID', 'STATE', 'PROFILE', 'LABEL', 'FIRMWARE', 'LAST SEEN', 'LAST RESPONSE'],
    ...devices.map((d) => [
      d.id,
      d.state,
      profileText(d.profile),
      shown(d.label ?? ''),
      d.firmwareName ? shown(`${d.firmwareName} ${d.firmwareVersion ?? ''}`.trim()) : '',
      time(d.lastSeen),
      d.lastResponse ? statusText(d.lastResponse.status) : '',
    ]),
  ];
}

function campaignText(c: CampaignView): string {
  let s = `#${c.id} ${shown(c.name)}\n  sha256 ${c.digest}${c.size !== null ? `, ${c.size} bytes` : ''}${c.autoActivate ? ', automatic activation' : ''}\n  url ${shown(c.url)}\n  done ${c.done} of ${c.targets.length}\n`;
  s += `  state ${c.state}${c.reason !== null && c.state !== 'done' ? ` (${shown(c.reason)})` : ''}\n`;
  if (c.waves.length > 1) {
    for (const w of c.waves) s += `  wave ${w.index + 1}: ${w.size} devices, ${w.sent} sent, ${w.done} done, ${w.failed} failed\n`;
  }
  const failures = Object.entries(c.failures);
  if (failures.length > 0) s += `  failures ${failures.map(([k, n]) => `${k}: ${n}`).join(', ')}\n`;
  s += table([
    ['  DEVICE', 'STATE', 'STATUS', 'ACTIVATE'],
    ...c.targets.map((t) => [
      `  ${t.device}`,
      t.state,
      targetStatusText(t),
      t.activate ? 'yes' : '',
    ]),
  ]);
  return s;
}

async function confirm(ctx: CommandContext, question: string): Promise<boolean> {
  const rl = createInterface({ input: ctx.stdin, output: ctx.stdout });
  try {
    const answer = await rl.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

// ================================================================================================ serve

function auditRetention(values: OptionValues): { maxAgeMs?: number; maxBytes?: number } {
  const out: { maxAgeMs?: number; maxBytes?: number } = {};
  const days = optString(values, 'audit-days');
  if (days !== undefined) {
    const n = Number(days);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError('--audit-days must be a positive number of days');
    out.maxAgeMs = Math.round(n * 24 * 3600 * 1000);
  }
  const mb = optString(values, 'audit-max-mb');
  if (mb !== undefined) {
    const n = Number(mb);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError('--audit-max-mb must be a positive number of MiB');
    out.maxBytes = Math.round(n * 1024 * 1024);
  }
  return out;
}

/** The broker password: --password, --password-file FILE, or $SRUP_BROKER_PASSWORD (in that order). */
export function serverPassword(values: OptionValues): string | undefined {
  const text = optString(values, 'password');
  const file = optString(values, 'password-file');
  if (text !== undefined && file !== undefined) throw new UsageError('give --password or --password-file, not both');
  if (text !== undefined) return text;
  if (file !== undefined) {
    try {
      return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new CliError(`cannot read --password-file ${file}: ${(e as Error).message}`, 2);
    }
  }
  const env = process.env.SRUP_BROKER_PASSWORD;
  return env === undefined || env === '' ? undefined : env;
}

async function serve(values: OptionValues, ctx: CommandContext): Promise<number> {
  const dir = dataDir(values);
  const broker = optString(values, 'broker') ?? 'mqtt://127.0.0.1:1883';
  const simple = optString(values, 'simple-joins') ?? 'auto';
  if (simple !== 'auto' && simple !== 'manual') throw new UsageError('--simple-joins must be auto or manual');
  const out = ctx.stdout;
  const db = optString(values, 'db');
  if (db !== undefined && !isPostgresUrl(db)) throw new UsageError('--db must be a postgres:// or postgresql:// URL');
  out.write(`Starting the C2 server (data in ${dir}${db !== undefined ? `, registry ${redactUrl(db)}` : ''}, broker ${broker})\n`);
  let app: C2App;
  try {
    app = await C2App.start({
      dataDir: dir,
      brokerUrl: broker,
      httpPort: httpPort(values) ?? DEFAULT_HTTP_PORT,
      username: optString(values, 'username'),
      password: serverPassword(values),
      tls: { ca: readFileOption(values, 'tls-ca'), cert: readFileOption(values, 'tls-cert'), key: readFileOption(values, 'tls-key') },
      imageBaseUrl: optString(values, 'image-base'),
      simpleJoins: simple,
      initiateTimeoutMs: seconds(values, 'initiate-timeout'),
      joinTimeoutMs: seconds(values, 'join-timeout'),
      auditRetention: auditRetention(values),
      activateTimeoutMs: seconds(values, 'activate-timeout'),
      silenceMs: seconds(values, 'silence'),
      resetToken: optBoolean(values, 'reset-token'),
      databaseUrl: db,
      log: consoleLog({ format: 'text', stream: ctx.stderr as never, level: optBoolean(values, 'verbose') ? 'debug' : 'info' }),
    });
  } catch (e) {
    throw new CliError(`cannot start: ${(e as Error).message}`, 2);
  }
  out.write(`Server id: ${idToHex(app.identity.id)}${app.identityCreated ? ' (new identity, keys in ' + dir + ')' : ''}\n`);
  out.write(`Server public key: ${path.join(dir, 'public.pem')}\n`);
  out.write(`Console: ${app.url}/\n`);
  if (app.operatorToken !== null) {
    out.write(`Operator login token (shown only now; \`srup c2 serve --reset-token\` makes a new one):\n  ${app.operatorToken}\n`);
  }
  out.write('Press Ctrl-C to stop.\n');
  await untilInterrupted();
  out.write('Stopping…\n');
  await app.stop();
  return 0;
}

// ================================================================================================ migrate

function migrateCommand(values: OptionValues, ctx: CommandContext, json: boolean): number {
  const from = optString(values, 'from');
  const to = optString(values, 'to');
  if (from === undefined || to === undefined) throw new UsageError('srup c2 migrate needs --from DIR and --to postgres://...');
  if (!isPostgresUrl(to)) throw new UsageError('--to must be a postgres:// or postgresql:// URL');
  const dbFile = path.join(path.resolve(from), DB_FILE);
  if (!fs.existsSync(dbFile)) throw new CliError(`${from} has no ${DB_FILE}: nothing to migrate`, 2);
  let source: SqliteRegistry | null = null;
  let target: PgRegistry | null = null;
  try {
    source = new SqliteRegistry(dbFile);
    target = new PgRegistry(to);
    const copied = copyDatabase(source.db, target.db);
    ctx.stdout.write(
      json
        ? JSON.stringify({ from: dbFile, to: redactUrl(to), copied }) + '\n'
        : `copied ${dbFile} to ${redactUrl(to)}: ${Object.entries(copied).map(([t, n]) => `${t} ${n}`).join(', ')}\n` +
            `start the server with: srup c2 serve --data ${from} --db <the same URL>\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof MigrateError || e instanceof SqlError) throw new CliError(`cannot migrate: ${e.message}`, e instanceof MigrateError ? 1 : 2);
    throw e;
  } finally {
    source?.close();
    target?.close();
  }
}

// ================================================================================================ add-device

async function addDevice(values: OptionValues, positionals: string[], ctx: CommandContext, json: boolean): Promise<number> {
  let idText = optString(values, 'id');
  let pem: string | undefined = readFileOption(values, 'key');
  const file = positionals[1];
  if (file !== undefined) {
    let j: { id?: unknown; publicKey?: unknown };
    try {
      j = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof j;
    } catch (e) {
      throw new CliError(`${file}: not a provisioning JSON file (${(e as Error).message})`, 2);
    }
    let filePem: string;
    if (typeof j.publicKey === 'string') filePem = j.publicKey;
    else {
      // The device.json of `srup device init` keeps the public key beside it.
      const beside = path.join(path.dirname(file), DEVICE_PUBLIC_KEY_FILE);
      try {
        filePem = fs.readFileSync(beside, 'utf8');
      } catch {
        throw new CliError(`${file}: no "publicKey" (PEM), and no ${DEVICE_PUBLIC_KEY_FILE} beside it`, 2);
      }
    }
    const fileId = typeof j.id === 'string' ? hexToId(j.id) : null;
    if (fileId === null) throw new CliError(`${file}: no device "id" (hex)`, 2);
    if (idText !== undefined && hexToId(idText) !== fileId) {
      throw new UsageError(`--id ${idText} is not the id in ${file} (${idToHex(fileId)})`);
    }
    idText = idToHex(fileId);
    pem = pem ?? filePem;
  }
  if (idText === undefined || pem === undefined) throw new UsageError('give --id HEX --key PUBLIC.pem, or a provisioning JSON file');
  const id = hexToId(idText);
  if (id === null) throw new UsageError(`'${idText}' is not a device id`);
  try {
    parsePublicKeyPem(pem);
  } catch (e) {
    throw new CliError(`not a usable RSA public key: ${(e as Error).message}`, 2);
  }
  const palette = optString(values, 'palette');
  if (palette !== undefined && !(palette in PALETTES)) throw new UsageError(`--palette must be one of ${Object.keys(PALETTES).join(', ')}`);
  const label = optString(values, 'label');
  const profile = optBoolean(values, 'reference') ? 'reference' : undefined;
  const dir = dataDir(values);
  const client = new C2Client(serverAddress(dir, httpPort(values)));
  let view: DeviceView;
  try {
    view = await client.post<DeviceView>('/api/devices', { id: idToHex(id), publicKey: pem, palette, label, profile });
  } catch (e) {
    if (!(e instanceof ClientError) || e.status !== 0) throw e;
    // No server running: write the registry directly (the server reads it when it starts).
    const dbFile = path.join(dir, DB_FILE);
    if (!fs.existsSync(dbFile)) {
      loadOrCreateIdentity(dir);
      fs.closeSync(fs.openSync(dbFile, 'a', 0o600));
    }
    const reg = new SqliteRegistry(dbFile);
    try {
      const rec = reg.addDevice(id, parsePublicKeyPem(pem), Date.now(), profile);
      const store = new C2Store(reg.db);
      const old = store.deviceSettings(id);
      store.setDeviceSettings(id, { palette: palette ?? old.palette, label: label ?? old.label });
      view = { id: idToHex(rec.id), state: rec.state, profile: rec.profile } as DeviceView;
    } finally {
      reg.close();
    }
  }
  const about = view.profile === 'reference' ? ', reference (pySRUP) device: it answers neither actions nor activates' : '';
  ctx.stdout.write(json ? JSON.stringify(view) + '\n' : `device ${view.id} registered (${view.state}${about})\n`);
  return 0;
}

// ================================================================================================ acl

/** Prints the Mosquitto acl_file for the server of DIR and one device (ID) or every registered device. */
function acl(values: OptionValues, positionals: string[], ctx: CommandContext): number {
  const dir = dataDir(values);
  let server: bigint | null = null;
  try {
    server = hexToId((JSON.parse(fs.readFileSync(path.join(dir, SERVER_FILE), 'utf8')) as { id?: unknown }).id);
  } catch (e) {
    throw new CliError(`no C2 server identity in ${dir} (${(e as Error).message}); start \`srup c2 serve --data ${dir}\` once first`, 2);
  }
  if (server === null) throw new CliError(`${path.join(dir, SERVER_FILE)} holds no server id`, 2);
  let devices: bigint[];
  if (positionals[1] !== undefined) devices = [hexToId(deviceArg(positionals, 'acl')) as bigint];
  else {
    const dbFile = path.join(dir, DB_FILE);
    devices = [];
    if (fs.existsSync(dbFile)) {
      const reg = new SqliteRegistry(dbFile);
      try {
        devices = reg.devices().map((d) => d.id);
      } finally {
        reg.close();
      }
    }
  }
  ctx.stdout.write(mosquittoAcl(server, devices, optString(values, 'c2-user') ?? DEFAULT_C2_USER));
  return 0;
}

// ================================================================================================ the rest

async function clientCommand(sub: string, values: OptionValues, positionals: string[], ctx: CommandContext): Promise<number> {
  const json = optBoolean(values, 'json');
  const out = ctx.stdout;
  const dir = dataDir(values);
  if (!fs.existsSync(dir)) {
    throw new CliError(`no C2 data directory ${dir} (give the server's --data DIR, or set SRUP_C2_DATA)`, 2);
  }
  const client = new C2Client(serverAddress(dir, httpPort(values)));
  const print = (v: unknown, text: () => string) => out.write(json ? JSON.stringify(v) + '\n' : text());
  const colour = !optBoolean(values, 'no-color') && (ctx.stdout as { isTTY?: boolean }).isTTY === true;

  /** Every device matching `filter` (GET /api/devices, page by page). */
  const allDevices = async (filter: Record<string, string>): Promise<DeviceView[]> => {
    const out: DeviceView[] = [];
    for (let page = 1; ; page++) {
      const q = new URLSearchParams({ ...filter, page: String(page), pageSize: String(MAX_PAGE_SIZE) });
      const r = await client.get<{ devices: DeviceView[]; total: number }>(`/api/devices?${q}`);
      out.push(...r.devices);
      if (r.devices.length < MAX_PAGE_SIZE || out.length >= r.total) return out;
    }
  };

  switch (sub) {
    case 'list': {
      const filter: Record<string, string> = {};
      for (const k of ['search', 'tag', 'state'] as const) {
        const v = optString(values, k);
        if (v !== undefined) filter[k] = v;
      }
      if (optBoolean(values, 'online') && optBoolean(values, 'offline')) throw new UsageError('give --online or --offline, not both');
      if (optBoolean(values, 'online')) filter.online = 'true';
      if (optBoolean(values, 'offline')) filter.online = 'false';
      const devices = await allDevices(filter);
      const r = { devices, total: devices.length };
      print(r, () => (r.devices.length === 0 ? (Object.keys(filter).length > 0 ? 'no device matches\n' : 'no devices registered\n') : table(deviceRows(r.devices))));
      return 0;
    }
    case 'meta': {
      const id = deviceArg(positionals, sub);
      const body: Record<string, unknown> = {};
      const label = optString(values, 'label');
      const tags = optString(values, 'tags');
      if (label !== undefined) body.label = label;
      if (tags !== undefined) body.tags = tags.split(',').map((t) => t.trim()).filter(Boolean);
      if (label === undefined && tags === undefined) throw new UsageError('give --label TEXT and/or --tags TAG,TAG (--tags "" clears them)');
      const d = await client.post<DeviceView>(`/api/devices/${id}/meta`, body);
      print(d, () => `device ${id}: label ${d.label === null ? '(none)' : shown(d.label)}, tags ${d.tags.length === 0 ? '(none)' : d.tags.join(' ')}\n`);
      return 0;
    }
    case 'remove': {
      const id = deviceArg(positionals, sub);
      if (!optBoolean(values, 'yes')) {
        if ((ctx.stdin as { isTTY?: boolean }).isTTY !== true) throw new CliError('add --yes to remove without a question', 2);
        if (!(await confirm(ctx, `Remove device ${id} from the registry (it must be registered again to join) [y/N] `))) {
          out.write('not removed\n');
          return 1;
        }
      }
      const res = await client.post(`/api/devices/${id}/remove`);
      print(res, () => `device ${id} removed from the registry\n`);
      return 0;
    }
    case 'operator': {
      const verb = positionals[1];
      if (verb === 'list' || verb === undefined) {
        if (positionals.length > 2) throw new UsageError(`unexpected argument '${positionals[2]}'`);
        const r = await client.get<{ operators: { name: string; createdAt: number | null; lastLogin: number | null; login: string }[] }>('/api/operators');
        print(r, () => table([['NAME', 'LOGIN', 'CREATED', 'LAST LOGIN'], ...r.operators.map((o) => [o.name, o.login, time(o.createdAt), time(o.lastLogin)])]));
        return 0;
      }
      const name = positionals[2];
      if (verb !== 'add' && verb !== 'remove') throw new UsageError(`operator: unknown action '${verb}' (add, list or remove)`);
      if (name === undefined) throw new UsageError(`operator ${verb}: give the operator's NAME`);
      if (verb === 'remove') {
        const res = await client.post(`/api/operators/${encodeURIComponent(name)}/remove`);
        print(res, () => `operator ${name} removed; their sessions ended\n`);
        return 0;
      }
      const file = optString(values, 'password-file');
      let password: string | undefined;
      if (file !== undefined) {
        try {
          password = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
        } catch (e) {
          throw new CliError(`cannot read ${file}: ${(e as Error).message}`, 2);
        }
      }
      const res = await client.post<{ name: string; token?: string }>('/api/operators', { name, ...(password !== undefined ? { password } : {}) });
      print(res, () =>
        res.token === undefined
          ? `operator ${res.name} added: they log in with their name and password\n`
          : `operator ${res.name} added; their login token (shown once, keep it secret):\n${res.token}\n`,
      );
      return 0;
    }
    case 'show': {
      const id = deviceArg(positionals, sub);
      const d = await client.get<DeviceView & { audit: { at: number; direction: string; type: string; sequenceId: string; status: number | null }[] }>(`/api/devices/${id}`);
      print(d, () =>
        table(deviceRows([d])) +
        (d.identification ? `identification: ${shown(d.identification)}\n` : '') +
        (d.profile === 'reference' ? 'profile: reference (pySRUP): it answers neither actions nor activates\n' : '') +
        '\nrecent messages:\n' +
        table([['  TIME', 'DIR', 'TYPE', 'SEQ', 'STATUS'], ...d.audit.map((a) => [`  ${time(a.at)}`, a.direction === 'in' ? '<-' : '->', a.type, a.sequenceId, statusText(a.status)])]));
      return 0;
    }
    case 'joins': {
      const r = await client.get<{ joins: JoinView[] }>('/api/joins');
      print(r, () => r.joins.length === 0 ? 'no join is waiting\n' : r.joins.map((j) =>
        `${j.id}  ${j.joinKind ?? ''} join${j.observer ? `, observer ${j.observer}` : ''}${j.label ? `  (${shown(j.label)})` : ''}  ${joinAge(j, Date.now())}\n` +
        (j.challenge ? renderChallenge(j.challenge, colour) : '') + '\n').join(''));
      return 0;
    }
    case 'approve': {
      const id = deviceArg(positionals, sub);
      const r = await client.get<{ joins: JoinView[] }>('/api/joins');
      const j = r.joins.find((x) => x.id === id);
      if (j === undefined) throw new CliError(`device ${id} has no join waiting`, 1);
      if (j.expiresAt !== null && Date.now() >= j.expiresAt) throw new CliError(`the join of ${id} has expired: the device no longer waits for it`, 1);
      if (j.challenge && !json) {
        out.write(`Device ${id} should show this challenge:\n${renderChallenge(j.challenge, colour)}`);
      }
      if (!optBoolean(values, 'yes')) {
        if ((ctx.stdin as { isTTY?: boolean }).isTTY !== true) throw new CliError('add --yes to approve without a question', 2);
        if (!(await confirm(ctx, 'Does the device show the same? Approve the join [y/N] '))) {
          out.write('not approved\n');
          return 1;
        }
      }
      const res = await client.post(`/api/devices/${id}/approve`);
      print({ ...res, challenge: j.challenge }, () => `device ${id} joined\n`);
      return 0;
    }
    case 'refuse':
    case 'join-command':
    case 'terminate':
    case 'deregister': {
      const id = deviceArg(positionals, sub);
      const res = await client.post(`/api/devices/${id}/${sub}`);
      const words: Record<string, string> = { refuse: 'join refused', 'join-command': 'join command sent', terminate: 'terminated', deregister: 'deregistered' };
      print(res, () => `device ${id}: ${words[sub]}\n`);
      return 0;
    }
    case 'action': {
      const id = deviceArg(positionals, sub);
      const n = Number(optString(values, 'action'));
      if (!Number.isInteger(n) || n < 0 || n > 255) throw new UsageError('--action must be 0..255');
      const res = await client.post<{ status: number | null }>(`/api/devices/${id}/action`, { actionId: n });
      print(res, () => `device ${id}: ${actionText(res.status)}\n`);
      return res.status === 0x20 || res.status === null ? 0 : 1;
    }
    case 'profile': {
      const id = deviceArg(positionals, sub);
      const reference = optBoolean(values, 'reference');
      if (reference === optBoolean(values, 'srup')) throw new UsageError('give --reference (a pySRUP device) or --srup (this project\'s agent)');
      const res = await client.post<DeviceView>(`/api/devices/${id}/profile`, { profile: reference ? 'reference' : 'srup' });
      print(res, () => `device ${id}: profile ${profileText(res.profile)}\n`);
      return 0;
    }
    case 'data': {
      const id = deviceArg(positionals, sub);
      const dataId = optString(values, 'data-id');
      if (dataId === undefined) throw new UsageError('--data-id is required');
      const res = await client.post(`/api/devices/${id}/data`, { dataId, kind: optString(values, 'kind') ?? 'string', value: optString(values, 'value') ?? '' });
      print(res, () => `data sent to ${id}\n`);
      return 0;
    }
    case 'id': {
      const id = deviceArg(positionals, sub);
      const res = await client.post<{ identification: string }>(`/api/devices/${id}/id`);
      print(res, () => `${shown(res.identification)}\n`);
      return 0;
    }
    case 'update': {
      const file = optString(values, 'file');
      const url = optString(values, 'url');
      if ((file === undefined) === (url === undefined)) throw new UsageError('give either --file IMAGE or --url URL');
      let devices: string[];
      if (optBoolean(values, 'all')) {
        devices = (await allDevices({ state: 'joined' })).map((d) => d.id);
      } else {
        const list = optString(values, 'devices');
        if (list === undefined) throw new UsageError('give --devices ID,ID or --all');
        devices = list.split(',').map((s) => s.trim()).filter(Boolean);
      }
      const body: Record<string, unknown> = { devices, autoActivate: optBoolean(values, 'auto-activate'), name: optString(values, 'name') };
      if (file !== undefined) {
        if (!fs.existsSync(file)) throw new CliError(`no such file: ${file}`, 2);
        const img = await client.upload<{ file: string; digest: string }>('/api/images', file);
        body.file = img.file;
        if (body.name === undefined) body.name = path.basename(file);
      } else {
        body.url = url;
        body.digest = optString(values, 'digest');
      }
      const c = await client.post<CampaignView>('/api/campaigns', body);
      print(c, () => campaignText(c));
      return 0;
    }
    case 'activate':
    case 'retry': {
      // POST /api/campaigns/N/activate or /retry, for every target or only --devices ID,ID.
      const n = positionals[1];
      if (n === undefined || !/^\d+$/.test(n)) throw new UsageError(`srup c2 ${sub} needs a campaign number`);
      const list = optString(values, 'devices');
      const res = await client.post<{ sent: number }>(`/api/campaigns/${n}/${sub}`, list === undefined ? {} : { devices: list.split(',').map((s) => s.trim()) });
      print(res, () =>
        sub === 'activate'
          ? `campaign ${n}: ${res.sent} activate(s) sent now; the others follow when their download succeeds\n`
          : `campaign ${n}: ${res.sent} initiate(s) sent again\n`,
      );
      return 0;
    }
    case 'campaigns': {
      const n = positionals[1];
      if (n !== undefined) {
        const c = await client.get<CampaignView>(`/api/campaigns/${n}`);
        print(c, () => campaignText(c));
      } else {
        const r = await client.get<{ campaigns: CampaignView[] }>('/api/campaigns');
        print(r, () => (r.campaigns.length === 0 ? 'no campaigns\n' : r.campaigns.map(campaignText).join('\n')));
      }
      return 0;
    }
    case 'audit': {
      const filter: Record<string, string> = {};
      for (const k of ['device', 'type', 'operator'] as const) {
        const v = optString(values, k === 'device' ? 'device' : k);
        if (v !== undefined) filter[k] = v;
      }
      if (optBoolean(values, 'csv')) {
        // Every matching entry, page by page, as GET /api/audit.csv writes them.
        out.write(CSV_HEADER.join(',') + '\r\n');
        for (let page = 1; ; page++) {
          const q = new URLSearchParams({ ...filter, page: String(page), pageSize: String(MAX_PAGE_SIZE) });
          const r = await client.get<{ entries: AuditView[] }>(`/api/audit?${q}`);
          for (const e of r.entries) out.write(csvLine(e));
          if (r.entries.length < MAX_PAGE_SIZE) return 0;
        }
      }
      const q = new URLSearchParams({ ...filter, page: '1', pageSize: '50' });
      const r = await client.get<{ entries: AuditView[]; total: number }>(`/api/audit?${q}`);
      const dir = (d: AuditView['direction']) => (d === 'in' ? '<-' : d === 'out' ? '->' : 'op');
      print(r, () =>
        table([
          ['ID', 'TIME', 'DIR', 'DEVICE', 'TYPE', 'OPERATOR', 'SUMMARY'],
          ...r.entries.map((a) => [String(a.id), time(a.at), dir(a.direction), a.device ?? '', a.type, shown(a.operator ?? ''), shown(a.summary)]),
        ]) + (r.total > r.entries.length ? `(the newest ${r.entries.length} of ${r.total})\n` : ''),
      );
      return 0;
    }
    default:
      throw new UsageError(`unknown subcommand '${sub}'`);
  }
}

export const c2Command: Command = {
  name: 'c2',
  summary: 'Run the C2 server and operator console, or act through the running server.',
  synopsis: '<subcommand> [ID|CAMPAIGN|FILE] [options]',
  positionals: { min: 1, max: 3, names: ['subcommand'] },
  options: {
    data: { type: 'string', value: 'DIR', description: `the server's data directory (default $SRUP_C2_DATA or ./${DEFAULT_DATA_DIR})` },
    http: { type: 'string', value: 'PORT', description: `console/API port on 127.0.0.1 (default ${DEFAULT_HTTP_PORT}; serve: 0 picks a free one)` },
    json: { type: 'boolean', description: 'print JSON (for scripts)' },
    broker: { type: 'string', value: 'URL', description: 'serve: MQTT broker, mqtt://host:port or mqtts://host:port' },
    'tls-ca': { type: 'string', value: 'FILE', description: 'serve: CA certificate of the broker (PEM)' },
    'tls-cert': { type: 'string', value: 'FILE', description: 'serve: client certificate for the broker (PEM)' },
    'tls-key': { type: 'string', value: 'FILE', description: 'serve: client key for the broker (PEM)' },
    username: { type: 'string', value: 'NAME', description: 'serve: broker user name' },
    password: { type: 'string', value: 'TEXT', description: 'serve: broker password (visible to other users in the process list: prefer --password-file or $SRUP_BROKER_PASSWORD)' },
    'password-file': { type: 'string', value: 'FILE', description: 'serve: a file holding the broker password; operator add: the operator\'s password (else a token is made)' },
    'image-base': { type: 'string', value: 'URL', description: 'serve: base URL devices download campaign images from' },
    'simple-joins': { type: 'string', value: 'auto|manual', description: 'serve: accept simple joins at once, or hold them for approval' },
    'audit-days': { type: 'string', value: 'N', description: 'serve: keep audit entries this many days (default 90)' },
    'audit-max-mb': { type: 'string', value: 'N', description: 'serve: keep at most this many MiB of audited messages (default 256)' },
    'join-timeout': { type: 'string', value: 'S', description: 'serve: seconds devices wait for a join (as provisioned; default 120); the server fails a join 5 s before' },
    'initiate-timeout': { type: 'string', value: 'S', description: 'serve: seconds a device has to fetch an update (default 300)' },
    'activate-timeout': { type: 'string', value: 'S', description: 'serve: seconds to wait for the post-reboot confirmation (default 600)' },
    db: { type: 'string', value: 'URL', description: 'serve: the registry on PostgreSQL (postgres://user:pass@host/db) instead of DIR/c2.db' },
    from: { type: 'string', value: 'DIR', description: 'migrate: the data directory whose c2.db is copied' },
    to: { type: 'string', value: 'URL', description: 'migrate: the empty PostgreSQL database it is copied into' },
    'reset-token': { type: 'boolean', description: 'serve: make a new operator token (and CLI token); ends all sessions' },
    verbose: { type: 'boolean', description: 'serve: log debug events' },
    'c2-user': { type: 'string', value: 'NAME', description: `acl: the broker user name of the C2 server (default ${DEFAULT_C2_USER})` },
    id: { type: 'string', value: 'HEX', description: 'add-device: the device id' },
    key: { type: 'string', value: 'PEM', description: 'add-device: the device public key file' },
    palette: { type: 'string', value: 'NAME', description: 'add-device: the colours its matrix uses: default or reference' },
    label: { type: 'string', value: 'TEXT', description: 'add-device, meta: a name for people' },
    reference: { type: 'boolean', description: 'add-device, profile: a reference (pySRUP) device: it answers neither actions nor activates' },
    srup: { type: 'boolean', description: "profile: a device running this project's agent (the default)" },
    yes: { type: 'boolean', description: 'approve: do not ask' },
    'no-color': { type: 'boolean', description: 'print challenges without colour' },
    action: { type: 'string', value: 'N', description: 'action: the action id (0-255)' },
    'data-id': { type: 'string', value: 'NAME', description: 'data: the data id' },
    kind: { type: 'string', value: 'KIND', description: 'data: string (default), int32, double, bytes (hex), ...' },
    value: { type: 'string', value: 'VALUE', description: 'data: the value' },
    file: { type: 'string', value: 'IMAGE', description: 'update: the image to upload' },
    url: { type: 'string', value: 'URL', description: 'update: an image URL (the server fetches it for the digest)' },
    digest: { type: 'string', value: 'HEX', description: 'update: the SHA-256 of the image at --url (skips fetching it)' },
    devices: { type: 'string', value: 'ID,ID', description: 'update/activate: the devices' },
    all: { type: 'boolean', description: 'update: every joined device' },
    'auto-activate': { type: 'boolean', description: 'update: activate each device as soon as it has the image' },
    name: { type: 'string', value: 'TEXT', description: 'update: campaign name' },
    search: { type: 'string', value: 'TEXT', description: 'list: devices whose id, label or firmware holds TEXT' },
    tag: { type: 'string', value: 'TAG', description: 'list: devices with this tag' },
    state: { type: 'string', value: 'STATE', description: 'list: devices in this state (joined, pending, provisioned, ...)' },
    online: { type: 'boolean', description: 'list: devices heard from within the silence threshold' },
    offline: { type: 'boolean', description: 'list: devices not heard from within the silence threshold' },
    tags: { type: 'string', value: 'TAG,TAG', description: 'meta: the device\'s tags (replacing the ones it has; "" for none)' },
    device: { type: 'string', value: 'ID', description: 'audit: entries of this device' },
    type: { type: 'string', value: 'TYPE', description: 'audit: entries of this message or action type (response, action, meta, remove, login, ...)' },
    operator: { type: 'string', value: 'NAME', description: 'audit: entries caused by this operator' },
    csv: { type: 'boolean', description: 'audit: every matching entry as CSV' },
    silence: { type: 'string', value: 'S', description: 'serve: a device not heard from for S seconds is offline (default 300)' },
  },
  details: `Subcommands:
${Object.entries(SUBCOMMANDS).map(([k, v]) => `  ${k.padEnd(13)} ${v}`).join('\n')}

The server keeps its identity, keys, registry, images and tokens in --data DIR (mode 0700). On first start it
prints the operator token for the console once; the CLI uses DIR/cli-token. Every subcommand but serve and
add-device needs the server running (add-device writes the registry directly when it is not).

Operators: \`srup c2 operator add NAME --password-file FILE\` adds an operator who logs in to the console with
NAME and that password (stored as an scrypt hash); without --password-file the server makes a login token,
printed once. \`operator list\` shows them, \`operator remove NAME\` removes one and ends their sessions. The
operator token printed by serve logs in as 'admin'; these commands act as 'cli'. The audit log records which
operator did what (\`srup c2 audit --operator NAME\`).

Exit status: 0 done, 1 the device or server said no, 2 usage error or unreachable server.`,

  async run({ values, positionals }, ctx) {
    const sub = positionals[0];
    if (!(sub in SUBCOMMANDS)) throw new UsageError(`unknown subcommand '${sub}' (one of ${Object.keys(SUBCOMMANDS).join(', ')})`);
    const needsArg = ['acl', 'show', 'approve', 'refuse', 'join-command', 'action', 'data', 'id', 'terminate', 'deregister', 'activate', 'retry', 'profile', 'meta', 'remove'];
    if (positionals.length > 1 && !needsArg.includes(sub) && sub !== 'add-device' && sub !== 'campaigns' && sub !== 'operator') {
      throw new UsageError(`unexpected argument '${positionals[1]}'`);
    }
    if (positionals.length > 2 && sub !== 'operator') throw new UsageError(`unexpected argument '${positionals[2]}'`);
    try {
      if (sub === 'serve') return await serve(values, ctx);
      if (sub === 'migrate') return migrateCommand(values, ctx, optBoolean(values, 'json'));
      if (sub === 'add-device') return await addDevice(values, positionals, ctx, optBoolean(values, 'json'));
      if (sub === 'acl') return acl(values, positionals, ctx);
      return await clientCommand(sub, values, positionals, ctx);
    } catch (e) {
      if (e instanceof ClientError) throw new CliError(e.message, e.status === 0 || e.status === 401 ? 2 : 1);
      throw e;
    }
  },
};
