/**
 * The update flow on the device (SRUP-WIRE.md §11 "Update"), with a confirmation step after the restart.
 *
 *   initiate (url, digest) -> updater.begin(); downloader streams chunks into a SHA-256 stream and
 *       updater.write(); the whole image is never held in memory
 *     -> digest matches:  updater.finish(); pending update {server, token, 'staged'} persisted; response 0x00
 *        (a store that cannot persist it: updater.abort(), response 0xFE; the image could never be activated)
 *     -> digest differs:  updater.abort(); response 0xFF (the image can never be activated)
 *     -> HTTP error 0xFC, unreachable 0xFD, cut off / local I/O / anything else 0xFE (updater.abort())
 *   activate with the staged token from that server -> pending 'activating' persisted -> updater.activate()
 *     (the host restarts); any other activate -> response 0x1F and nothing else
 *   after the restart, once connected: bootState 'unconfirmed' and confirm() true -> response 0x10; otherwise
 *     0x1F; the pending update is cleared either way. Both carry the update's token.
 *
 * Rules of this implementation:
 *   - One download at a time, the newest: an initiate from the server while a download runs replaces it (the
 *     server asked again, so it no longer wants the old one). The old download is stopped at once (its
 *     connection closed: two at a time would not fit a board's memory), writes nothing more, and is
 *     answered 0xFE ('superseded') with its own token when it ends; a slow or stalled download can therefore
 *     never hold up the next update. An initiate that is invalid (bad url or digest) leaves the running one be.
 *   - An initiate while the running image is still unconfirmed (bootState 'unconfirmed': the confirmation after
 *     the restart failed, or there was no pending update to confirm) confirms it first; if it cannot be
 *     confirmed, the initiate is answered 0xFE (log `update_failed` why=running_image_unconfirmed) and the
 *     inactive slot, which holds the image a rollback returns to, is not touched. See confirmBeforeUpdate().
 *   - A download that ends after its server stopped being this device's server (terminate, deregister,
 *     join_command) is discarded and answered 0xFE: nothing is staged for a server the device no longer obeys.
 *   - A new initiate replaces a staged update (begin() erases the inactive slot), so the old token stops working.
 *   - url and digest may carry the reference's trailing 00 (stripped); the digest is compared as hex text,
 *     case-insensitively. A digest that is not 64 hex digits can match nothing: 0xFF without downloading.
 */
import { equal, idHex16, toHex, utf8DecodeOrNull } from '../srup/bytes.js';
import type { MessageOf } from '../srup/schema.js';
import { Status } from '../srup/schema.js';
import type { AgentContext, Reply } from './context.js';
import type { DownloadControl, DownloadResult } from './host.js';

/** Bytes as text, without one trailing 00; null when not UTF-8. */
function cString(b: Uint8Array): string | null {
  return utf8DecodeOrNull(b.length > 0 && b[b.length - 1] === 0 ? b.subarray(0, b.length - 1) : b);
}

function failureStatus(r: DownloadResult): number {
  if (r.ok) return Status.UPDATE_SUCCESS;
  if (r.error === 'http_error') return Status.UPDATE_FAIL_HTTP_ERROR;
  if (r.error === 'unreachable') return Status.UPDATE_FAIL_SERVER;
  return Status.UPDATE_FAIL_FILE;
}

export class UpdateFlow {
  /** Counts initiates that started a download; only the newest may use the updater. */
  private generation = 0;
  private downloading: { gen: number; server: bigint; control: DownloadControl } | null = null;

  constructor(private readonly ctx: AgentContext) {}

  /** True while an image is being downloaded. */
  get busy(): boolean {
    return this.downloading !== null;
  }

