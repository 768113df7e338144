#!/usr/bin/env node
// The `sluice` command of the npm package: runs cli/sluice.ts in this Node process through tsx's
// loader (Node before 23.6 cannot run TypeScript by itself). One process, so SIGINT and SIGTERM
// reach the worker directly. Under Bun or Deno, run cli/sluice.ts itself.
let register;
try {
  ({ register } = await import("tsx/esm/api"));
} catch {
  console.error("sluice: running under Node needs tsx (npm install tsx); or run: bun run node_modules/sluice/cli/sluice.ts");
  process.exit(1);
}
register();
await import("../cli/sluice.ts");
