/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core, against the admin
 * app served on a local port, real Redis and a real worker. Signs in, cancels a waiting job,
 * aborts a running one and watches both states change (the abort's outcome arrives through the
 * live updates, without a reload). Then the same dashboard with JavaScript off.
 * .ci/run installs chromium when it is missing.
 */
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { createAdminApp } from "../admin/app.tsx";
import { serveAdmin } from "../adapters/bun.ts";
import type { AbortReason } from "../src/errors.ts";
import { Queue } from "../src/queue.ts";
import { Worker } from "../src/worker.ts";
import { redisUrl, uniquePrefix, waitFor } from "./harness.ts";
import { deferred } from "./helpers.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const TOKEN = "browser-token-0123456789";
const SHOTS = process.env.SLUICE_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "sluice-shots-"));

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});
afterAll(async () => {
  await browser?.close();
});

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => {});
});

async function setup() {
  const prefix = uniquePrefix("web");
  const app = createAdminApp({ redis: redisUrl(), prefix, queues: ["web"], auth: { token: TOKEN } });
  const server = await serveAdmin(app, { port: 0 });
  const queue = new Queue("web", { redis: redisUrl(), prefix });
  const aborted: AbortReason[] = [];
  /** Ends the critical section an aborted job runs before it honours its abort. */
  const finish = deferred();
  const worker = new Worker({
    redis: redisUrl(),
    prefix,
    queues: ["web"],
    concurrency: 1,
    abortPollInterval: 200,
    tasks: {
      async slow(_data, ctx) {
        // on abort it finishes a critical section first (until the test calls finish), so the
        // page sees it still active with its abort requested
        await new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => {
            aborted.push(ctx.abortReason!);
            void finish.promise.then(() => reject(ctx.signal.reason));
          }, { once: true })
        );
      },
    },
  });
  closers.push(() => app.close(), () => server.close(), () => queue.close(), () => (worker.phase === "stopped" ? Promise.resolve() : worker.abandon()));
  void worker.run();
  return { prefix, url: server.url, queue, worker, aborted, finish: () => finish.resolve() };
}

/**
 * Clicks, then waits for what the click must bring. A click the page dropped (it landed while the
 * page was still loading or re-rendering a live region) is tried once more, and said in the log;
 * the expected result must still come.
 */
async function clickUntil(page: Page, click: () => Promise<void>, expected: ReturnType<Page["locator"]>): Promise<void> {
  await click();
  try {
    await expected.waitFor({ timeout: 10_000 });
    return;
  } catch {
    console.log(`[browser] nothing 10 s after a click at ${page.url()}; clicking again`);
  }
  await click();
  await expected.waitFor();
}

async function signIn(page: Page, url: string): Promise<void> {
  await page.goto(url + "/");
  expect(new URL(page.url()).pathname).toBe("/login");
  await page.fill("#token", "not the token");
  await clickUntil(page, () => page.click("button[type=submit]"), page.locator(".flash.error"));
  await expect(page.locator(".flash.error").textContent()).resolves.toContain("not right");
  await page.fill("#token", TOKEN);
  await page.click("button[type=submit]");
  await page.waitForURL(url + "/");
}

