/**
 * Typed reasons everywhere: every refusal names its reason from a closed list (checked by the type checker as
 * part of `npm test`), every byte input of the protocol layer refuses a non-Uint8Array as 'not_bytes', and the
 * core throws its layer's typed error (SrupError, CryptoError, C2Error), never a plain Error / RangeError; the
 * console's errors carry a code, and the HTTP server alone turns codes into statuses.
 */
import type { AgentEvent, RejectionReason } from '../modules/agent/agent.js';
import type { DeviceEvent } from '../modules/device/device.js';
import type { C2Event, RejectedReason } from '../modules/c2/index.js';
import type { Rejection } from '../modules/c2/receive.js';
import { joinSecret } from '../modules/c2/tokens.js';
import { ascii } from '../modules/c2/tokens.js';
import { fromHex, idHex16, utf8 } from '../modules/srup/bytes.js';
import { encode } from '../modules/srup/codec.js';
import { decodeData, encodeData } from '../modules/srup/data.js';
import type { Message } from '../modules/srup/schema.js';
import { conversationToken } from '../modules/srup/session.js';
import { AppError } from '../tools/c2/api.js';
import { CampaignError } from '../tools/c2/campaigns.js';
import { errorStatus } from '../tools/c2/http.js';
import { StoreError } from '../tools/c2/store.js';

const reason = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return `${(e as Error).name} ${String((e as { reason?: unknown }).reason)}`;
  }
  return 'no throw';
};

test('rejection reasons are closed lists on both sides, and the device API reports the agent\'s', () => {
  const agentReasons: RejectionReason[] = ['wrong_topic', 'replay', 'bad_signature', 'unknown_sender', 'not_permitted', 'truncated'];
  const c2Reasons: RejectedReason[] = [...agentReasons, 'rate_limited'];
  const events: (AgentEvent | DeviceEvent | C2Event)[] = [
    { type: 'rejected', reason: 'replay' },
    { type: 'rejected', reason: 'rate_limited', topic: 'SRUP/1', sender: 1n },
  ];
  // @ts-expect-error an agent's rejection reason is one of its reasons, not any text
  const agentEvent: AgentEvent = { type: 'rejected', reason: 'something else' };
  // @ts-expect-error the device API's 'rejected' event is the agent's, with the same reasons
  const deviceEvent: DeviceEvent = { type: 'rejected', reason: 'unknown' };
  // @ts-expect-error the C2's too
  const c2Event: C2Event = { type: 'rejected', reason: 'something else', topic: 'SRUP/1', sender: null };
  // @ts-expect-error the server's receive step says why with a known reason
  const rejection: Rejection = { reason: 'rate_limited', sender: null };
  expect([agentReasons.length, c2Reasons.length, events.length]).toEqual([6, 7, 2]);
  expect([agentEvent, deviceEvent, c2Event, rejection].map((e) => (e as { reason: string }).reason)).toEqual(['something else', 'unknown', 'something else', 'rate_limited']);
});

test('every byte input of the protocol layer refuses a non-Uint8Array as not_bytes (not empty, not bad_data)', () => {
  for (const bad of [null, 'abc', [1, 2], new ArrayBuffer(1)]) {
    expect(reason(() => decodeData('uint8', bad as never))).toBe('SrupError not_bytes');
    expect(reason(() => decodeData('bytes', bad as never))).toBe('SrupError not_bytes');
    expect(reason(() => encodeData('bytes', bad as never))).toBe('SrupError not_bytes');
    const m = { type: 'data', sequenceId: 1n, senderId: 2n, token: bad, fields: { dataId: utf8('x'), data: utf8('y') }, signature: new Uint8Array(1) };
    expect(reason(() => encode(m as unknown as Message))).toBe('SrupError not_bytes');
  }
  expect(reason(() => decodeData('uint8', new Uint8Array(0)))).toBe('SrupError bad_data');
});

test('the core throws its layer\'s typed error', () => {
  expect(reason(() => fromHex('abc'))).toBe('SrupError bad_hex');
  expect(reason(() => idHex16(-1n))).toBe('SrupError field_range');
  expect(reason(() => conversationToken(() => new Uint8Array(15)))).toBe('CryptoError bad_random');
  expect(reason(() => joinSecret(() => new Uint8Array(3)))).toBe('CryptoError bad_random');
  expect(reason(() => ascii('é'))).toBe('C2Error bad_argument');
});

test('console errors carry a typed code, not an HTTP status; the HTTP server maps codes to statuses in one table', () => {
  const errors = [
    new AppError('bad_argument', 'x'),
    new AppError('unknown_device', 'x'),
    new CampaignError('unknown_campaign', 'x'),
    new CampaignError('not_retryable', 'x'),
    new CampaignError('image_too_large', 'x'),
    new CampaignError('image_fetch_timeout', 'x'),
  ];
  for (const e of errors) expect(Object.keys(e)).not.toContain('status');
  expect(errors.map((e) => errorStatus(e.code))).toEqual([400, 404, 404, 409, 413, 504]);
  expect([errorStatus(new StoreError('unknown_target', 'x').reason), errorStatus('join_expired'), errorStatus('stopped')]).toEqual([404, 409, 503]);
});
