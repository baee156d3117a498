//! The fuzz suite: every unary RPC of every service, called through real
//! gRPC with messages made from the descriptor set alone (plausible ones,
//! hostile ones and mixtures), under every role's key, on both engines.
//!
//! - `every_rpc_under_every_role`: no answer is INTERNAL, UNKNOWN,
//!   CANCELLED (a reset stream), `DATA_LOSS` or a hang; an INVALID_ARGUMENT
//!   changes no row (every table counted after every call).
//! - `cross_tenant_sweep`: every id tenant A's keys can see, tried in every
//!   id field of every RPC with tenant B's keys: never OK with A's data,
//!   and A's listings read the same afterwards.
//!
//! - `page_tokens_hold_only_where_they_came_from`: a real token of every
//!   list that pages is refused on every other list, by another tenant and
//!   with another filter.
//!
//! Runs a fixed seed and a random one it prints; `FUZZ_SEED=0x…` replays
//! one seed alone, `FUZZ_CASES=n` sets the messages per RPC and role
//! (default 5). Failures are gathered (one per method and code) and
//! reported together, each with its seed and case.

#![allow(clippy::too_many_lines)]

#[path = "fuzz/gen.rs"]
mod gen_;
#[path = "fuzz/world.rs"]
mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use gen_::{Gen, Rng, ids_in, strings_in};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    ReflectMessage as _, Value,
};
use recovery_kit::Role;
use recovery_kit::testing::TestDb;
use tonic::Code;
use world::{Tenant, World, is_bug};

/// The seed every run replays.
const FIXED_SEED: u64 = 0x5eed_2026_c0ff_ee11;
/// Ids kept per tenant for the generator to use.
const MAX_IDS: usize = 200;

fn seeds() -> Vec<u64> {
    if let Ok(text) = std::env::var("FUZZ_SEED") {
        let text = text.trim();
        let seed = text
            .strip_prefix("0x")
            .map_or_else(|| text.parse(), |hex| u64::from_str_radix(hex, 16))
            .expect("FUZZ_SEED: a number, decimal or 0x-hex");
        eprintln!("fuzz seed {seed:#x} (from FUZZ_SEED)");
        return vec![seed];
    }
    let random = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(0)
        })
        ^ u64::from(std::process::id()).rotate_left(32);
    eprintln!(
        "fuzz seeds: fixed {FIXED_SEED:#x}, random {random:#x} (replay one: FUZZ_SEED={random:#x})"
    );
    vec![FIXED_SEED, random]
}

fn cases() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
}

/// What went wrong, one per method and code.
#[derive(Default)]
struct Failures(BTreeMap<(String, String), String>);

impl Failures {
    fn add(&mut self, method: &MethodDescriptor, what: &str, detail: String) {
        self.0
            .entry((method.full_name().to_owned(), what.to_owned()))
            .or_insert(detail);
    }

    fn assert_none(self, calls: usize) {
        if self.0.is_empty() {
            return;
        }
        let mut report = format!("{} failures in {calls} calls:\n", self.0.len());
        for ((method, what), detail) in &self.0 {
            let _ = writeln!(report, "- {method}: {what}: {detail}");
        }
        panic!("{report}");
    }
}

