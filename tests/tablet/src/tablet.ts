// The staff tablet: a page built from proto/ alone (protoc-gen-es messages,
// connect-web's gRPC-Web transport), served from another origin than the
// server. Where the server is and which keys to use come in the query
// string: backend, desk (front-desk key), staff (staff key), location,
// treatment, client and day (the location's local date, YYYY-MM-DD; the
// test's location is in UTC).
//
// Every call is logged into #log; a call that fails unexpectedly is also
// pushed onto window.tablet.failures, which the Playwright script checks.

import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb";
import { DeviceState } from "./gen/recovery/fleet/v1/fleet_pb";
import {
  type Booking,
  BookingService,
  BookingStatus,
  type Slot,
  SlotView,
} from "./gen/recovery/booking/v1/booking_pb";

const params = new URLSearchParams(location.search);
function param(name: string): string {
  const value = params.get(name);
  if (!value) throw new Error(`the page needs ?${name}=`);
  return value;
}

const backend = param("backend");
const keys = { desk: param("desk"), staff: param("staff") };
const locationId = param("location");
const treatmentId = param("treatment");
const clientId = param("client");
const day = param("day");

const tablet = { failures: [] as string[] };
(window as unknown as { tablet: typeof tablet }).tablet = tablet;

const booking: Client<typeof BookingService> = createClient(
  BookingService,
  createGrpcWebTransport({ baseUrl: backend }),
);

const $ = (id: string) => document.getElementById(id)!;

function log(line: string, failed = false) {
  const entry = document.createElement("div");
  entry.textContent = `${new Date().toISOString().slice(11, 23)} ${line}`;
  if (failed) entry.className = "fail";
  $("log").append(entry);
}

function failed(call: string, error: unknown) {
  const e = ConnectError.from(error);
  const line = `${call} failed: ${Code[e.code]}: ${e.rawMessage}`;
  tablet.failures.push(line);
  log(line, true);
}

function as(role: keyof typeof keys) {
  return { headers: { authorization: `Bearer ${keys[role]}` } };
}

const hhmm = (t?: Timestamp) => (t ? timestampDate(t).toISOString().slice(11, 16) : "?");
const short = (id: string) => id.slice(-6);

// --- Front desk: search the day, book a slot for the client.

async function search() {
  const from = new Date(`${day}T00:00:00Z`);
  const to = new Date(from.getTime() + 24 * 60 * 60 * 1000);
  try {
    const { slots } = await booking.searchAvailability(
      {
        locationId,
        treatmentId,
        startTime: timestampFromDate(from),
        endTime: timestampFromDate(to),
        // The grid shows how many chambers are free, not which.
        view: SlotView.BASIC,
      },
      as("desk"),
    );
    log(`SearchAvailability: ${slots.length} open slots`);
    showSlots(slots);
  } catch (error) {
    failed("SearchAvailability", error);
  }
}

function showSlots(slots: Slot[]) {
  const list = $("slots");
  list.replaceChildren();
  // A tablet shows the first few; the desk scrolls for more.
  for (const slot of slots.slice(0, 12)) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    const free = slot.free.reduce((n, kind) => n + kind.count, 0);
    button.textContent = `${hhmm(slot.startTime)} (${free} free)`;
    button.dataset.free = String(free);
    button.dataset.start = slot.startTime ? timestampDate(slot.startTime).toISOString() : "";
    button.onclick = () => book(slot);
    item.append(button);
    list.append(item);
  }
  list.dataset.count = String(slots.length);
}

async function book(slot: Slot) {
  try {
    const { booking: made } = await booking.createBooking(
      {
        locationId,
        treatmentId,
        clientId,
        startTime: slot.startTime,
        requestId: `tablet-${day}-${clientId}`,
      },
      as("desk"),
    );
    if (!made) throw new Error("CreateBooking answered without a booking");
    const booked = $("booked");
    booked.textContent = `Booked ${hhmm(made.startTime)}-${hhmm(made.endTime)} for client …${short(made.clientId)}: ${BookingStatus[made.status]} (booking …${short(made.id)})`;
    booked.dataset.bookingId = made.id;
    booked.dataset.status = BookingStatus[made.status];
    booked.dataset.start = made.startTime ? timestampDate(made.startTime).toISOString() : "";
    log(`CreateBooking: ${made.id}`);
    // The slot is taken now: show what is still open.
    await search();
  } catch (error) {
    failed("CreateBooking", error);
  }
}

