/**
 * The four colours a grid is drawn with: colour index 0, 1, 2, 3 → palette.colours[0..3]. RGB values are sRGB
 * 0..255 as a screen shows them; an LED host that wants the LEDs to match a screen converts them to linear
 * light (the sRGB transfer function) before scaling for brightness.
 *
 * - DEFAULT_PALETTE: cyan (0,255,255), red (255,0,0), yellow (255,255,0), blue (0,0,255). Stays apart under
 *   protan, deutan and tritan colour vision: every pair is at least ΔE00 20 apart under normal vision and under
 *   the Machado et al. (2009) simulations at full severity (measured: 41.97 normal, 39.99 protan, 26.66 deutan,
 *   31.03 tritan; see vision.ts and the tests). Every channel is 0 or 255, so an LED shows the same hue whatever
 *   its brightness or gamma handling, and the darkest colour (blue, L* 32) is far from an unlit (black) LED.
 * - REFERENCE_PALETTE: white (255,255,255), red (255,0,0), yellow (255,255,0), blue (0,0,255), as the reference
 *   console draws it. White and yellow are only ΔE00 10.26 apart for tritan vision; the default palette is the
 *   same with white replaced by cyan.
 */
import { ChallengeError } from './errors.js';
import { checkCells, GRID_CELLS } from './grid.js';

export type Rgb = readonly [number, number, number];

export interface PaletteColour {
  /** English name for people ("cyan"). */
  readonly name: string;
  /** One capital letter for text renderings ("C"), unique within its palette. */
  readonly symbol: string;
  readonly rgb: Rgb;
}

export interface Palette {
  readonly name: string;
  readonly colours: readonly [PaletteColour, PaletteColour, PaletteColour, PaletteColour];
}

export const DEFAULT_PALETTE: Palette = {
  name: 'default',
  colours: [
    { name: 'cyan', symbol: 'C', rgb: [0, 255, 255] },
    { name: 'red', symbol: 'R', rgb: [255, 0, 0] },
    { name: 'yellow', symbol: 'Y', rgb: [255, 255, 0] },
    { name: 'blue', symbol: 'B', rgb: [0, 0, 255] },
  ],
};

export const REFERENCE_PALETTE: Palette = {
  name: 'reference',
  colours: [
    { name: 'white', symbol: 'W', rgb: [255, 255, 255] },
    { name: 'red', symbol: 'R', rgb: [255, 0, 0] },
    { name: 'yellow', symbol: 'Y', rgb: [255, 255, 0] },
    { name: 'blue', symbol: 'B', rgb: [0, 0, 255] },
  ],
};

function isChannel(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
}

/** Throws `bad_palette` unless `p` has 4 colours, each with a name, a one-letter symbol and 3 channels 0..255. */
export function checkPalette(p: unknown): asserts p is Palette {
  const colours: unknown = typeof p === 'object' && p !== null ? (p as { colours?: unknown }).colours : undefined;
  if (!Array.isArray(colours) || colours.length !== 4) {
    throw new ChallengeError('bad_palette', 'a palette has exactly 4 colours');
  }
  for (let i = 0; i < 4; i++) {
    const c: unknown = colours[i];
    const o = (typeof c === 'object' && c !== null ? c : {}) as { name?: unknown; symbol?: unknown; rgb?: unknown };
    const rgb = o.rgb;
    const ok =
      typeof o.name === 'string' &&
      typeof o.symbol === 'string' &&
      o.symbol.length === 1 &&
      Array.isArray(rgb) &&
      rgb.length === 3 &&
      isChannel(rgb[0]) &&
      isChannel(rgb[1]) &&
      isChannel(rgb[2]);
    if (!ok) throw new ChallengeError('bad_palette', `palette colour ${i} is not { name, symbol, rgb: [0..255 ×3] }`);
  }
  const symbols = (colours as { symbol: string }[]).map((c) => c.symbol);
  if (new Set(symbols).size !== 4) throw new ChallengeError('bad_palette', 'palette symbols must differ');
}

/** The RGB of one colour index. */
export function cellRgb(index: number, palette: Palette = DEFAULT_PALETTE): Rgb {
  checkPalette(palette);
  if (index !== 0 && index !== 1 && index !== 2 && index !== 3) {
    throw new ChallengeError('bad_cells', 'a colour index is 0..3');
  }
  return palette.colours[index].rgb;
}

/** The grid as 192 bytes R, G, B per cell, cells in grid order (row-major from the top-left). */
export function gridRgb(cells: readonly number[], palette: Palette = DEFAULT_PALETTE): Uint8Array {
  checkCells(cells);
  checkPalette(palette);
  const out = new Uint8Array(GRID_CELLS * 3);
  for (let i = 0; i < GRID_CELLS; i++) out.set(palette.colours[cells[i]].rgb, 3 * i);
  return out;
}
