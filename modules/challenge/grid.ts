/**
 * The 8×8 colour grid of a join secret.
 *
 * The 128 bits of the secret (see secret.ts) fill 64 cells, 2 bits per cell, most significant bits first, row by
 * row from the top-left cell, as the viewer sees the matrix:
 *   - cell i (0..63) is at row ⌊i / 8⌋ (0 = top), column i mod 8 (0 = left);
 *   - cell 2j is the high two bits of hex character j (0..31), cell 2j+1 its low two bits, i.e.
 *     cell 2j = value(char j) >> 2 and cell 2j+1 = value(char j) & 3;
 *   - so each row is 4 hex characters: row r shows characters 4r..4r+3.
 * Example: a secret starting "1b" gives cells 0..3 = 0, 1, 2, 3 (1 = 00 01, b = 10 11).
 * A cell's value 0..3 is a colour index into a palette (palette.ts).
 *
 * In a pySRUP secret (`uuid4().hex`) hex character 12 is always "4" and character 16 is one of 8, 9, a, b, so
 * cells 24 (= 1), 25 (= 0) and 32 (= 2) are the same for every secret; the other 61 cells carry 122 random bits.
 */
import { ChallengeError } from './errors.js';
import { bytesToHex, parseSecret, SECRET_BYTES } from './secret.js';

export const GRID_SIZE = 8;
export const GRID_CELLS = 64;

/** A cell value: an index into a 4-colour palette. */
export type ColourIndex = 0 | 1 | 2 | 3;

/** The 64 cells of the secret's grid, row-major from the top-left. */
export function challengeGrid(secret: string | Uint8Array): ColourIndex[] {
  const bytes = parseSecret(secret);
  const cells: ColourIndex[] = [];
  for (let i = 0; i < GRID_CELLS; i++) {
    cells.push(((bytes[i >> 2] >> (6 - 2 * (i & 3))) & 3) as ColourIndex);
  }
  return cells;
}

/** Throws `bad_cells` unless `cells` is an array of 64 integers in 0..3. */
export function checkCells(cells: unknown): asserts cells is readonly ColourIndex[] {
  if (!Array.isArray(cells) || cells.length !== GRID_CELLS) {
    throw new ChallengeError('bad_cells', `a grid is an array of ${GRID_CELLS} cells`);
  }
  for (let i = 0; i < GRID_CELLS; i++) {
    const v: unknown = cells[i];
    if (v !== 0 && v !== 1 && v !== 2 && v !== 3) {
      throw new ChallengeError('bad_cells', `cell ${i} is not a colour index 0..3`);
    }
  }
}

/** The inverse of challengeGrid: the secret a grid shows, as 32 lowercase hex characters. */
export function gridToSecret(cells: readonly number[]): string {
  checkCells(cells);
  const bytes = new Uint8Array(SECRET_BYTES);
  for (let i = 0; i < GRID_CELLS; i++) bytes[i >> 2] |= cells[i] << (6 - 2 * (i & 3));
  return bytesToHex(bytes);
}
