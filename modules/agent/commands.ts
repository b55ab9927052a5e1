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
 *
 * Each handler returns what its command causes, as values: the event for the application and the answer to send
 * (Handled); the Agent emits and sends them (agent.ts). A handler calls nothing of the Agent's.
 */
import { utf8, utf8DecodeOrNull } from '../srup/bytes.js';
import type { MessageOf } from '../srup/schema.js';
import { Status } from '../srup/schema.js';
import type { ActionHandler, AgentContext, AgentEvent, Reply } from './context.js';

/** What a command handler sees: the host's stores and log, and the application's options. */
export type CommandContext = Pick<AgentContext, 'host' | 'options'>;

/** What a command caused: the event to tell the application (if any) and the answer to send (if any). */
export interface Handled {
  readonly event: AgentEvent | null;
  readonly reply: Reply | null;
}

const NOTHING: Handled = { event: null, reply: null };

export const ID_RESPONSE_DATA_ID = 'IDENTIFICATION_RESPONSE';

function findAction(actions: AgentContext['options']['actions'], id: number): ActionHandler | null {
  if (actions === undefined) return null;
  if (actions instanceof Map) return actions.get(id) ?? null;
  const key = String(id);
  return Object.prototype.hasOwnProperty.call(actions, key) ? (actions as Record<string, ActionHandler>)[key] : null;
}

export async function onAction(ctx: CommandContext, m: MessageOf<'action'>): Promise<Handled> {
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
  return {
    event: { type: 'action', actionId: id, status },
    reply: { type: 'response', peer: m.senderId, token: m.token, fields: { status }, answering: m.sequenceId },
  };
}

/** Data: its event (emitted as the data arrives); the agent then hands the data to deliverData. */
export function onData(ctx: CommandContext, m: MessageOf<'data'>): Handled {
  const dataId = utf8DecodeOrNull(m.fields.dataId);
  if (dataId === null) {
    ctx.host.log('warn', 'bad_data_id', { length: m.fields.dataId.length });
    return NOTHING;
  }
  return { event: { type: 'data', dataId, length: m.fields.data.length }, reply: null };
}

/** Hands data that onData took to options.onData (after its event was emitted). */
export function deliverData(ctx: CommandContext, dataId: string, data: Uint8Array): void {
  if (ctx.options.onData === undefined) {
    ctx.host.log('info', 'data_ignored', { dataId });
    return;
  }
  try {
    ctx.options.onData(dataId, data);
  } catch (e) {
    ctx.host.log('warn', 'on_data_threw', { dataId, why: String(e) });
  }
}

export function onIdRequest(ctx: CommandContext, m: MessageOf<'id_request'>): Handled {
  return {
    event: { type: 'id_request', server: m.senderId },
    reply: { type: 'data', peer: m.senderId, token: m.token, fields: idResponse(ctx.options), answering: m.sequenceId },
  };
}

/** The ID response's fields: data IDENTIFICATION_RESPONSE = "<firmwareName> <firmwareVersion>". */
export function idResponse(options: CommandContext['options']): { dataId: Uint8Array; data: Uint8Array } {
  return { dataId: utf8(ID_RESPONSE_DATA_ID), data: utf8(`${options.firmwareName} ${options.firmwareVersion}`) };
}

export function onTerminate(ctx: CommandContext, m: MessageOf<'terminate_command'>): Handled {
  ctx.host.keys.setServerId(null);
  return { event: { type: 'terminated', server: m.senderId }, reply: null };
}

export function onDeregisterCommand(ctx: CommandContext, m: MessageOf<'deregister_command'>): Handled {
  // The replay counters stay: were the key trusted again later, old messages must still count as replays.
  // The server first: should dropping the key then fail, the device is left as after a terminate (no server,
  // key kept), never obeying a server whose key it no longer has.
  ctx.host.keys.setServerId(null);
  ctx.host.keys.setPeerKey(m.senderId, null);
  return { event: { type: 'deregistered', server: m.senderId, by: 'server' }, reply: null };
}