fn cut(text: &str) -> String {
    let mut out: String = text.chars().take(300).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The strings of an answer, for a report.
fn shown(message: &DynamicMessage) -> String {
    let mut seen = Vec::new();
    strings_in(message, &mut seen);
    cut(&format!("{} {seen:?}", message.descriptor().name()))
}

fn remember(tenant: &mut Tenant, method: &MethodDescriptor, reply: &DynamicMessage) {
    // Key ids are kept out: revoking the fuzzer's own keys would end the run.
    if method.name().contains("ApiKey") || method.name() == "GetCaller" {
        return;
    }
    let mut found = Vec::new();
    ids_in(reply, &mut found);
    for id in found {
        if tenant.ids.len() < MAX_IDS && !tenant.ids.contains(&id) {
            tenant.ids.push(id);
        }
    }
}

/// Fills a studio the way its staff would, from the descriptors alone:
/// plausible creates under each role, then every list and get, twice, and
/// keeps the ids the answers name.
async fn populate(world: &World, tenant: &mut Tenant) {
    let methods = world.unary_methods();
    let keys = tenant.keys();
    for round in 0..3 {
        for method in &methods {
            let writes = !(method.name().starts_with("List")
                || method.name().starts_with("Get")
                || method.name().starts_with("Delete")
                || method.name().starts_with("Revoke")
                || method.name().starts_with("Retire")
                || method.name().starts_with("Erase")
                || method.name().starts_with("Cancel"));
            if round < 2 && !writes {
                continue;
            }
            for (role, key) in &keys {
                for attempt in 0..4 {
                    let label = format!("populate/{round}/{}/{role}/{attempt}", method.full_name());
                    let message = Gen {
                        rng: Rng::for_case(FIXED_SEED, &label),
                        ids: &tenant.ids,
                        now: world.now,
                        hostility: 0,
                    }
                    .message(&method.input());
                    match world.call(method, &message, key).await {
                        Ok(reply) => remember(tenant, method, &reply),
                        Err(status) if status.code() == Code::PermissionDenied => break,
                        Err(_) => {}
                    }
                }
            }
        }
    }
    eprintln!(
        "{}: {} ids after populating",
        tenant.studio.tenant_id,
        tenant.ids.len()
    );
}

async fn every_rpc_under_every_role(db: TestDb) {
    let world = World::start(db).await;
    let mut alpha = world.studio("Alpha").await;
    populate(&world, &mut alpha).await;
    let mut keys = vec![(Role::Operator, world.operator.clone())];
    keys.extend(alpha.keys());
    let mut conn = world.connect().await;
    let mut counts = world.counts(&mut conn).await;
    let mut failures = Failures::default();
    let mut calls = 0;
    let started = Instant::now();
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    for seed in seeds() {
        for method in world.unary_methods() {
            for (role, key) in &keys {
                for case in 0..cases() {
                    let label = format!("{}/{role}/{case}", method.full_name());
                    let message = Gen {
                        rng: Rng::for_case(seed, &label),
                        ids: &alpha.ids,
                        now: world.now,
                        hostility: [0, 15, 35, 60, 90][case % 5],
                    }
                    .message(&method.input());
                    let answer = world.call(&method, &message, key).await;
                    calls += 1;
                    let before = std::mem::take(&mut counts);
                    counts = world.counts(&mut conn).await;
                    let code = answer.as_ref().err().map_or(Code::Ok, tonic::Status::code);
                    *by_code.entry(format!("{code:?}")).or_default() += 1;
                    let replay = format!("FUZZ_SEED={seed:#x}, {label}");
                    match answer {
                        Ok(answer) => remember(&mut alpha, &method, &answer),
                        Err(status) if is_bug(status.code()) => failures.add(
                            &method,
                            &format!("{:?}", status.code()),
                            format!("{replay}: {}", cut(status.message())),
                        ),
                        Err(status) if status.code() == Code::InvalidArgument => {
                            let changed: Vec<String> = before
                                .iter()
                                .zip(&counts)
                                .filter(|(b, a)| b != a)
                                .map(|((t, b), (_, a))| format!("{t} {b}→{a}"))
                                .collect();
                            if !changed.is_empty() {
                                failures.add(
                                    &method,
                                    "INVALID_ARGUMENT changed rows",
                                    format!("{replay}: {}", changed.join(", ")),
                                );
                            }
                        }
                        // The role check comes first: one more message
                        // would only be refused again.
                        Err(status) if status.code() == Code::PermissionDenied => break,
                        Err(_) => {}
                    }
                }
            }
        }
    }
    eprintln!(
        "fuzz: {calls} calls in {:.1} s, answers by code: {by_code:?}",
        started.elapsed().as_secs_f64()
    );
    failures.assert_none(calls);
}

/// Paths to every id field of `desc` (through singular messages).
fn id_paths(desc: &MessageDescriptor, depth: u32) -> Vec<Vec<FieldDescriptor>> {
    let mut out = Vec::new();
    for field in desc.fields() {
        let name = field.name();
        match field.kind() {
            Kind::String
                if name != "request_id"
                    && (name == "id" || name.ends_with("_id") || name.ends_with("_ids")) =>
            {
                out.push(vec![field.clone()]);
            }
            Kind::Message(m)
                if depth < 3 && !field.is_list() && !m.full_name().starts_with("google.") =>
            {
                for mut path in id_paths(&m, depth + 1) {
                    path.insert(0, field.clone());
                    out.push(path);
                }
            }
            _ => {}
        }
    }
    out
}

fn with_id(base: &DynamicMessage, path: &[FieldDescriptor], id: &str) -> DynamicMessage {
    let mut message = base.clone();
    let mut at = &mut message;
    for field in &path[..path.len() - 1] {
        at = at
            .get_field_mut(field)
            .as_message_mut()
            .expect("a singular message field");
    }
    let leaf = &path[path.len() - 1];
    let value = if leaf.is_list() {
        Value::List(vec![Value::String(id.to_owned())])
    } else {
        Value::String(id.to_owned())
    };
    at.set_field(leaf, value);
    message
}

/// What A's keys list, read the same way each time: each answer and its
/// encoding.
async fn listings(world: &World, tenant: &Tenant) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let manager = tenant.studio.key(Role::Manager);
    for method in world.unary_methods() {
        if !method.name().starts_with("List") {
            continue;
        }
        for id in &tenant.ids {
            let mut message = DynamicMessage::new(method.input());
            for path in id_paths(&method.input(), 0) {
                message = with_id(&message, &path, id);
            }
            if let Ok(reply) = world.call(&method, &message, manager).await {
                out.push((
                    format!("{} {id}: {}", method.name(), shown(&reply)),
                    prost::Message::encode_to_vec(&reply),
                ));
            }
        }
    }
    out
}

