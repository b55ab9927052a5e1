/**
 * Text renderings of a grid for terminals and logs.
 *
 * - renderGridAnsi: 8 lines, one per row, each ending in "\n". A cell is ESC "[48;2;R;G;Bm" (24-bit background
 *   colour) followed by two spaces; each line ends with ESC "[0m" (reset) before its "\n".
 * - renderGridText: 8 lines, one per row, each ending in "\n": the cells' palette symbols separated by one space
 *   (e.g. "C R Y B C C R B"), for terminals without colour and for people who prefer letters.
 */
import { checkCells, GRID_SIZE } from './grid.js';
import { checkPalette, DEFAULT_PALETTE, type Palette } from './palette.js';

const ESC = '\u001b';

export function renderGridAnsi(cells: readonly number[], palette: Palette = DEFAULT_PALETTE): string {
  checkCells(cells);
  checkPalette(palette);
  let s = '';
  for (let r = 0; r < GRID_SIZE; r++) {
    for (let c = 0; c < GRID_SIZE; c++) {
      const [red, green, blue] = palette.colours[cells[r * GRID_SIZE + c]].rgb;
      s += `${ESC}[48;2;${red};${green};${blue}m  `;
    }
    s += `${ESC}[0m\n`;
  }
  return s;
}

export function renderGridText(cells: readonly number[], palette: Palette = DEFAULT_PALETTE): string {
  checkCells(cells);
  checkPalette(palette);
  let s = '';
  for (let r = 0; r < GRID_SIZE; r++) {
    const row: string[] = [];
    for (let c = 0; c < GRID_SIZE; c++) row.push(palette.colours[cells[r * GRID_SIZE + c]].symbol);
    s += row.join(' ') + '\n';
  }
  return s;
}
