/**
 * Every `srup` subcommand, in the order `srup --help` lists them. A new command is one module in this folder
 * exporting a `Command` (tools/lib/cli.ts) and one line here.
 */
import type { Command } from '../lib/cli.js';
import { c2Command } from './c2.js';
import { decodeCommand } from './decode.js';
import { demoCommand } from './demo.js';
import { deviceCommand } from './device.js';
import { encodeCommand } from './encode.js';
import { keygenCommand } from './keygen.js';
import { provisionCommand } from './provision.js';

export const COMMANDS: readonly Command[] = [decodeCommand, deviceCommand, encodeCommand, keygenCommand, provisionCommand, c2Command, demoCommand];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
