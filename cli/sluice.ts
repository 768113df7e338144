#!/usr/bin/env node
/**
 * The `sluice` command line. The same file runs under each runtime:
 *   bun run cli/sluice.ts <command> ...
 *   deno run -A cli/sluice.ts <command> ...
 *   node --import tsx cli/sluice.ts <command> ...
 * Run it with `--help` for the commands.
 * @module
 */
import { adapter } from "../adapters/auto.ts";
import { flushOutput, processArgs, processIo } from "./io.ts";
import { main } from "./main.ts";

const { exit } = await adapter();
const code = await main(processArgs(), processIo);
await flushOutput();
// exit explicitly: a worker may leave behind handlers that ignore their abort (third signal)
exit(code);
