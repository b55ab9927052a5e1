/**
 * Where grid cell (row, column) of the 8×8 challenge lands on a WS2812 matrix: the index of the LED in the
 * strip. Row 0 / column 0 is the top-left cell as the person sees it (modules/challenge reads cells row by
 * row). The matrix is described as wired: LED 0 at the top-left of the panel, rows of `width` LEDs, either
 * every row left to right (progressive) or alternating direction (serpentine, the common 8×8 boards); and
 * the panel may be mounted rotated clockwise by 0, 90, 180 or 270 degrees.
 */

export type Wiring = 'progressive' | 'serpentine';
export type Rotation = 0 | 90 | 180 | 270;

export interface MatrixLayout {
  readonly size: number;
  readonly wiring: Wiring;
  readonly rotation: Rotation;
}

/** LED index for the cell at (row, col) of what the viewer sees. */
export function pixelIndex(layout: MatrixLayout, row: number, col: number): number {
  const n = layout.size;
  if (!(Number.isInteger(row) && Number.isInteger(col) && row >= 0 && col >= 0 && row < n && col < n))
    throw new RangeError(`cell (${row}, ${col}) outside a ${n}×${n} matrix`);
  // A panel turned clockwise by θ shows its own (r, c) at the viewer's position rotated by θ; invert that.
  let r: number;
  let c: number;
  switch (layout.rotation) {
    case 0: r = row; c = col; break;
    case 90: r = n - 1 - col; c = row; break;
    case 180: r = n - 1 - row; c = n - 1 - col; break;
    case 270: r = col; c = n - 1 - row; break;
    default: throw new RangeError(`rotation ${String(layout.rotation)}`);
  }
  const x = layout.wiring === 'serpentine' && r % 2 === 1 ? n - 1 - c : c;
  return r * n + x;
}

/** The LED index of every cell, in cell order (row by row): `map[cell] = led`. */
export function pixelMap(layout: MatrixLayout): number[] {
  const out: number[] = [];
  for (let row = 0; row < layout.size; row++) for (let col = 0; col < layout.size; col++) out.push(pixelIndex(layout, row, col));
  return out;
}

/** Scales an 8-bit colour so that no channel exceeds `cap` (keeps the hue; 0 < cap ≤ 255). */
export function capBrightness(rgb: readonly [number, number, number], cap: number): [number, number, number] {
  const max = Math.max(rgb[0], rgb[1], rgb[2]);
  if (max <= cap || max === 0) return [rgb[0], rgb[1], rgb[2]];
  return [Math.round((rgb[0] * cap) / max), Math.round((rgb[1] * cap) / max), Math.round((rgb[2] * cap) / max)];
}