test("in the dashboard, cancelling a waiting job and aborting a running one change their states", async () => {
  const { url, queue, aborted, finish } = await setup();
  const running = await queue.enqueue("slow", { n: 1 }, { jobId: "running-job" });
  const waiting = await queue.enqueue("slow", { n: 2 }, { jobId: "waiting-job" });
  await waitFor(async () => (await queue.getJob(running.id))?.state === "active", "the first job to start");

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  closers.push(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => void d.accept());
  await signIn(page, url);

  // overview: the queue with one waiting and one active job; live updates connected
  const row = page.locator("tr", { has: page.locator("a", { hasText: "web" }) });
  await expect(row.locator("td").nth(1).textContent()).resolves.toBe("1");
  await expect(row.locator("td").nth(2).textContent()).resolves.toBe("1");
  await page.locator("#live-status.on").waitFor();
  await page.screenshot({ path: join(SHOTS, "overview.png"), fullPage: true });

  // the waiting list: cancel the waiting job from its row
  await page.click("a[href='/queues/web?state=waiting']");
  const waitingRow = page.locator(`tr[data-job="${waiting.id}"]`);
  await waitingRow.waitFor();
  await clickUntil(page, () => waitingRow.locator("button", { hasText: "Cancel" }).click(), page.locator(".flash.ok", { hasText: `Job ${waiting.id} cancelled` }));
  expect(await page.locator(`tr[data-job="${waiting.id}"]`).count()).toBe(0);
  expect((await queue.getJob(waiting.id))?.state).toBe("cancelled");
  await page.goto(`${url}/queues/web/jobs/${waiting.id}`);
  await expect(page.locator("#job-state").textContent()).resolves.toBe("cancelled");

  // the running job: abort it from its page; the new state arrives without a reload
  await page.goto(`${url}/queues/web/jobs/${running.id}`);
  await expect(page.locator("#job-state").textContent()).resolves.toBe("active");
  await page.locator("#live-status.on").waitFor();
  await clickUntil(page, () => page.click("button:has-text('Abort job')"), page.locator(".flash.ok", { hasText: "Abort requested" }));
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  await expect(page.locator("#job-state").textContent()).resolves.toBe("active");
  await expect(page.locator(".badge", { hasText: "abort requested" }).count()).resolves.toBe(1);
  // the handler saw the abort and holds its critical section; once it ends, the job ends aborted
  await waitFor(() => aborted.length === 1, "the handler to see its abort");
  finish();
  await page.locator("#job-state", { hasText: "aborted" }).waitFor({ timeout: 15_000 });
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42); // same document: a live update
  await expect(page.locator(".card", { hasText: "Error" }).textContent()).resolves.toContain("abort reason: user");
  await page.screenshot({ path: join(SHOTS, "aborted-job.png"), fullPage: true });
  expect(aborted).toEqual(["user"]);
  expect((await queue.getJob(running.id))?.state).toBe("aborted");

  // both now show under their states
  await page.goto(`${url}/queues/web?state=cancelled`);
  await page.locator(`tr[data-job="${waiting.id}"]`).waitFor();
  await page.goto(`${url}/queues/web?state=aborted`);
  await page.locator(`tr[data-job="${running.id}"]`).waitFor();
  expect(errors).toEqual([]);
});

test("without JavaScript the dashboard reads and acts through plain forms, refreshing itself", async () => {
  const { url, queue, finish } = await setup();
  finish(); // an aborted job ends as soon as it sees its abort
  const running = await queue.enqueue("slow", null, { jobId: "busy" });
  await waitFor(async () => (await queue.getJob(running.id))?.state === "active", "the job to start");
  const later = await queue.enqueue("slow", null, { jobId: "later", delay: "1h" });

  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 800 } });
  closers.push(() => context.close());
  const page = await context.newPage();
  await page.goto(url + "/");
  await page.fill("#token", TOKEN);
  await page.click("button[type=submit]");
  await page.waitForURL(url + "/");
  expect(await page.locator("noscript").count()).toBeGreaterThan(0);

  await page.goto(`${url}/queues/web/jobs/${later.id}`);
  await expect(page.locator("#job-state").textContent()).resolves.toBe("delayed");
  await page.click("button:has-text('Cancel job')");
  await page.locator(".flash.ok").waitFor();
  await expect(page.locator("#job-state").textContent()).resolves.toBe("cancelled");

  await page.goto(`${url}/queues/web/jobs/${running.id}`);
  await page.click("button:has-text('Abort job')");
  await page.locator(".flash.ok", { hasText: "Abort requested" }).waitFor();
  await waitFor(async () => (await queue.getJob(running.id))?.state === "aborted", "the job to end aborted");
  await page.reload();
  await expect(page.locator("#job-state").textContent()).resolves.toBe("aborted");

  await page.goto(`${url}/workers`);
  await expect(page.locator("tbody tr").count()).resolves.toBe(1);
  await expect(page.locator(".badge.p-running").textContent()).resolves.toBe("running");
  await page.screenshot({ path: join(SHOTS, "workers-nojs.png"), fullPage: true });
});

