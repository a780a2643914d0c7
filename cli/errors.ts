/**
 * Exit codes and the errors that choose them. Every failure ends as one line on stderr
 * (`e5 <command>: <message>`), with the stack only under --debug.
 *
 *   0  ok
 *   1  runtime failure: model, I/O, compute (a missing folder, an unreadable file, a bad JSONL line)
 *   2  bad usage: unknown option, bad value, missing input, output exists without --force
 *   3  a check failed: `e5 parity` found a mismatch, `e5 verify` found a broken model folder
 */
import { CommanderError } from 'commander';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_CHECK_FAILED = 3;

/** A check (parity, verify) ran and its answer is "no". */
export class CheckFailed extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckFailed';
  }
}

/** Bad input data, with the place it was found (file:line, byte offset, field). Exit 1. */
export class InputDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputDataError';
  }
}

/** Commander's own exits that are not errors. */
const COMMANDER_OK = new Set(['commander.helpDisplayed', 'commander.version']);

export function exitCodeFor(e: unknown): number {
  if (e instanceof CommanderError) {
    // `e5 help embed` ends as 'commander.help' with exit code 0; `e5` alone shows help as an error (1 → usage)
    return COMMANDER_OK.has(e.code) || (e.code === 'commander.help' && e.exitCode === 0) ? EXIT_OK : EXIT_USAGE;
  }
  if (e instanceof CheckFailed) return EXIT_CHECK_FAILED;
  return EXIT_FAILURE;
}

/** One line for the user: the message (already naming file/line/field), no stack. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    // Multi-line library messages (e.g. ParamsError's list of tensors) are kept: they are one report.
    return e.message;
  }
  return String(e);
}
