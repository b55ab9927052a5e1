/**
 * The server's plain commands to a device (SRUP-WIRE.md §11): action, data, ID request, terminate, deregister.
 *
 *   action 0x04            -> handler -> response 0x20 done / 0x2E no handler for the id / 0x2F false or threw
 *   data 0x05              -> options.onData(dataId, bytes); not answered
 *   id_request 0x06        -> data "IDENTIFICATION_RESPONSE" = "<firmwareName> <firmwareVersion>" (token echoed)
 *   terminate_command 0x11 -> server cleared; not answered
 *   deregister_command 0x13-> server key dropped and server cleared; not answered
 *
 * Every answer echoes the token of the message answered and goes to its sender (the server).
 */
import { utf8, utf8DecodeOrNull } from '../srup/bytes.js';
import type { MessageOf } from '../srup/schema.js';
import { Status } from '../srup/schema.js';
import type { ActionHandler, AgentContext } from './context.js';

export const ID_RESPONSE_DATA_ID = 'IDENTIFICATION_RESPONSE';

function findAction(actions: AgentContext['options']['actions'], id: number): ActionHandler | null {
  if (actions === undefined) return null;
  if (actions instanceof Map) return actions.get(id) ?? null;
  const key = String(id);
  return Object.prototype.hasOwnProperty.call(actions, key) ? (actions as Record<string, ActionHandler>)[key] : null;
}

export async function onAction(ctx: AgentContext, m: MessageOf<'action'>): Promise<void> {
  const id = m.fields.actionId;
  const handler = findAction(ctx.options.actions, id);
  let status: number = Status.ACTION_UNKNOWN;
  if (handler !== null) {
    try {
      status = (await handler(id)) === true ? Status.ACTION_SUCCESS : Status.ACTION_FAIL;
    } catch (e) {
      ctx.host.log('warn', 'action_threw', { actionId: id, why: String(e) });
      status = Status.ACTION_FAIL;
    }
  }
  ctx.emit({ type: 'action', actionId: id, status });
  await ctx.send('response', m.senderId, m.token, { status }, m.sequenceId);
}

export function onData(ctx: AgentContext, m: MessageOf<'data'>): void {
  const dataId = utf8DecodeOrNull(m.fields.dataId);
  if (dataId === null) {
    ctx.host.log('warn', 'bad_data_id', { length: m.fields.dataId.length });
    return;
  }
  ctx.emit({ type: 'data', dataId, length: m.fields.data.length });
  if (ctx.options.onData === undefined) {
    ctx.host.log('info', 'data_ignored', { dataId });
    return;
  }
  try {
    ctx.options.onData(dataId, m.fields.data);
  } catch (e) {
    ctx.host.log('warn', 'on_data_threw', { dataId, why: String(e) });
  }
}

export async function onIdRequest(ctx: AgentContext, m: MessageOf<'id_request'>): Promise<void> {
  ctx.emit({ type: 'id_request', server: m.senderId });
  await ctx.send('data', m.senderId, m.token, idResponse(ctx.options), m.sequenceId);
}

/** The ID response's fields: data IDENTIFICATION_RESPONSE = "<firmwareName> <firmwareVersion>". */
export function idResponse(options: AgentContext['options']): { dataId: Uint8Array; data: Uint8Array } {
  return { dataId: utf8(ID_RESPONSE_DATA_ID), data: utf8(`${options.firmwareName} ${options.firmwareVersion}`) };
}

export function onTerminate(ctx: AgentContext, m: MessageOf<'terminate_command'>): void {
  ctx.host.keys.setServerId(null);
  ctx.emit({ type: 'terminated', server: m.senderId });
}

export function onDeregisterCommand(ctx: AgentContext, m: MessageOf<'deregister_command'>): void {
  // The replay counters stay: were the key trusted again later, old messages must still count as replays.
  // The server first: should dropping the key then fail, the device is left as after a terminate (no server,
  // key kept), never obeying a server whose key it no longer has.
  ctx.host.keys.setServerId(null);
  ctx.host.keys.setPeerKey(m.senderId, null);
  ctx.emit({ type: 'deregistered', server: m.senderId, by: 'server' });
}