async fn cross_tenant_sweep(db: TestDb) {
    let world = World::start(db).await;
    let mut alpha = world.studio("Alpha").await;
    let mut bravo = world.studio("Bravo").await;
    populate(&world, &mut alpha).await;
    populate(&world, &mut bravo).await;
    let before = listings(&world, &alpha).await;
    let own: Vec<String> = alpha.ids.clone();
    let started = Instant::now();
    let mut failures = Failures::default();
    let mut calls = 0;
    for method in world.unary_methods() {
        let base = Gen {
            rng: Rng::for_case(FIXED_SEED, &format!("sweep/{}", method.full_name())),
            ids: &bravo.ids,
            now: world.now,
            hostility: 0,
        }
        .message(&method.input());
        // Bravo's first role allowed to make the call.
        let mut key = None;
        for (_, candidate) in bravo.keys() {
            match world.call(&method, &base, &candidate).await {
                Err(status) if status.code() == Code::PermissionDenied => {}
                _ => {
                    key = Some(candidate);
                    break;
                }
            }
        }
        let Some(key) = key else { continue };
        for path in id_paths(&method.input(), 0) {
            for id in &own {
                let message = with_id(&base, &path, id);
                calls += 1;
                match world.call(&method, &message, &key).await {
                    Ok(reply) => {
                        let mut seen = Vec::new();
                        strings_in(&reply, &mut seen);
                        if let Some(leak) = seen.iter().find(|s| own.contains(s)) {
                            let field: Vec<&str> = path.iter().map(FieldDescriptor::name).collect();
                            failures.add(
                                &method,
                                "OK with the other tenant's data",
                                format!(
                                    "{} = {id} answered {leak}: {}",
                                    field.join("."),
                                    shown(&reply)
                                ),
                            );
                        }
                    }
                    Err(status) if is_bug(status.code()) => failures.add(
                        &method,
                        &format!("{:?}", status.code()),
                        cut(status.message()),
                    ),
                    Err(_) => {}
                }
            }
        }
    }
    eprintln!(
        "sweep: {calls} calls with {} of Alpha's ids in {:.1} s",
        own.len(),
        started.elapsed().as_secs_f64()
    );
    let after = listings(&world, &alpha).await;
    if before != after {
        let changed: Vec<&String> = after
            .iter()
            .filter(|a| !before.contains(a))
            .map(|(shown, _)| shown)
            .collect();
        failures.0.insert(
            ("Alpha's listings".into(), "changed by Bravo".into()),
            cut(&format!("{changed:?}")),
        );
    }
    failures.assert_none(calls);
}