test("operators on desktop and phone: search, bulk-retry the failed jobs, pause and resume; on a phone the tables become cards with every action in reach", async () => {
  const { url, queue, prefix, worker } = await setup();
  // failed jobs to find and retry, failed by a worker of their own (the setup's worker stops first)
  await worker.stop();
  const failAll = async () => {
    const bad = new Worker({ redis: redisUrl(), prefix, queues: ["web"], wait: false, tasks: { boom: (d: { n: number }) => { throw new Error(`broken #${d.n}`); } } });
    await bad.run();
    expect((await queue.counts()).failed).toBe(6);
  };
  await queue.enqueueMany(Array.from({ length: 6 }, (_, n) => ({ task: "boom", data: { n }, options: { attempts: 1 } })));
  for (const [label, viewport] of [["phone", { width: 390, height: 844 }], ["desktop", { width: 1280, height: 800 }]] as const) {
    await failAll();
    const context = await browser.newContext({ viewport, ...(label === "phone" ? { isMobile: true, hasTouch: true } : {}) });
    closers.push(() => context.close());
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => void d.accept());
    await signIn(page, url);
    // search the failed jobs for one error text
    await page.goto(`${url}/queues/web?state=failed`);
    await page.fill("input[name=search]", "broken #4");
    await page.click("form.search button[type=submit]");
    await page.waitForURL(/search=broken/);
    await expect(page.locator("tbody tr").count()).resolves.toBe(1);
    await expect(page.locator("tbody tr").textContent()).resolves.toContain("broken #4");
    // every control fits the width: nothing scrolls sideways
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect([label, overflow <= 0]).toEqual([label, true]);
    await page.screenshot({ path: join(SHOTS, `search-${label}.png`), fullPage: true });
    if (label === "phone") await expect(page.locator("table.cards thead").isVisible()).resolves.toBe(false);
    // retry all failed from the bulk bar (confirmed), then pause and resume the queue
    await page.goto(`${url}/queues/web?state=failed`);
    await clickUntil(page, () => page.click("button:has-text('Retry all 6 failed')"), page.locator(".flash.ok", { hasText: "6 jobs retried" }));
    expect([label, await queue.counts()]).toEqual([label, expect.objectContaining({ failed: 0, waiting: 6 })]);
    await clickUntil(page, () => page.click("button:has-text('Pause')"), page.locator(".badge", { hasText: "paused" }));
    expect([label, await queue.isPaused()]).toEqual([label, true]);
    await page.screenshot({ path: join(SHOTS, `paused-${label}.png`), fullPage: true });
    await clickUntil(page, () => page.click("button:has-text('Resume')"), page.locator(".flash.ok", { hasText: "resumed" }));
    expect([label, await queue.isPaused()]).toEqual([label, false]);
    if (label === "phone") {
      // the workers page: cards, its Stop button on screen
      const live = new Worker({ redis: redisUrl(), prefix, queues: ["other"], tasks: { slow: () => new Promise(() => {}) } });
      closers.push(() => live.abandon());
      void live.run();
      await page.goto(`${url}/workers`);
      const stop = page.locator("button:has-text('Stop now')").first();
      await stop.waitFor();
      const box = (await stop.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
      expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
      await page.screenshot({ path: join(SHOTS, `workers-${label}.png`), fullPage: true });
      await live.stop();
    }
    expect(errors).toEqual([]);
  }
});