  /** An initiate from the server: returns the download's result to send (it always has one). */
  async onInitiate(m: MessageOf<'initiate'>): Promise<Reply> {
    const server = m.senderId;
    const answer = (status: number, why: string): Reply => {
      if (status !== Status.UPDATE_SUCCESS) {
        this.ctx.host.log('warn', 'update_failed', { status, why, server: idHex16(server) });
        this.ctx.events.emit({ type: 'update_failed', server, status });
      }
      return { type: 'response', peer: server, token: m.token, fields: { status }, answering: m.sequenceId };
    };

    const url = cString(m.fields.url);
    const digest = cString(m.fields.digest);
    if (url === null || url.length === 0) return answer(Status.UPDATE_FAIL_FILE, 'bad_url');
    if (digest === null || !/^[0-9a-fA-F]{64}$/.test(digest)) return answer(Status.UPDATE_FAIL_DIGEST, 'bad_digest');

    if (!this.confirmBeforeUpdate()) return answer(Status.UPDATE_FAIL_FILE, 'running_image_unconfirmed');

    const { host } = this.ctx;
    const old = this.downloading;
    if (old !== null && old.server !== server) return answer(Status.UPDATE_FAIL_FILE, 'busy');
    const gen = ++this.generation;
    const live = () => this.generation === gen;
    const control: DownloadControl = { stop: null };
    this.downloading = { gen, server, control };
    if (old !== null) {
      // Its connection is closed now, not when it next delivers data (a stalled server might never).
      host.log('info', 'update_superseded', { server: idHex16(server) });
      old.control.stop?.();
    }
    try {
      // The inactive slot is about to be erased: a staged update there is gone.
      if (host.sequences.pendingUpdate()?.state === 'staged') host.sequences.setPendingUpdate(null);
      this.ctx.events.emit({ type: 'update_started', server, url });
      let result: DownloadResult;
      const hash = host.crypto.sha256Stream();
      try {
        host.updater.begin();
        result = await host.downloader.download(
          url,
          (chunk) => {
            if (!live()) throw new Error('superseded by a newer initiate');
            hash.update(chunk);
            host.updater.write(chunk);
          },
          control,
        );
      } catch (e) {
        result = { ok: false, error: 'file', message: String(e) };
      }
      // A newer initiate owns the updater now: touch nothing, only answer.
      if (!live()) return answer(Status.UPDATE_FAIL_FILE, 'superseded');
      if (!result.ok) {
        this.abort();
        return answer(failureStatus(result), result.error);
      }
      if (toHex(hash.digest()) !== digest.toLowerCase()) {
        this.abort();
        return answer(Status.UPDATE_FAIL_DIGEST, 'digest_mismatch');
      }
      if (host.keys.serverId() !== server) {
        // Terminated, deregistered or moved to another server while downloading: nothing of the old server's is
        // kept (its token could otherwise activate the image should it ever be the server again).
        this.abort();
        return answer(Status.UPDATE_FAIL_FILE, 'server_changed');
      }
      try {
        host.updater.finish();
      } catch (e) {
        this.abort();
        return answer(Status.UPDATE_FAIL_FILE, `finish: ${String(e)}`);
      }
      try {
        host.sequences.setPendingUpdate({ server, token: m.token, state: 'staged' });
      } catch (e) {
        // Without the durable token the image could never be activated: discard it and say so.
        this.abort();
        return answer(Status.UPDATE_FAIL_FILE, `persist: ${String(e)}`);
      }
      this.ctx.events.emit({ type: 'update_staged', server, token: m.token });
      return answer(Status.UPDATE_SUCCESS, 'staged');
    } finally {
      if (live()) this.downloading = null;
    }
  }

  /** An activate from the server: restarts into the staged image, or returns the refusal to send. */
  onActivate(m: MessageOf<'activate'>): Reply | null {
    const { host } = this.ctx;
    const p = host.sequences.pendingUpdate();
    const refusal: Reply = { type: 'response', peer: m.senderId, token: m.token, fields: { status: Status.ACTIVATE_FAIL } };
    if (p === null || p.state !== 'staged' || p.server !== m.senderId || !equal(p.token, m.token)) {
      host.log('warn', 'activate_refused', { server: idHex16(m.senderId), staged: p !== null && p.state === 'staged' });
      this.ctx.events.emit({ type: 'activate_refused', server: m.senderId });
      return refusal;
    }
    host.sequences.setPendingUpdate({ server: p.server, token: p.token, state: 'activating' });
    this.ctx.events.emit({ type: 'update_activating', server: p.server, token: p.token });
    try {
      host.updater.activate(); // on a device this restarts and never returns
    } catch (e) {
      host.log('error', 'activate_failed', { why: String(e) });
      host.sequences.setPendingUpdate({ server: p.server, token: p.token, state: 'staged' });
      return refusal;
    }
    return null;
  }

  /** After a restart, once connected: confirms an activated image; returns what to tell the server (or null). */
  afterBoot(): Reply | null {
    const { host } = this.ctx;
    const p = host.sequences.pendingUpdate();
    if (p === null || p.state !== 'activating') return null;
    const state = host.updater.bootState();
    let confirmed = false;
    if (state === 'unconfirmed') {
      try {
        confirmed = host.updater.confirm() === true;
      } catch (e) {
        host.log('error', 'confirm_failed', { why: String(e) });
      }
    }
    host.sequences.setPendingUpdate(null);
    if (confirmed) this.ctx.events.emit({ type: 'update_confirmed', server: p.server, token: p.token });
    else {
      host.log('warn', 'update_not_confirmed', { bootState: state });
      this.ctx.events.emit({ type: 'update_not_confirmed', server: p.server, token: p.token, bootState: state });
    }
    return { type: 'response', peer: p.server, token: p.token, fields: { status: confirmed ? Status.ACTIVATE_SUCCESS : Status.ACTIVATE_FAIL } };
  }

  /**
   * Before a new download: a running image that is still unconfirmed ("pending verify" with ESP-IDF app
   * rollback) is confirmed first. ESP-IDF refuses to begin an OTA in that state, and with reason: the inactive
   * slot then holds the image a rollback returns to. Refusing every update until the next restart would be no
   * better, since that restart rolls the running image back. The initiate being handled is a signed command from
   * this device's server, verified and received over the broker: the running image has booted, connected and
   * heard its server, which is what the confirmation after the restart waits for, so it has proven itself.
   * Returns false (and leaves both slots alone) only when the updater cannot confirm it.
   */
  private confirmBeforeUpdate(): boolean {
    const { host } = this.ctx;
    const state = host.updater.bootState();
    if (state !== 'unconfirmed') return true;
    let ok = false;
    try {
      ok = host.updater.confirm() === true;
    } catch (e) {
      host.log('error', 'confirm_failed', { why: String(e) });
    }
    if (ok) host.log('info', 'running_image_confirmed', { before: 'update' });
    return ok;
  }

  private abort(): void {
    try {
      this.ctx.host.updater.abort();
    } catch (e) {
      this.ctx.host.log('error', 'abort_failed', { why: String(e) });
    }
  }
}

