/**
 * The join challenge pictures (modules/challenge) and the LED matrix mapping (modules/matrix) on any engine,
 * with exact values: the device and the C2 console must draw the same grid and blink code from a secret, so the
 * same numbers must come out of XS and Node. Also the colour-vision measurements (floating point through
 * Math.pow / atan2 / exp, to the published CIEDE2000 test data).
 */
import { pureCrypto } from '../../crypto/pure.js';
import { toHex } from '../../modules/srup/bytes.js';
import {
  ChallengeError,
  DEFAULT_PALETTE,
  REFERENCE_PALETTE,
  blinkAt,
  blinkCode,
  blinkSchedule,
  challengeGrid,
  gridRgb,
  gridToSecret,
  parseSecret,
  renderGridText,
  scheduleDuration,
  worstCaseBlinkMs,
} from '../../modules/challenge/index.js';
import { deltaE2000, minPairwiseDeltaE, VISIONS, type Lab, type Vision } from '../../modules/challenge/vision.js';
import { capBrightness, pixelIndex, pixelMap, type MatrixLayout } from '../../modules/matrix/layout.js';
import { ChallengeRecorder } from './fakes.js';
import { Case, bytesEqual, check, deepEqual, equal, throwsReason } from './harness.js';

/** A pySRUP-style secret (uuid4().hex: character 12 is "4", character 16 one of 8, 9, a, b). */
export const SECRET = 'c3a94f1e07b24d6a9e15f0b8d27c4a63';

/** challengeGrid(SECRET), pinned: the device and the console must draw exactly this. */
// prettier-ignore
export const SECRET_CELLS: readonly number[] = [
  3, 0, 0, 3, 2, 2, 2, 1,
  1, 0, 3, 3, 0, 1, 3, 2,
  0, 0, 1, 3, 2, 3, 0, 2,
  1, 0, 3, 1, 1, 2, 2, 2,
  2, 1, 3, 2, 0, 1, 1, 1,
  3, 3, 0, 0, 2, 3, 2, 0,
  3, 1, 0, 2, 1, 3, 3, 0,
  1, 0, 2, 2, 1, 2, 0, 3,
];

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s.split(''), (c) => c.charCodeAt(0));
}

const L = (wiring: MatrixLayout['wiring'], rotation: MatrixLayout['rotation']): MatrixLayout => ({ size: 8, wiring, rotation });