/// A `ListBookings` page token is a cursor: one made by another tenant's
/// list must not position this tenant's page (it would tell when the other
/// tenant's booking is). Alpha's token comes after its booking of the day
/// after tomorrow at 14:00; Bravo's client has bookings at 13:00 that day
/// and the day after: with Alpha's token Bravo reads nothing, or is
/// refused, but never just the later one.
async fn a_cursor_from_another_tenant_positions_nothing(db: TestDb) {
    use recovery_proto::booking::v1 as bk;
    use recovery_proto::booking::v1::booking_service_client::BookingServiceClient;
    let world = World::start(db).await;
    let alpha = world.studio("Alpha").await;
    let bravo = world.studio("Bravo").await;
    let day = |n: i64, hour: i64| world.now - world.now % 86_400 + n * 86_400 + hour * 3600;
    for n in [2, 3] {
        alpha
            .book(&world.channel, &alpha.clients[0], day(n, 14))
            .await;
        bravo
            .book(&world.channel, &bravo.clients[0], day(n, 13))
            .await;
    }
    let list = |tenant: &Tenant, page_size, page_token: String| {
        let channel = world.channel.clone();
        let key = tenant.studio.key(Role::FrontDesk).to_owned();
        let client_id = tenant.clients[0].clone();
        async move {
            BookingServiceClient::with_interceptor(
                channel,
                recovery_kit::testing::Bearer::new(&key),
            )
            .list_bookings(bk::ListBookingsRequest {
                client_id,
                page_size,
                page_token,
                ..Default::default()
            })
            .await
        }
    };
    let first = list(&alpha, 2, String::new()).await.unwrap().into_inner();
    assert_eq!(first.bookings.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let own = list(&bravo, 0, String::new()).await.unwrap().into_inner();
    assert_eq!(own.bookings.len(), 3, "Bravo's client has three bookings");
    match list(&bravo, 0, first.next_page_token).await {
        Ok(page) => {
            let starts: Vec<i64> = page
                .into_inner()
                .bookings
                .iter()
                .map(|b| b.start_time.unwrap_or_default().seconds)
                .collect();
            assert!(
                starts.is_empty(),
                "Alpha's cursor positioned Bravo's page: {starts:?}"
            );
        }
        Err(status) => assert_eq!(status.code(), Code::InvalidArgument, "{status:?}"),
    }
}

/// A list that gave a real page token: the method, the key that listed,
/// the requests it answered (the first made the token), and the token.
struct Paged {
    method: MethodDescriptor,
    key: String,
    role: Role,
    requests: Vec<DynamicMessage>,
    token: String,
}

/// `message` asking for pages of `size`, after `token`.
fn paged(message: &DynamicMessage, size: i32, token: &str) -> DynamicMessage {
    let mut message = message.clone();
    message.set_field_by_name("page_size", Value::I32(size));
    message.set_field_by_name("page_token", Value::String(token.to_owned()));
    message
}

/// Every list of `tenant` that pages, read with the first key that may:
/// the empty filter, then each id the tenant holds in every id field,
/// until one request made a token and another filter was answered.
async fn tokens(world: &World, tenant: &Tenant) -> Vec<Paged> {
    let mut keys = vec![(Role::Manager, tenant.studio.key(Role::Manager).to_owned())];
    keys.push((Role::Operator, world.operator.clone()));
    let mut out = Vec::new();
    for method in world.unary_methods() {
        if method.input().get_field_by_name("page_token").is_none() {
            continue;
        }
        // The empty filter, then each id in each id field alone.
        let empty = DynamicMessage::new(method.input());
        let mut candidates = vec![empty.clone()];
        for id in &tenant.ids {
            for path in id_paths(&method.input(), 0) {
                candidates.push(with_id(&empty, &path, id));
            }
        }
        'keys: for (role, key) in &keys {
            let mut requests: Vec<DynamicMessage> = Vec::new();
            let mut token = String::new();
            for candidate in &candidates {
                let request = paged(candidate, 1, "");
                match world.call(&method, &request, key).await {
                    Err(status) if status.code() == Code::PermissionDenied => continue 'keys,
                    Err(_) => {}
                    Ok(reply) => {
                        if requests.contains(&request) {
                            continue;
                        }
                        let next = reply
                            .get_field_by_name("next_page_token")
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        if token.is_empty() && !next.is_empty() {
                            token = next;
                            requests.insert(0, request);
                        } else {
                            requests.push(request);
                        }
                    }
                }
                if !token.is_empty() && requests.len() >= 2 {
                    break;
                }
            }
            if !token.is_empty() {
                out.push(Paged {
                    method: method.clone(),
                    key: key.clone(),
                    role: *role,
                    requests,
                    token,
                });
            }
            break;
        }
    }
    out
}

