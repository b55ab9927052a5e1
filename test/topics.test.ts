import { deviceFilter, deviceTopic, joinTopic, nextSequenceId, parseTopic, serverJoinFilter } from '../modules/srup/topics.js';

test('topics are written as the reference writes them: lowercase hex without leading zeros', () => {
  expect(deviceTopic(0x07a1c3e5f2d94b68n)).toBe('SRUP/7a1c3e5f2d94b68');
  expect(joinTopic(0x5e2b9c71a04d4f13n, 0x07a1c3e5f2d94b68n)).toBe('SRUP/servers/5e2b9c71a04d4f13/7a1c3e5f2d94b68');
  expect(serverJoinFilter(0xabn)).toBe('SRUP/servers/ab/#');
  expect(deviceFilter(0xabn)).toBe('SRUP/ab/#');
});

test('parseTopic reads device and join topics, leniently on leading zeros and case, and nothing else', () => {
  expect(parseTopic('SRUP/7a1c3e5f2d94b68')).toEqual({ kind: 'device', device: 0x07a1c3e5f2d94b68n });
  expect(parseTopic('SRUP/07A1C3E5F2D94B68')).toEqual({ kind: 'device', device: 0x07a1c3e5f2d94b68n });
  expect(parseTopic('SRUP/servers/ab/cd')).toEqual({ kind: 'join', server: 0xabn, device: 0xcdn });
  for (const t of ['SRUP/0x12', 'SRUP/0X12', 'SRUP/servers/0Xab/cd', 'SRUP/servers/ab/0xcd', 'SRUP/', 'SRUP/1ffffffffffffffff',
    'SRUP/12/x', 'srup/12', 'SRUP/servers/ab', 'SRUP/servers/ab/cd/ef', 'SRUP/g1']) {
    expect([t, parseTopic(t)]).toEqual([t, { kind: 'other' }]);
  }
});

test('the next sequence ID is one more than anything sent to or accepted from the peer', () => {
  expect(nextSequenceId(0n, 0n)).toBe(1n);
  expect(nextSequenceId(5n, 3n)).toBe(6n);
  expect(nextSequenceId(3n, 9n)).toBe(10n);
});
