//! Slot suggestions ("she ran this morning: when should she come in?") and
//! plans booked all at once, through real gRPC with the real protocols.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use recovery_kit::testing::TestDb;
use recovery_kit::testing::answers::{code, fact};
use recovery_kit::time::from_proto;
use recovery_proto::booking::v1 as pb;
use recovery_proto::protocols::v1 as protocols_pb;
use tonic::Code;

use crate::common::log_activity;
use crate::support::{Studio, TEN_AM, at, mins, reason, start, t};

const FIT_BEST: i32 = pb::SuggestionFit::Best as i32;
const FIT_ALTERNATIVE: i32 = pb::SuggestionFit::Alternative as i32;

impl Studio {
    /// Logs an activity for `client_id`; its id.
    async fn log(
        &self,
        client_id: &str,
        kind: protocols_pb::ActivityKind,
        start: &str,
        end: &str,
    ) -> String {
        log_activity(
            &mut self.protocols_client().await,
            client_id,
            kind,
            (start, end),
        )
        .await
        .unwrap()
    }

    async fn run(&self, client_id: &str, start: &str, end: &str) -> String {
        self.log(client_id, protocols_pb::ActivityKind::Training, start, end)
            .await
    }

    /// Cryo suggestions for `client_id` at the studio's location after
    /// `activity_id`, in `[from, to)`.
    async fn suggest(
        &self,
        request: pb::SuggestSlotsRequest,
    ) -> Result<pb::SuggestSlotsResponse, tonic::Status> {
        self.client(&self.desk)
            .await
            .suggest_slots(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Cryo suggestions for `client_id` after `activity_id`, in `[from,
    /// to)`.
    fn cryo_between(
        &self,
        client_id: &str,
        activity_id: &str,
        from: &str,
        to: &str,
    ) -> pb::SuggestSlotsRequest {
        pb::SuggestSlotsRequest {
            start_time: t(from),
            end_time: t(to),
            ..self.cryo_after(client_id, activity_id)
        }
    }

    fn cryo_after(&self, client_id: &str, activity_id: &str) -> pb::SuggestSlotsRequest {
        pb::SuggestSlotsRequest {
            client_id: client_id.into(),
            modality: pb::Modality::WholeBodyCryotherapy as i32,
            activity_id: activity_id.into(),
            location_id: self.location_id.clone(),
            max_suggestions: 50,
            ..Default::default()
        }
    }

    /// A compression station and a 30-minute compression treatment; its id.
    async fn compression(&self) -> String {
        self.add_resource(
            &self.location_id,
            "Boots",
            pb::ResourceKind::CompressionStation,
        )
        .await;
        self.add_treatment(pb::Treatment {
            display_name: "Compression boots".into(),
            modality: pb::Modality::Compression as i32,
            duration: mins(30),
            needs: vec![pb::ResourceNeed {
                kind: pb::ResourceKind::CompressionStation as i32,
                count: 1,
            }],
            ..Default::default()
        })
        .await
    }

    /// A second location of the tenant (same hours, same time zone) with
    /// one chamber; its id.
    async fn second_location(&self) -> String {
        self.location("Frost uptown", ("06:00", "22:00"), "Uptown chamber")
            .await
    }

    async fn blackout(&self, resource_id: &str, from: &str, to: &str) {
        self.client(&self.manager)
            .await
            .add_blackout(pb::AddBlackoutRequest {
                resource_id: resource_id.into(),
                blackout: Some(pb::Blackout {
                    start_time: t(from),
                    end_time: t(to),
                    reason: "maintenance".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
}

fn start_of(s: &pb::Suggestion) -> Timestamp {
    from_proto(s.start_time.as_ref().unwrap()).unwrap()
}

fn reasons(s: &pb::Suggestion) -> Vec<&str> {
    s.warnings.iter().map(|w| w.reason.as_str()).collect()
}

/// Window edges: the activity's end and exactly five hours after are
/// inside (best, no timing warning), a slot later is an alternative marked
/// `OUTSIDE_CRYO_WINDOW`; the response names the window; a first-timer gets
/// the progression's 90 s; without an end the search stops at the
/// location's local midnight, not UTC's.
async fn the_benefit_window_is_inclusive_and_local_days_bound_the_search(db: TestDb) {
    let studio = start(db).await;
    let ana = studio.person("ana").await;
    // Wednesday: the run ends 08:00 in New York (13:00Z); now is 13:00Z.
    let run = studio
        .run(&ana, "2026-12-02T10:00:00Z", "2026-12-02T13:00:00Z")
        .await;
    studio.clock.set(at("2026-12-02T13:00:00Z"));
    let first = studio
        .suggest(studio.cryo_between(&ana, &run, "2026-12-02T13:00:00Z", "2026-12-02T13:03:00Z"))
        .await
        .unwrap();
    assert_eq!(first.window_start_time, t("2026-12-02T13:00:00Z"));
    assert_eq!(first.window_end_time, t("2026-12-02T18:00:00Z"));
    let at_end = &first.suggestions[0];
    assert_eq!(start_of(at_end), at("2026-12-02T13:00:00Z"));
    assert_eq!(at_end.fit, FIT_BEST);
    assert_eq!(at_end.location_id, studio.location_id);
    assert_eq!(at_end.treatment_id, studio.cryo_id);
    assert_eq!(
        at_end.resources,
        vec![pb::KindResources {
            kind: pb::ResourceKind::CryoChamber as i32,
            resource_ids: vec![studio.chamber_id.clone()],
            count: 1,
        }]
    );
    // A first-timer: 90 s recommended, the 3-minute treatment is above it.
    assert_eq!(at_end.recommended_duration.unwrap().seconds, 90);
    assert_eq!(reasons(at_end), ["DURATION_ABOVE_PROGRESSION"]);

    let edge = studio
        .suggest(studio.cryo_between(&ana, &run, "2026-12-02T17:54:00Z", "2026-12-02T18:06:00Z"))
        .await
        .unwrap()
        .suggestions;
    let got: Vec<(Timestamp, i32)> = edge.iter().map(|s| (start_of(s), s.fit)).collect();
    assert_eq!(
        got,
        [
            (at("2026-12-02T17:54:00Z"), FIT_BEST),
            (at("2026-12-02T17:57:00Z"), FIT_BEST),
            (at("2026-12-02T18:00:00Z"), FIT_BEST),
            (at("2026-12-02T18:03:00Z"), FIT_ALTERNATIVE),
        ]
    );
    assert!(reasons(&edge[3]).contains(&"OUTSIDE_CRYO_WINDOW"));
    assert!(!reasons(&edge[2]).contains(&"OUTSIDE_CRYO_WINDOW"));

    // From 21:30 in New York with no end: 21:30 to 21:57 local, which is
    // after UTC's midnight; nothing of Thursday.
    let late = studio
        .suggest(pb::SuggestSlotsRequest {
            start_time: t("2026-12-03T02:30:00Z"),
            ..studio.cryo_after(&ana, &run)
        })
        .await
        .unwrap()
        .suggestions;
    let starts: Vec<Timestamp> = late.iter().map(start_of).collect();
    assert_eq!(starts.first(), Some(&at("2026-12-03T02:30:00Z")));
    assert_eq!(starts.last(), Some(&at("2026-12-03T02:57:00Z")));
    assert_eq!(starts.len(), 10);
    assert!(late.iter().all(|s| s.fit == FIT_ALTERNATIVE));
}

/// On the day clocks spring forward (14 March 2027 in New York) the window
/// is five real hours: a run ending 01:30 EST (06:30Z) keeps cryo useful
/// until 07:30 EDT (11:30Z), not 06:30 on the wall clock.
async fn the_window_is_five_real_hours_on_a_dst_day(db: TestDb) {
    let studio = start(db).await;
    let ana = studio.person("ana").await;
    let run = studio
        .run(&ana, "2027-03-14T05:00:00Z", "2027-03-14T06:30:00Z")
        .await;
    studio.clock.set(at("2027-03-14T09:00:00Z"));
    let answer = studio
        .suggest(studio.cryo_between(&ana, &run, "2027-03-14T11:24:00Z", "2027-03-14T11:36:00Z"))
        .await
        .unwrap();
    assert_eq!(answer.window_end_time, t("2027-03-14T11:30:00Z"));
    let got: Vec<(Timestamp, i32)> = answer
        .suggestions
        .iter()
        .map(|s| (start_of(s), s.fit))
        .collect();
    assert_eq!(
        got,
        [
            (at("2027-03-14T11:24:00Z"), FIT_BEST),
            (at("2027-03-14T11:27:00Z"), FIT_BEST),
            (at("2027-03-14T11:30:00Z"), FIT_BEST),
            (at("2027-03-14T11:33:00Z"), FIT_ALTERNATIVE),
        ]
    );
    // The earliest slot of the day is 06:12 EDT (10:12Z): the first
    // suggestion after "the last activity".
    let first = studio
        .suggest(pb::SuggestSlotsRequest {
            activity_id: String::new(),
            after_last_activity: true,
            max_suggestions: 1,
            ..studio.cryo_after(&ana, "")
        })
        .await
        .unwrap();
    assert_eq!(start_of(&first.suggestions[0]), at("2027-03-14T10:12:00Z"));
    assert_eq!(first.suggestions[0].fit, FIT_BEST);
}

/// With the window full (the only chamber blacked out for it), the answer
/// is the nearest alternatives, each marked with the warning it carries.
async fn a_full_window_falls_back_to_marked_alternatives(db: TestDb) {
    let studio = start(db).await;
    let ana = studio.person("ana").await;
    let run = studio
        .run(&ana, "2026-12-02T10:00:00Z", "2026-12-02T13:00:00Z")
        .await;
    studio.clock.set(at("2026-12-02T13:00:00Z"));
    studio
        .blackout(
            &studio.chamber_id,
            "2026-12-02T13:00:00Z",
            "2026-12-02T18:03:00Z",
        )
        .await;
    let answer = studio
        .suggest(pb::SuggestSlotsRequest {
            max_suggestions: 5,
            ..studio.cryo_after(&ana, &run)
        })
        .await
        .unwrap()
        .suggestions;
    assert_eq!(answer.len(), 5);
    let mut previous = at("2026-12-02T18:00:00Z");
    for s in &answer {
        assert_eq!(s.fit, FIT_ALTERNATIVE);
        assert!(reasons(s).contains(&"OUTSIDE_CRYO_WINDOW"), "{s:?}");
        assert!(start_of(s) > previous, "nearest first: {answer:?}");
        previous = start_of(s);
    }
}

/// Each refusal of the rules is the answer instead of slots, with the
/// rule's reason, and nothing is written.
async fn refusals_answer_with_the_reason_and_write_nothing(db: TestDb) {
    let studio = start(db).await;
    let ask = |client_id: String| {
        let studio = &studio;
        async move {
            studio
                .suggest(studio.cryo_between(
                    &client_id,
                    "",
                    "2026-12-02T14:00:00Z",
                    "2026-12-02T16:00:00Z",
                ))
                .await
                .unwrap_err()
        }
    };
    // Contraindicated: a pacemaker.
    let paced = studio.new_client("paced").await;
    studio
        .screen(&paced, &[protocols_pb::Condition::Pacemaker])
        .await;
    studio.sign_waiver(&paced).await;
    let refusal = ask(paced.clone()).await;
    assert_eq!(refusal.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refusal), "CONTRAINDICATED");
    // No waiver.
    let unsigned = studio.new_client("unsigned").await;
    studio.screen(&unsigned, &[]).await;
    let refusal = ask(unsigned.clone()).await;
    assert_eq!(refusal.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refusal), "WAIVER_REQUIRED");
    // The daily limit: cryo booked at 10:00 that day.
    studio.book("ana", TEN_AM).await.unwrap();
    let ana = studio.person("ana").await;
    let refusal = ask(ana.clone()).await;
    assert_eq!(refusal.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refusal), "DAILY_LIMIT_REACHED");
    // The next day is fine again.
    let tomorrow = studio
        .suggest(studio.cryo_between(&ana, "", "2026-12-03T14:00:00Z", "2026-12-03T15:00:00Z"))
        .await
        .unwrap();
    assert!(!tomorrow.suggestions.is_empty());
    // Nothing written: no booking for the refused, one for ana.
    assert!(studio.bookings_of_client(&paced).await.is_empty());
    assert!(studio.bookings_of_client(&unsigned).await.is_empty());
    assert_eq!(studio.bookings_of_client(&ana).await.len(), 1);
    assert_eq!(studio.rows("bookings").await, 1);
    // An unknown client is NOT_FOUND; bad input names its fields.
    let unknown = ask(recovery_kit::ids::new_id()).await;
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(fact(&unknown, "field").as_deref(), Some("client_id"));
    // An erased client is refused as erased, for suggestions and plans.
    let gone = studio.new_client("gone").await;
    studio
        .protocols_client()
        .await
        .delete_client(protocols_pb::DeleteClientRequest { id: gone.clone() })
        .await
        .unwrap();
    let erased = ask(gone.clone()).await;
    assert_eq!(reason(&erased), "CLIENT_ERASED");
    assert_eq!(fact(&erased, "client_id"), Some(gone.clone()));
    let plan = studio
        .client(&studio.desk)
        .await
        .book_plan(pb::BookPlanRequest {
            client_id: gone.clone(),
            sessions: vec![pb::PlannedSession {
                location_id: studio.location_id.clone(),
                treatment_id: studio.cryo_id.clone(),
                start_time: t(TEN_AM),
                ..Default::default()
            }],
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&plan), "CLIENT_ERASED");
    assert_eq!(fact(&plan, "client_id"), Some(gone));
    let bad = studio
        .suggest(pb::SuggestSlotsRequest {
            client_id: String::new(),
            modality: pb::Modality::WholeBodyCryotherapy as i32,
            treatment_id: studio.cryo_id.clone(),
            start_time: t("2026-12-02T14:00:00Z"),
            end_time: t("2026-12-10T14:00:00Z"),
            max_suggestions: 51,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        crate::support::fields(&bad),
        ["client_id", "treatment_id", "end_time", "max_suggestions"]
    );
}

/// A race tomorrow at 08:00: compression this evening from 18:00 on is
/// advised against, so the suggestions put the afternoon first and mark
/// the evening's slots.
async fn a_race_next_morning_keeps_compression_out_of_the_evening(db: TestDb) {
    let studio = start(db).await;
    let boots = studio.compression().await;
    let ana = studio.person("ana").await;
    studio
        .log(
            &ana,
            protocols_pb::ActivityKind::Race,
            "2026-12-03T13:00:00Z",
            "2026-12-03T17:00:00Z",
        )
        .await;
    studio.clock.set(at("2026-12-02T20:00:00Z"));
    // 15:00 to 21:00 in New York.
    let answer = studio
        .suggest(pb::SuggestSlotsRequest {
            client_id: ana.clone(),
            treatment_id: boots.clone(),
            location_id: studio.location_id.clone(),
            start_time: t("2026-12-02T20:00:00Z"),
            end_time: t("2026-12-03T02:00:00Z"),
            max_suggestions: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .suggestions;
    let best: Vec<&pb::Suggestion> = answer.iter().filter(|s| s.fit == FIT_BEST).collect();
    let evening: Vec<&pb::Suggestion> =
        answer.iter().filter(|s| s.fit == FIT_ALTERNATIVE).collect();
    // 15:00, 15:30, ... 17:30: the sessions that end by 18:00.
    assert_eq!(best.len(), 6, "{answer:?}");
    assert!(
        best.iter()
            .all(|s| start_of(s) <= at("2026-12-02T22:30:00Z") && s.warnings.is_empty())
    );
    assert!(!evening.is_empty());
    assert!(evening.iter().all(|s| {
        start_of(s) > at("2026-12-02T22:30:00Z") && reasons(s) == ["COMPRESSION_BEFORE_RACE"]
    }));
    assert!(
        answer
            .iter()
            .position(|s| s.fit == FIT_ALTERNATIVE)
            .unwrap()
            == best.len(),
        "every best slot comes before the evening's"
    );
}

/// Without a location, every location of the tenant is searched; the one
/// with room inside the window ranks first, ties at one start are both
/// offered.
async fn every_location_is_ranked_together(db: TestDb) {
    let studio = start(db).await;
    let uptown = studio.second_location().await;
    let ana = studio.person("ana").await;
    let run = studio
        .run(&ana, "2026-12-02T10:00:00Z", "2026-12-02T13:00:00Z")
        .await;
    studio.clock.set(at("2026-12-02T13:00:00Z"));
    let everywhere = |max: i32, start: &str, end: &str| pb::SuggestSlotsRequest {
        location_id: String::new(),
        max_suggestions: max,
        ..studio.cryo_between(&ana, &run, start, end)
    };
    let both = studio
        .suggest(everywhere(
            2,
            "2026-12-02T13:00:00Z",
            "2026-12-02T13:03:00Z",
        ))
        .await
        .unwrap()
        .suggestions;
    let mut places: Vec<&str> = both.iter().map(|s| s.location_id.as_str()).collect();
    places.sort_unstable();
    let mut expected = vec![studio.location_id.as_str(), uptown.as_str()];
    expected.sort_unstable();
    assert_eq!(places, expected);
    // Downtown's chamber is out for the window: uptown's window comes
    // first, downtown only as an alternative after it.
    studio
        .blackout(
            &studio.chamber_id,
            "2026-12-02T12:00:00Z",
            "2026-12-02T18:03:00Z",
        )
        .await;
    let ranked = studio
        .suggest(everywhere(
            50,
            "2026-12-02T17:30:00Z",
            "2026-12-02T18:30:00Z",
        ))
        .await
        .unwrap()
        .suggestions;
    let first_alternative = ranked
        .iter()
        .position(|s| s.fit == FIT_ALTERNATIVE)
        .unwrap();
    // Uptown's 17:30 to 18:00 (eleven slots), then both from 18:03.
    assert_eq!(first_alternative, 11);
    assert!(
        ranked[..first_alternative]
            .iter()
            .all(|s| s.location_id == uptown)
    );
    assert!(
        ranked[first_alternative..]
            .iter()
            .any(|s| s.location_id == studio.location_id)
    );
}

/// A plan of two sessions (cryo at 10:00 on the only chamber, compression
/// at 11:00) while eight desks race other clients for the 10:00 cryo: the
/// slot goes to exactly one caller; when the plan loses, neither of its
/// sessions is booked. The slowest call stays under 10 s. A replay of the
/// plan's request id answers the same bookings.
async fn a_plan_is_booked_whole_or_not_at_all_under_a_race(db: TestDb) {
    let studio = start(db).await;
    let boots = studio.compression().await;
    let planner = studio.person("planner").await;
    let plan = pb::BookPlanRequest {
        client_id: planner.clone(),
        sessions: vec![
            pb::PlannedSession {
                location_id: studio.location_id.clone(),
                treatment_id: studio.cryo_id.clone(),
                start_time: t(TEN_AM),
                ..Default::default()
            },
            pb::PlannedSession {
                location_id: studio.location_id.clone(),
                treatment_id: boots.clone(),
                start_time: t("2026-12-02T16:00:00Z"),
                ..Default::default()
            },
        ],
        request_id: "plan-1".into(),
    };
    let mut racers = Vec::new();
    for i in 0..8 {
        racers.push(studio.booking(&format!("racer{i}"), TEN_AM).await);
    }
    let started = Instant::now();
    let plan_call = {
        let plan = plan.clone();
        let client = studio.client(&studio.desk).await;
        tokio::spawn(async move {
            let begun = Instant::now();
            let answer = client.clone().book_plan(plan).await;
            (answer.map(tonic::Response::into_inner), begun.elapsed())
        })
    };
    let mut calls = Vec::new();
    for request in racers {
        let mut client = studio.client(&studio.desk).await;
        calls.push(tokio::spawn(async move {
            let begun = Instant::now();
            let answer = client.create_booking(request).await;
            (answer.is_ok(), begun.elapsed())
        }));
    }
    let (plan_answer, plan_took) = plan_call.await.unwrap();
    let mut slowest = plan_took;
    let mut racers_won = 0;
    for call in calls {
        let (won, took) = call.await.unwrap();
        racers_won += usize::from(won);
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_secs(10),
        "slowest call {slowest:?} (all took {:?})",
        started.elapsed()
    );
    let of_plan = studio.bookings_of_client(&planner).await;
    match plan_answer {
        Ok(answer) => {
            assert_eq!(racers_won, 0);
            assert_eq!(answer.bookings.len(), 2);
            assert_eq!(answer.bookings[0].start_time, t(TEN_AM));
            assert_eq!(answer.bookings[1].treatment_id, boots);
            assert_eq!(of_plan.len(), 2);
            // A replay answers the same bookings and books nothing more.
            let again = studio
                .client(&studio.desk)
                .await
                .book_plan(plan.clone())
                .await
                .unwrap()
                .into_inner();
            assert_eq!(again, answer);
        }
        Err(status) => {
            assert_eq!(racers_won, 1);
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert_eq!(reason(&status), "SLOT_UNAVAILABLE");
            assert!(of_plan.is_empty(), "nothing of a lost plan: {of_plan:?}");
        }
    }
    assert_eq!(studio.rows("bookings").await, 2 - i64::from(racers_won > 0));
    // Deterministically: a plan one of whose slots is taken books nothing,
    // and its other slot stays free for anyone.
    let late = pb::BookPlanRequest {
        client_id: studio.person("late").await,
        sessions: vec![
            pb::PlannedSession {
                location_id: studio.location_id.clone(),
                treatment_id: boots.clone(),
                start_time: t("2026-12-02T17:00:00Z"),
                ..Default::default()
            },
            pb::PlannedSession {
                location_id: studio.location_id.clone(),
                treatment_id: studio.cryo_id.clone(),
                start_time: t(TEN_AM),
                ..Default::default()
            },
        ],
        request_id: String::new(),
    };
    let before = studio.rows("bookings").await;
    let lost = studio
        .client(&studio.desk)
        .await
        .book_plan(late)
        .await
        .unwrap_err();
    assert_eq!(reason(&lost), "SLOT_UNAVAILABLE");
    // The refusal names the session that lost: the second.
    assert_eq!(fact(&lost, "session").as_deref(), Some("1"));
    assert_eq!(studio.rows("bookings").await, before);
    assert!(studio.bookings_of("late").await.is_empty());
    let free = studio
        .client(&studio.desk)
        .await
        .create_booking(pb::CreateBookingRequest {
            location_id: studio.location_id.clone(),
            treatment_id: boots,
            client_id: studio.person("other").await,
            start_time: t("2026-12-02T17:00:00Z"),
            ..Default::default()
        })
        .await;
    assert!(free.is_ok(), "the lost plan's other slot is free: {free:?}");
}

/// A plan the rules refuse (two cryo sessions on one day) writes nothing.
async fn a_refused_plan_writes_nothing(db: TestDb) {
    let studio = start(db).await;
    let ana = studio.person("ana").await;
    let session = |start: &str| pb::PlannedSession {
        location_id: studio.location_id.clone(),
        treatment_id: studio.cryo_id.clone(),
        start_time: t(start),
        ..Default::default()
    };
    let refused = studio
        .client(&studio.desk)
        .await
        .book_plan(pb::BookPlanRequest {
            client_id: ana.clone(),
            sessions: vec![session(TEN_AM), session("2026-12-02T19:00:00Z")],
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "DAILY_LIMIT_REACHED");
    assert!(fact(&refused, "session").is_some(), "{refused:?}");
    assert_eq!(studio.rows("bookings").await, 0);
    let empty = studio
        .client(&studio.desk)
        .await
        .book_plan(pb::BookPlanRequest {
            client_id: ana,
            sessions: Vec::new(),
            request_id: String::new(),
        })
        .await;
    assert_eq!(code(empty), Code::InvalidArgument);
}

/// A protocol step "cryo within 5 h of the run": the recommendation
/// carries open slots inside its window, booked with one `BookPlan`.
async fn recommendations_carry_slots_and_book_as_a_plan(db: TestDb) {
    let studio = start(db).await;
    let ana = studio.person("ana").await;
    let run = studio
        .run(&ana, "2026-12-02T10:00:00Z", "2026-12-02T13:00:00Z")
        .await;
    studio.clock.set(at("2026-12-02T13:00:00Z"));
    let mut protocols = studio.protocols_client().await;
    let template = protocols
        .create_protocol_template(protocols_pb::CreateProtocolTemplateRequest {
            template: Some(protocols_pb::ProtocolTemplate {
                display_name: "Long run".into(),
                steps: vec![protocols_pb::ProtocolStep {
                    title: "Cryo after the run".into(),
                    modality: protocols_pb::Modality::WholeBodyCryotherapy as i32,
                    anchor_point: protocols_pb::AnchorPoint::End as i32,
                    timing: Some(protocols_pb::protocol_step::Timing::Window(
                        protocols_pb::OffsetWindow {
                            start_offset: mins(0),
                            end_offset: mins(300),
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .template
        .unwrap();
    protocols
        .assign_protocol(protocols_pb::AssignProtocolRequest {
            assignment: Some(protocols_pb::ProtocolAssignment {
                client_id: ana.clone(),
                template_id: template.id,
                anchor_activity_id: run,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let recommendations = protocols
        .get_recommendations(protocols_pb::GetRecommendationsRequest {
            client_id: ana.clone(),
            location_id: studio.location_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    assert_eq!(recommendations.len(), 1);
    let slots = &recommendations[0].suggested_slots;
    assert_eq!(slots.len(), 3);
    assert_eq!(slots[0].start_time, t("2026-12-02T13:00:00Z"));
    assert_eq!(slots[0].treatment_id, studio.cryo_id);
    assert_eq!(slots[0].recommended_duration.unwrap().seconds, 90);
    let booked = studio
        .client(&studio.desk)
        .await
        .book_plan(pb::BookPlanRequest {
            client_id: ana.clone(),
            sessions: vec![pb::PlannedSession {
                location_id: slots[0].location_id.clone(),
                treatment_id: slots[0].treatment_id.clone(),
                start_time: slots[0].start_time,
                ..Default::default()
            }],
            request_id: "ana-plan".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(booked.bookings.len(), 1);
    assert_eq!(booked.bookings[0].start_time, t("2026-12-02T13:00:00Z"));
    assert_eq!(booked.bookings[0].recommended_duration.unwrap().seconds, 90);
}

recovery_kit::engine_tests!(
    the_benefit_window_is_inclusive_and_local_days_bound_the_search,
    the_window_is_five_real_hours_on_a_dst_day,
    a_full_window_falls_back_to_marked_alternatives,
    refusals_answer_with_the_reason_and_write_nothing,
    a_race_next_morning_keeps_compression_out_of_the_evening,
    every_location_is_ranked_together,
    a_plan_is_booked_whole_or_not_at_all_under_a_race,
    a_refused_plan_writes_nothing,
    recommendations_carry_slots_and_book_as_a_plan,
);
