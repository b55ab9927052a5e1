/**
 * `srup`: the project's command-line tool. This file only dispatches; each subcommand is a module in
 * tools/commands/ listed in tools/commands/index.ts. Bundled to dist/srup.mjs by scripts/build.mjs and started
 * by bin/srup.js.
 */
import { CliError, UsageError, commandHelp, parseCommandArgs, type CommandContext } from './lib/cli.js';
import { COMMANDS, findCommand } from './commands/index.js';

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: srup <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'srup <command> --help' for a command's options.",
    '',
  ].join('\n');
}

/** Runs one `srup` invocation (argv without node and the script) and resolves with the exit status. */
export async function main(argv: string[], ctx?: Partial<CommandContext>): Promise<number> {
  const io: CommandContext = {
    stdout: ctx?.stdout ?? process.stdout,
    stderr: ctx?.stderr ?? process.stderr,
    stdin: ctx?.stdin ?? process.stdin,
  };
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(usage());
    return 2;
  }
  if (name === '--help' || name === '-h') {
    io.stdout.write(usage());
    return 0;
  }
  if (name === 'help') {
    const cmd = rest[0] === undefined ? undefined : findCommand(rest[0]);
    if (rest[0] !== undefined && !cmd) {
      io.stderr.write(`srup: unknown command '${rest[0]}'\n\n${usage()}`);
      return 2;
    }
    io.stdout.write(cmd ? commandHelp(cmd) : usage());
    return 0;
  }
  const cmd = findCommand(name);
  if (!cmd) {
    io.stderr.write(`srup: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    const args = parseCommandArgs(cmd, rest);
    if (args.help) {
      io.stdout.write(commandHelp(cmd));
      return 0;
    }
    return await cmd.run(args, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`srup ${cmd.name}: ${e.message}\nUsage: srup ${cmd.name} ${cmd.synopsis}\nRun 'srup ${cmd.name} --help' for details.\n`);
      return 2;
    }
    if (e instanceof CliError) {
      io.stderr.write(`srup ${cmd.name}: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
