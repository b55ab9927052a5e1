/**
 * Typed data payloads (data, syndicated_data, syndicated_c2_request): every vector's
 * `fields.data.interpretation` decodes with decodeData to exactly its value, and encodeData gives the bytes back.
 */
import { fromHex, toHex } from '../../modules/srup/bytes.js';
import { DataKind, decodeData, encodeData, isDataKind } from '../../modules/srup/data.js';
import { SrupError } from '../../modules/srup/errors.js';
import { Case, bytesEqual, check, equal, show, throwsReason } from './harness.js';
import { BytesJson, VectorSet, bytesOf } from './vectors.js';

/** The value an interpretation describes, in decodeData's terms. */
function expectedValue(kind: DataKind, interp: { value?: number | string; hex?: string }): unknown {
  if (kind === 'bytes') return fromHex(interp.hex ?? '');
  if (kind === 'uint64' || kind === 'int64') return BigInt(interp.value as string);
  return interp.value;
}

export function dataCases(set: VectorSet): Case[] {
  const cases: Case[] = [];
  for (const v of set.vectors) {
    const data = v.sidecar.fields?.data as BytesJson | undefined;
    if (v.expect !== 'valid' || data === undefined || data.interpretation === undefined) continue;
    const interp = data.interpretation;
    cases.push({
      name: `${v.id}: data payload reads as ${interp.type} ${
        interp.value !== undefined ? show(interp.value) : `<${interp.hex}>`
      }`,
      run() {
        check(isDataKind(interp.type), `unknown interpretation type ${show(interp.type)}`);
        const kind = interp.type;
        const bytes = bytesOf(data, `${v.id} fields.data`);
        const expected = expectedValue(kind, interp);
        const got = decodeData(kind, bytes);
        if (got instanceof Uint8Array) bytesEqual(got, expected as Uint8Array, `decodeData(${kind})`);
        else equal(got, expected, `decodeData(${kind})`);
        if (kind === 'string') equal(data.text, expected, 'sidecar text');
        bytesEqual(encodeData(kind, expected as never), bytes, `encodeData(${kind}, ${show(expected)})`);
      },
    });
  }

  cases.push(
    {
      name: 'data: numeric payloads of the wrong size are refused (bad_data)',
      run() {
        const sizes: [DataKind, number][] = [
          ['uint8', 1], ['int8', 1], ['uint16', 2], ['int16', 2], ['uint32', 4], ['int32', 4],
          ['uint64', 8], ['int64', 8], ['float', 4], ['double', 8],
        ];
        for (const [kind, size] of sizes) {
          for (const n of [0, size - 1, size + 1]) {
            if (n === size || n < 0) continue;
            throwsReason(() => decodeData(kind, new Uint8Array(n)), SrupError, 'bad_data', `${kind} from ${n} bytes`);
          }
        }
      },
    },
    {
      name: 'data: malformed UTF-8 is refused as a string (bad_data); valid UTF-8 reads back',
      run() {
        for (const hex of ['ff', 'c0af', 'e08080', 'eda080', 'f4908080', 'c3', 'e282']) {
          throwsReason(() => decodeData('string', fromHex(hex)), SrupError, 'bad_data', `string from <${hex}>`);
        }
        equal(decodeData('string', fromHex('e282ac41f09f9880')), '\u20acA\u{1f600}', 'string from <e282ac41f09f9880>');
        equal(toHex(encodeData('string', '\u20acA\u{1f600}')), 'e282ac41f09f9880', 'UTF-8 of "\u20acA\u{1f600}"');
      },
    },
    {
      name: 'data: integer extremes round trip; out-of-range values are refused (bad_data)',
      run() {
        const cases: [DataKind, number | bigint, string][] = [
          ['uint8', 255, 'ff'], ['int8', -128, '80'], ['uint16', 65535, 'ffff'], ['int16', -32768, '0080'],
          ['uint32', 0xffffffff, 'ffffffff'], ['int32', -0x80000000, '00000080'],
          ['uint64', (1n << 64n) - 1n, 'ffffffffffffffff'], ['int64', -(1n << 63n), '0000000000000080'],
        ];
        for (const [kind, value, hex] of cases) {
          equal(toHex(encodeData(kind, value as never)), hex, `encodeData(${kind}, ${show(value)})`);
          equal(decodeData(kind, fromHex(hex)), value, `decodeData(${kind}, <${hex}>)`);
        }
        const bad: [DataKind, number | bigint][] = [
          ['uint8', 256], ['int8', 128], ['uint16', -1], ['int32', 0x80000000], ['uint32', 1.5],
          ['uint64', 1n << 64n], ['int64', 1n << 63n],
        ];
        for (const [kind, value] of bad) {
          const what = `encodeData(${kind}, ${show(value)})`;
          throwsReason(() => encodeData(kind, value as never), SrupError, 'bad_data', what);
        }
      },
    },
  );
  return cases;
}