/// Whether `answer` refuses the page token as INVALID_ARGUMENT.
fn refuses_token(answer: &Result<DynamicMessage, tonic::Status>) -> bool {
    answer.as_ref().is_err_and(|status| {
        status.code() == Code::InvalidArgument && status.message().contains("page_token")
    })
}

/// Page tokens are bound to the list, the tenant and the filter: real
/// tokens from every list that pages, used on every other list, by another
/// tenant's key of the same role and with another filter of the same list,
/// are refused with INVALID_ARGUMENT on `page_token`; on their own list, at
/// another page size, they read on. (Before the binding, a token was
/// `v1:{id}` for every id-ordered list and only a `k1:` token differed.)
async fn page_tokens_hold_only_where_they_came_from(db: TestDb) {
    let world = World::start(db).await;
    let mut alpha = world.studio("Alpha").await;
    let mut bravo = world.studio("Bravo").await;
    world.seconds(&mut alpha).await;
    world.seconds(&mut bravo).await;
    let lists = tokens(&world, &alpha).await;
    let named: Vec<&str> = lists.iter().map(|l| l.method.name()).collect();
    eprintln!("lists with a real token: {named:?}");
    // The lists a studio fills on its first day, among them every kind of
    // token (id-ordered and keyset) of every service.
    for needed in [
        "ListTenants",
        "ListLocations",
        "ListApiKeys",
        "ListTreatments",
        "ListResources",
        "ListBookings",
        "ListClients",
        "ListActivities",
        "ListTimeline",
        "ListAuditEvents",
        "ListDevices",
    ] {
        assert!(named.contains(&needed), "{needed} made no token: {named:?}");
    }
    let theirs = tokens(&world, &bravo).await;
    let mut failures = Failures::default();
    let mut calls = 0;
    for list in &lists {
        let own = paged(&list.requests[0], 2, &list.token);
        calls += 1;
        if let Err(status) = world.call(&list.method, &own, &list.key).await {
            failures.add(&list.method, "own token refused", cut(status.message()));
        }
        for other in lists.iter().filter(|o| o.method != list.method) {
            let request = paged(&other.requests[0], 1, &list.token);
            calls += 1;
            let answer = world.call(&other.method, &request, &other.key).await;
            if !refuses_token(&answer) {
                failures.add(
                    &other.method,
                    "another list's token not refused",
                    format!(
                        "{}'s token: {:?}",
                        list.method.name(),
                        answer.map(|r| shown(&r))
                    ),
                );
            }
        }
        for filter in &list.requests[1..] {
            calls += 1;
            let answer = world
                .call(&list.method, &paged(filter, 1, &list.token), &list.key)
                .await;
            if !refuses_token(&answer) {
                failures.add(
                    &list.method,
                    "token with a changed filter not refused",
                    format!("{:?}", answer.map(|r| shown(&r))),
                );
            }
        }
        if list.role != Role::Operator {
            let request = theirs.iter().find(|t| t.method == list.method).map_or_else(
                || DynamicMessage::new(list.method.input()),
                |t| t.requests[0].clone(),
            );
            calls += 1;
            let answer = world
                .call(
                    &list.method,
                    &paged(&request, 1, &list.token),
                    bravo.studio.key(list.role),
                )
                .await;
            if !refuses_token(&answer) {
                failures.add(
                    &list.method,
                    "another tenant's token not refused",
                    format!("{:?}", answer.map(|r| shown(&r))),
                );
            }
        }
    }
    failures.assert_none(calls);
}

recovery_kit::engine_tests!(
    every_rpc_under_every_role,
    cross_tenant_sweep,
    a_cursor_from_another_tenant_positions_nothing,
    page_tokens_hold_only_where_they_came_from,
);
