/** The 8×8 matrix pixel mapping: wiring and rotation, and the brightness cap. */
import { capBrightness, pixelIndex, pixelMap, type MatrixLayout } from '../modules/matrix/layout.js';

const L = (wiring: MatrixLayout['wiring'], rotation: MatrixLayout['rotation']): MatrixLayout => ({ size: 8, wiring, rotation });

describe('matrix layout', () => {
  test('progressive, unrotated: row-major', () => {
    expect(pixelMap(L('progressive', 0))).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });

  test('serpentine: odd rows run right to left', () => {
    expect(pixelIndex(L('serpentine', 0), 0, 0)).toBe(0);
    expect(pixelIndex(L('serpentine', 0), 0, 7)).toBe(7);
    expect(pixelIndex(L('serpentine', 0), 1, 0)).toBe(15);
    expect(pixelIndex(L('serpentine', 0), 1, 7)).toBe(8);
    expect(pixelIndex(L('serpentine', 0), 7, 0)).toBe(63);
  });

  test('rotations move the viewer\'s top-left to the panel corner that is up', () => {
    // Panel turned 90° clockwise: its LED 0 (panel top-left) is now at the viewer's top-right.
    expect(pixelIndex(L('progressive', 90), 0, 7)).toBe(0);
    expect(pixelIndex(L('progressive', 90), 0, 0)).toBe(56);
    expect(pixelIndex(L('progressive', 180), 0, 0)).toBe(63);
    expect(pixelIndex(L('progressive', 180), 7, 7)).toBe(0);
    expect(pixelIndex(L('progressive', 270), 7, 0)).toBe(0);
    expect(pixelIndex(L('progressive', 270), 0, 0)).toBe(7);
    expect(pixelIndex(L('serpentine', 180), 0, 0)).toBe(56); // panel row 7 runs right to left
  });

  test('every layout is a permutation of 0..63', () => {
    for (const w of ['progressive', 'serpentine'] as const)
      for (const r of [0, 90, 180, 270] as const) expect([...pixelMap(L(w, r))].sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });

  test('rotating four times by 90 is the identity', () => {
    // Viewer cell → panel cell under 90°, applied through the map four times.
    const m = pixelMap(L('progressive', 90));
    const cellOfLed = new Array<number>(64);
    m.forEach((led, cell) => (cellOfLed[led] = cell));
    let cell = 10;
    for (let i = 0; i < 4; i++) cell = cellOfLed[cell];
    expect(cell).toBe(10);
  });

  test('out of range cells throw', () => {
    expect(() => pixelIndex(L('progressive', 0), 8, 0)).toThrow(RangeError);
  });

  test('brightness cap keeps the hue and never exceeds the cap', () => {
    expect(capBrightness([255, 128, 0], 32)).toEqual([32, 16, 0]);
    expect(capBrightness([10, 20, 30], 32)).toEqual([10, 20, 30]);
    expect(capBrightness([0, 0, 0], 1)).toEqual([0, 0, 0]);
  });
});
