/**
 * Join challenge pictures: what a device shows, and the operator console shows beside it, during a
 * human-moderated join. Pure functions of the secret (32 hex characters, as pySRUP sends it), so both ends
 * draw the same thing.
 *
 * - secret.ts: which secrets are accepted (exactly 32 hex characters, string or raw bytes).
 * - grid.ts:   the 8×8 grid, 2 bits per cell, row-major from the top-left, most significant bits first.
 * - palette.ts: the default (colour-vision safe) and reference palettes, RGB helpers.
 * - render.ts: terminal renderings (24-bit ANSI colour, plain letters).
 * - blink.ts:  the 10-digit blink code (digits 1..4, 20 bits) and its on/off schedule for a single LED.
 * vision.ts (colour-vision simulation and ΔE) is not exported here: it is for choosing and testing palettes.
 */
export { ChallengeError, isChallengeError, type ChallengeErrorReason } from './errors.js';
export { parseSecret, SECRET_HEX_LENGTH, SECRET_BYTES } from './secret.js';
export { challengeGrid, gridToSecret, checkCells, GRID_SIZE, GRID_CELLS, type ColourIndex } from './grid.js';
export {
  DEFAULT_PALETTE,
  REFERENCE_PALETTE,
  cellRgb,
  gridRgb,
  checkPalette,
  type Palette,
  type PaletteColour,
  type Rgb,
} from './palette.js';
export { renderGridAnsi, renderGridText } from './render.js';
export {
  blinkCode,
  blinkSchedule,
  blinkTiming,
  blinkAt,
  scheduleDuration,
  worstCaseBlinkMs,
  BLINK_DIGITS,
  BLINK_BITS,
  MAX_REPETITION_MS,
  DEFAULT_BLINK_TIMING,
  type BlinkCode,
  type BlinkOptions,
  type BlinkStep,
  type BlinkTiming,
} from './blink.js';
