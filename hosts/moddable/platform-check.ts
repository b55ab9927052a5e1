/** Type-level only (not in the firmware build): both platforms provide exactly what platform.d.ts promises. */
import type * as Platform from './platform.js';
import * as esp32 from './platform-esp32.js';
import * as sim from './platform-sim.js';

export const platforms: readonly (typeof Platform)[] = [esp32, sim];