export function challengeCases(): Case[] {
  return [
    {
      name: 'challenge: a fixed secret gives exactly these 64 cells, from text, raw bytes and upper case alike',
      run() {
        deepEqual(challengeGrid(SECRET), SECRET_CELLS, 'grid from text');
        deepEqual(challengeGrid(ascii(SECRET)), SECRET_CELLS, 'grid from the decrypted bytes');
        deepEqual(challengeGrid(SECRET.toUpperCase()), SECRET_CELLS, 'grid from upper case');
        equal(toHex(parseSecret(SECRET)), SECRET, 'parsed secret');
        deepEqual(challengeGrid('1b' + '0'.repeat(30)).slice(0, 4), [0, 1, 2, 3], 'cells of "1b"');
        deepEqual(challengeGrid('0'.repeat(31) + '6').slice(60), [0, 0, 1, 2], 'last cells');
        equal(gridToSecret(SECRET_CELLS), SECRET, 'grid back to the secret');
        equal(
          renderGridText(SECRET_CELLS),
          'B C C B Y Y Y R\nR C B B C R B Y\nC C R B Y B C Y\nR C B R R Y Y Y\nY R B Y C R R R\nB B C C Y B Y C\nB R C Y R B B C\nR C Y Y R Y C B\n',
          'text rendering',
        );
        equal(toHex(pureCrypto.sha256(gridRgb(SECRET_CELLS))), '3ae4ee4aa47cc2272370e10986bf683162a0b57b84df63e63ba048b89a4ae013', 'SHA-256 of the grid colours');
        bytesEqual(gridRgb(SECRET_CELLS).subarray(0, 6), Uint8Array.of(0, 0, 255, 0, 255, 255), 'first two cells: blue, cyan');
        bytesEqual(gridRgb(SECRET_CELLS, REFERENCE_PALETTE).subarray(3, 6), Uint8Array.of(255, 255, 255), 'reference palette white');
      },
    },
    {
      name: 'challenge: blink code digits, schedule and LED state at exact times',
      run() {
        const code = blinkCode(SECRET);
        equal(code.digits, '4114333221', 'digits');
        deepEqual(blinkCode(ascii(SECRET)).values, [4, 1, 1, 4, 3, 3, 3, 2, 2, 1], 'digits from the decrypted bytes');
        const steps = blinkSchedule(code);
        equal(steps.length, 48, 'steps (24 flashes on and off)');
        equal(scheduleDuration(steps), 21500, 'one repetition, ms');
        equal(worstCaseBlinkMs(), 29500, 'worst case, ms');
        // Digit 4: flashes at 0, 500, 1000, 1500 (250 ms each); the digit gap 1750..2750; digit 1 at 2750..3000.
        const at = [0, 249, 250, 1500, 1749, 1750, 2749, 2750, 2999, 3000, 21499, 21500];
        deepEqual(
          at.map((t) => blinkAt(steps, t)),
          [true, true, false, true, true, false, false, true, true, false, false, true],
          'LED at ' + at.join(', ') + ' ms',
        );
        throwsReason(() => blinkCode('c3a94f1e-07b2-4d6a-9e15-f0b8d27c4a63'), ChallengeError, 'bad_length', 'hyphenated uuid');
        throwsReason(() => blinkCode(ascii(SECRET.slice(0, 31) + '\0')), ChallengeError, 'not_hex', 'NUL-padded secret');
        throwsReason(() => blinkCode(parseSecret(SECRET)), ChallengeError, 'bad_length', '16 raw bytes');
      },
    },
    {
      name: 'challenge: the device’s 8x8 LED buffer (serpentine, turned 90°, capped at 32) for the secret',
      run() {
        const p = new ChallengeRecorder({ size: 8, wiring: 'serpentine', rotation: 90 }, 32);
        p.showChallenge(ascii(SECRET));
        const leds = p.current?.leds ?? new Uint8Array(0);
        equal(toHex(leds.subarray(0, 24)), '200000202000202000202000200000002020002020000020', 'first 8 LEDs');
        equal(toHex(pureCrypto.sha256(leds)), '73c42e074e0bfe61ca947de3b7cfdd0f14921b0d1f814ebb855577d5c62754b1', 'SHA-256 of the LED buffer');
      },
    },
    {
      name: 'matrix: wiring and rotation map the viewer’s cells to the LEDs; brightness cap keeps the hue',
      run() {
        deepEqual(pixelMap(L('progressive', 0)), Array.from({ length: 64 }, (_, i) => i), 'progressive, unrotated');
        deepEqual(
          [[0, 0], [0, 7], [1, 0], [1, 7], [7, 0]].map(([r, c]) => pixelIndex(L('serpentine', 0), r, c)),
          [0, 7, 15, 8, 63],
          'serpentine',
        );
        deepEqual(
          [
            pixelIndex(L('progressive', 90), 0, 7),
            pixelIndex(L('progressive', 90), 0, 0),
            pixelIndex(L('progressive', 180), 0, 0),
            pixelIndex(L('progressive', 270), 7, 0),
            pixelIndex(L('progressive', 270), 0, 0),
            pixelIndex(L('serpentine', 180), 0, 0),
          ],
          [0, 56, 63, 0, 7, 56],
          'rotations',
        );
        for (const w of ['progressive', 'serpentine'] as const) {
          for (const r of [0, 90, 180, 270] as const) {
            deepEqual([...pixelMap(L(w, r))].sort((a, b) => a - b), Array.from({ length: 64 }, (_, i) => i), `${w} ${r}: a permutation`);
          }
        }
        let threw = false;
        try {
          pixelIndex(L('progressive', 0), 8, 0);
        } catch (e) {
          threw = e instanceof RangeError;
        }
        check(threw, 'cell (8, 0) throws RangeError');
        deepEqual(capBrightness([255, 128, 0], 32), [32, 16, 0], 'capped');
        deepEqual(capBrightness([10, 20, 30], 32), [10, 20, 30], 'under the cap');
      },
    },
    {
      name: 'challenge: CIEDE2000 reproduces published test pairs; the default palette’s measured separations',
      run() {
        const pairs: [Lab, Lab, number][] = [
          [[50, 2.6772, -79.7751], [50, 0, -82.7485], 2.0425],
          [[50, 0, 0], [50, -1, 2], 2.3669],
          [[50, 2.49, -0.001], [50, -2.49, 0.0009], 7.1792],
          [[50, 2.49, -0.001], [50, -2.49, 0.0011], 7.2195],
          [[50, -0.001, 2.49], [50, 0.0009, -2.49], 4.8045],
          [[50, -0.001, 2.49], [50, 0.0011, -2.49], 4.7461],
          [[50, 2.5, 0], [73, 25, -18], 27.1492],
          [[50, 2.5, 0], [56, -27, -3], 31.903],
          [[60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644],
          [[22.7233, 20.0904, -46.694], [23.0331, 14.973, -42.5619], 2.0373],
          [[90.9257, -0.5406, -0.9208], [88.6381, -0.8985, -0.7239], 1.5381],
          [[2.0776, 0.0795, -1.135], [0.9033, -0.0636, -0.5514], 0.9082],
        ];
        for (const [a, b, de] of pairs) {
          const got = deltaE2000(a, b);
          check(Math.abs(got - de) < 5e-5, `ΔE00(${a.join(' ')}; ${b.join(' ')}) = ${got}, published ${de}`);
        }
        const measured: Record<Vision, number> = { normal: 41.97, protan: 39.99, deutan: 26.66, tritan: 31.03 };
        const rgb = DEFAULT_PALETTE.colours.map((c) => c.rgb);
        for (const v of VISIONS) {
          const min = minPairwiseDeltaE(rgb, v);
          check(Math.abs(min - measured[v]) < 0.005, `default palette, ${v}: smallest ΔE00 ${min}, measured ${measured[v]}`);
        }
      },
    },
  ];
}