// --- Staff: the day's schedule, live.

let watching: AbortController | undefined;

function showBooking(b: Booking, cameAs: "snapshot" | "changed") {
  const rows = $("schedule");
  let row = rows.querySelector<HTMLTableRowElement>(`tr[data-booking-id="${b.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.bookingId = b.id;
    rows.append(row);
  }
  row.dataset.status = BookingStatus[b.status];
  // A booking whose chamber is out of service (maintenance, offline): the
  // state fleet reported, so staff know to move it.
  const risk = b.atRisk ? DeviceState[b.atRisk.deviceState] : "";
  row.dataset.atRisk = risk;
  row.dataset.cameAs = cameAs;
  row.dataset.receivedAt = String(Date.now());
  row.className = cameAs === "changed" ? "live" : "";
  row.replaceChildren(
    ...[
      hhmm(b.startTime),
      `…${short(b.id)}`,
      `…${short(b.clientId)}`,
      BookingStatus[b.status],
      risk ? `at risk: ${risk.toLowerCase()}` : "",
      cameAs,
    ].map(
      (text) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        return cell;
      },
    ),
  );
  // Keep the rows in start order, as a schedule reads.
  [...rows.children]
    .sort((a, b) => a.firstChild!.textContent!.localeCompare(b.firstChild!.textContent!))
    .forEach((r) => rows.append(r));
}

async function watch() {
  watching?.abort();
  watching = new AbortController();
  const state = $("watch-state");
  try {
    for await (const message of booking.watchSchedule(
      { locationId, day },
      { ...as("staff"), signal: watching.signal },
    )) {
      const event = message.event;
      if (event.case === "snapshot") {
        $("schedule").replaceChildren();
        event.value.bookings.forEach((b) => showBooking(b, "snapshot"));
        state.textContent = `watching ${event.value.day}: ${event.value.bookings.length} booked at start`;
        state.dataset.state = "watching";
        log(`WatchSchedule: snapshot of ${event.value.bookings.length}`);
      } else if (event.case === "changed") {
        showBooking(event.value, "changed");
        log(`WatchSchedule: changed ${event.value.id}`);
      }
    }
    state.dataset.state = "ended";
  } catch (error) {
    if (ConnectError.from(error).code === Code.Canceled) return;
    state.dataset.state = "failed";
    failed("WatchSchedule", error);
  }
}

// --- A bad request: the server's field violations, from grpc-status-details-bin.

async function bad() {
  const error = $("error");
  const list = $("violations");
  try {
    const from = new Date(`${day}T00:00:00Z`);
    await booking.searchAvailability(
      {
        locationId: "not-a-location",
        treatmentId,
        startTime: timestampFromDate(from),
        endTime: timestampFromDate(new Date(from.getTime() + 60 * 60 * 1000)),
      },
      as("desk"),
    );
    failed("SearchAvailability (bad)", new Error("a malformed location id was accepted"));
  } catch (thrown) {
    const e = ConnectError.from(thrown);
    const violations = e.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
    error.textContent = `Refused: ${Code[e.code]}: ${e.rawMessage}`;
    error.dataset.code = Code[e.code];
    list.replaceChildren(
      ...violations.map((v) => {
        const item = document.createElement("li");
        item.dataset.field = v.field;
        item.textContent = `${v.field}: ${v.description}`;
        return item;
      }),
    );
    log(`SearchAvailability (bad): ${Code[e.code]}, field violations: ${violations.map((v) => v.field).join(", ")}`);
  }
}

$("origins").textContent = `page ${location.origin} · server ${new URL(backend).origin} (gRPC-Web)`;
$("day").textContent = day;
$("search").onclick = search;
$("watch").onclick = watch;
$("bad").onclick = bad;
document.body.dataset.ready = "true";
