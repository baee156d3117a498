// Drives the staff tablet in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core; nothing is downloaded). Run by tests/tablet.rs:
//
//   node run.mjs '{"backend": "http://127.0.0.1:50051", "desk": KEY, "staff": KEY,
//                  "location": ID, "treatment": ID, "client": ID, "day": "YYYY-MM-DD",
//                  "screenshot": PATH}'
//
// It serves dist/ from its own origin (another port than the server), opens
// the page and, as the front desk, searches the day and books the first slot;
// as staff, watches the day and then prints {"step": "watching"} and waits
// for one line on stdin, {"booking_id": ID}, a booking the test made meanwhile
// with another client: it must show on the page within a second. Last, a bad
// request must show the server's field violation. Each step prints one JSON
// line; the last is {"step": "done", ...}. Any failure (a page call, an
// assertion, a timeout) exits 1.

import { createServer } from "node:http";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const config = JSON.parse(process.argv[2] ?? "{}");
const dist = new URL("./dist/", import.meta.url).pathname;
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const within = (ms, promise, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
  ]);
function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}
// Waits until `selector` is on the page, or fails at once when a call of the
// page failed (window.tablet.failures) or after `timeout` ms.
async function waitFor(page, selector, timeout) {
  const answer = await page.waitForFunction(
    (selector) =>
      document.querySelector(selector) ? "found" : window.tablet?.failures.join("; ") || false,
    selector,
    { timeout, polling: 10 },
  );
  const value = await answer.jsonValue();
  if (value !== "found") throw new Error(`a call of the page failed: ${value}`);
}

// The page's own origin: a static file server on another port.
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };
const server = createServer(async (request, response) => {
  const path = new URL(request.url, "http://x").pathname.replace(/^\/$/, "/index.html");
  try {
    const body = await readFile(join(dist, path.replace(/\.\./g, "")));
    response.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    response.end(body);
  } catch {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const userDataDir = await mkdtemp(join(tmpdir(), "tablet-chromium-"));
let context;
let page;
let code = 1;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: config.chromium ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1024, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    process.stderr.write(`page console ${message.type()}: ${message.text()}\n`);
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });

  const query = new URLSearchParams({
    backend: config.backend,
    desk: config.desk,
    staff: config.staff,
    location: config.location,
    treatment: config.treatment,
    client: config.client,
    day: config.day,
  });
  await page.goto(`${origin}/?${query}`);
  await waitFor(page, "body[data-ready=true]", 10_000);
  check(new URL(config.backend).origin !== origin, "the page is served from another origin than the server");
  say({ step: "opened", page_origin: origin, server_origin: new URL(config.backend).origin });

  // Front desk: the day's open slots, then book the first one.
  let started = Date.now();
  await page.click("#search");
  await waitFor(page, "#slots li button", 10_000);
  const slots = Number(await page.getAttribute("#slots", "data-count"));
  const first = await page.getAttribute("#slots li button", "data-start");
  const free = Number(await page.getAttribute("#slots li button", "data-free"));
  say({ step: "searched", slots, first, free, ms: Date.now() - started });

  started = Date.now();
  await page.click("#slots li button");
  await waitFor(page, "#booked[data-booking-id]", 10_000);
  const booked = {
    id: await page.getAttribute("#booked", "data-booking-id"),
    status: await page.getAttribute("#booked", "data-status"),
    start: await page.getAttribute("#booked", "data-start"),
  };
  check(booked.start === first, `the booking starts at the slot clicked (${booked.start} vs ${first})`);
  check(booked.status === "BOOKED", `the booking is BOOKED (${booked.status})`);
  say({ step: "booked", ...booked, ms: Date.now() - started });

  // Staff: watch the day; the snapshot holds the desk's booking.
  started = Date.now();
  await page.click("#watch");
  await waitFor(page, "#watch-state[data-state=watching]", 10_000);
  await waitFor(page, `#schedule tr[data-booking-id="${booked.id}"][data-came-as=snapshot]`, 2_000);
  say({ step: "watching", snapshot: await page.locator("#schedule tr").count(), ms: Date.now() - started });

  // Another client books meanwhile (the test, over gRPC): on the page within a second.
  const line = await within(60_000, stdin.next(), "the test's booking");
  check(!line.done, "the test sent its booking");
  const other = JSON.parse(line.value);
  const told = Date.now();
  const row = `#schedule tr[data-booking-id="${other.booking_id}"][data-came-as=changed]`;
  await waitFor(page, row, 1_000);
  const receivedAt = Number(await page.getAttribute(row, "data-received-at"));
  say({
    step: "live",
    booking_id: other.booking_id,
    status: await page.getAttribute(row, "data-status"),
    received_at: receivedAt,
    waited_ms: Date.now() - told,
  });

  // Staff put the chamber into maintenance (the test, over gRPC): the day's
  // bookings on it come again, marked at risk, within a second.
  const risky = await within(60_000, stdin.next(), "the test's maintenance");
  check(!risky.done, "the test put the chamber into maintenance");
  const atRisk = JSON.parse(risky.value).at_risk;
  const maintained = Date.now();
  for (const id of atRisk) {
    await waitFor(page, `#schedule tr[data-booking-id="${id}"][data-at-risk=MAINTENANCE]`, 1_000);
  }
  say({ step: "at_risk", booking_ids: atRisk, waited_ms: Date.now() - maintained });

  // A bad request: the server's field violation, decoded from the error details.
  await page.click("#bad");
  await waitFor(page, "#violations li", 10_000);
  const violations = await page.$$eval("#violations li", (items) =>
    items.map((li) => ({ field: li.dataset.field, description: li.textContent })),
  );
  const refused = await page.getAttribute("#error", "data-code");
  check(refused === "InvalidArgument", `the bad request is INVALID_ARGUMENT (${refused})`);
  check(violations.some((v) => v.field === "location_id"), `a violation names location_id: ${JSON.stringify(violations)}`);
  say({ step: "refused", code: refused, violations });

  await page.screenshot({ path: config.screenshot, fullPage: true });
  const failures = await page.evaluate(() => window.tablet.failures);
  check(failures.length === 0, `no page call failed: ${JSON.stringify(failures)}`);
  check(problems.length === 0, `no page errors: ${JSON.stringify(problems)}`);
  say({ step: "done", screenshot: config.screenshot });
  code = 0;
} catch (error) {
  // What the page showed when it failed, beside where the good one goes.
  const shot = config.screenshot?.replace(/\.png$/, "-failed.png");
  if (page && shot) await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
  say({ step: "failed", error: String(error?.stack ?? error), screenshot: shot });
} finally {
  await context?.close().catch(() => {});
  server.close();
  await rm(userDataDir, { recursive: true, force: true });
}
process.exit(code);
