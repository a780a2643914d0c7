/**
 * The commands `e5` knows, in the order `e5 --help` lists them. A command is a module with
 * `register(program)` that adds one subcommand (with `program.command(...)`, so it inherits the
 * program's error handling). To add one: write cli/commands/NAME.ts and append it here.
 */
import type { Command } from 'commander';
import * as embed from './embed';
import * as evalCommand from './eval';
import * as explain from './explain';
import * as inspect from './inspect';
import * as merge from './merge';
import * as native from './native';
import * as parity from './parity';
import * as similarity from './similarity';
import * as tokenize from './tokenize';
import * as verify from './verify';

export interface CommandModule {
  register(program: Command): Command;
}

export const COMMANDS: CommandModule[] = [similarity, explain, embed, merge, tokenize, inspect, parity, verify, evalCommand, native];
