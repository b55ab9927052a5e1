/**
 * The shape of a `srup` subcommand and the small amount of machinery they share: option declarations that
 * double as help text, node:util parseArgs, and two error types that carry an exit status.
 *
 * Exit statuses used by every command:
 *   0  success
 *   1  the command ran but the answer is "no" (message rejected, input does not describe a message, refusal)
 *   2  usage error, unreadable file, unusable key
 */
import { parseArgs } from 'node:util';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help for string options, e.g. FILE. */
  value?: string;
  description: string;
}

export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface CommandContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

export interface ParsedArgs {
  values: OptionValues;
  positionals: string[];
}

export interface Command {
  /** The word after `srup`. */
  name: string;
  /** One line for `srup --help`. */
  summary: string;
  /** Argument synopsis after `srup <name>`, e.g. `FILE --key PUBLIC.pem`. */
  synopsis: string;
  /** Free text printed after the options in `srup <name> --help`. */
  details?: string;
  options: Record<string, OptionSpec>;
  /** How many positional arguments the command takes (inclusive bounds). */
  /** How many positional arguments, and their names for messages (e.g. ['FILE']). */
  positionals: { min: number; max: number; names?: string[] };
  /** Returns the exit status. Throws UsageError or CliError for the common failure shapes. */
  run(args: ParsedArgs, ctx: CommandContext): Promise<number> | number;
}

/** Wrong arguments: the dispatcher prints the message and a usage hint, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure with a one-line explanation for stderr and a given exit status. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' };

/** Parses argv for one command. Throws UsageError on anything parseArgs or the positional count refuses. */
export function parseCommandArgs(cmd: Command, argv: string[]): ParsedArgs & { help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, spec] of Object.entries({ ...cmd.options, help: HELP_OPTION })) {
    options[name] = { type: spec.type };
    if (spec.short) options[name].short = spec.short;
    if (spec.multiple) options[name].multiple = true;
  }
  let parsed: { values: OptionValues; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    throw new UsageError(cleanParseError(e));
  }
  const help = parsed.values.help === true;
  delete parsed.values.help;
  if (!help) {
    const n = parsed.positionals.length;
    if (n < cmd.positionals.min) throw new UsageError(`missing ${cmd.positionals.names?.[n] ?? 'argument'}`);
    if (n > cmd.positionals.max) throw new UsageError(`unexpected argument '${parsed.positionals[cmd.positionals.max]}'`);
  }
  return { ...parsed, help };
}

function cleanParseError(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // parseArgs appends advice meant for script authors ("To specify a positional argument starting with...").
  return msg.split('. To specify')[0].replace(/\.$/, '');
}

export function commandHelp(cmd: Command): string {
  const lines = [`Usage: srup ${cmd.name} ${cmd.synopsis}`.trimEnd(), '', cmd.summary, ''];
  const entries = Object.entries({ ...cmd.options, help: HELP_OPTION });
  const labels = entries.map(([name, spec]) => {
    const flag = (spec.short ? `-${spec.short}, ` : '    ') + `--${name}`;
    return spec.type === 'string' ? `${flag} ${spec.value ?? 'VALUE'}` : flag;
  });
  const width = Math.max(...labels.map((l) => l.length));
  lines.push('Options:');
  entries.forEach(([, spec], i) => lines.push(`  ${labels[i].padEnd(width)}  ${spec.description}`));
  if (cmd.details) lines.push('', cmd.details.trimEnd());
  return lines.join('\n') + '\n';
}

/** `items` joined with ", " after `prefix`, wrapped to lines of at most `width` characters. */
export function wrapList(prefix: string, items: readonly string[], width = 100): string {
  const lines: string[] = [];
  let line = prefix;
  items.forEach((item, i) => {
    const word = item + (i < items.length - 1 ? ',' : '.');
    if (line.length + 1 + word.length > width && line.trim() !== '') {
      lines.push(line);
      line = '  ' + word;
    } else line += (line === '' || line.endsWith(' ') ? '' : ' ') + word;
  });
  lines.push(line);
  return lines.join('\n');
}

/** A string option's value, or undefined. */
export function optString(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A string option that must be present. */
export function requireString(values: OptionValues, name: string): string {
  const v = optString(values, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function optBoolean(values: OptionValues, name: string): boolean {
  return values[name] === true;
}

/** Resolves on the first Ctrl-C (SIGINT) or SIGTERM, for a command that runs until it is stopped. */
export function untilInterrupted(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
