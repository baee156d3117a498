//! One test (or a few) per scheduling rule. 2026-06-01 is a Monday; the
//! location is in UTC unless the test is about time zones.

mod common;

use common::{at, daily, has_start, location, mins, single, starts, ts, window};
use jiff::civil::{Weekday, date};
use recovery_scheduling::{
    Assignment, Busy, Error, Interval, Location, Need, OpeningHours, Precool, Resource, Treatment,
    pick, reference, search,
};

fn utc(open: (i8, i8), close: (i8, i8)) -> Location {
    location("UTC", daily(at(open.0, open.1), at(close.0, close.1)))
}

fn chamber(id: &str) -> Resource {
    Resource {
        precool: Some(Precool::default()),
        ..Resource::new(id, "cryo_chamber")
    }
}

fn busy(id: &str, start: &str, end: &str) -> Busy {
    Busy::new(id, ts(start), ts(end))
}

const DAY: (&str, &str) = ("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z");

#[test]
fn intervals_are_half_open() {
    let loc = utc((10, 0), (11, 0));
    let resources = [Resource::new("b1", "boots")];
    let treatment = single("boots", 3);
    let taken = [busy("b1", "2026-06-01T10:03:00Z", "2026-06-01T10:06:00Z")];
    let slots = search(
        &loc,
        &resources,
        &treatment,
        &taken,
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert!(
        has_start(&slots, "2026-06-01T10:00:00Z"),
        "ends as the booking starts"
    );
    assert!(!has_start(&slots, "2026-06-01T10:03:00Z"));
    assert!(
        has_start(&slots, "2026-06-01T10:06:00Z"),
        "starts as the booking ends"
    );
    assert_eq!(slots.len(), 19);
}

#[test]
fn grid_starts_at_opening_and_sessions_end_by_closing() {
    let loc = utc((10, 0), (10, 10));
    let resources = [Resource::new("b1", "boots")];
    let slots = search(
        &loc,
        &resources,
        &single("boots", 3),
        &[],
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(
        starts(&slots),
        [
            "2026-06-01T10:00:00Z",
            "2026-06-01T10:03:00Z",
            "2026-06-01T10:06:00Z"
        ]
    );
    assert_eq!(slots[0].end, ts("2026-06-01T10:03:00Z"));
}

#[test]
fn window_selects_slot_starts() {
    let loc = utc((10, 0), (11, 0));
    let resources = [Resource::new("b1", "boots")];
    let w = window("2026-06-01T10:01:00Z", "2026-06-01T10:07:00Z");
    let slots = search(&loc, &resources, &single("boots", 3), &[], w, None).unwrap();
    assert_eq!(
        starts(&slots),
        ["2026-06-01T10:03:00Z", "2026-06-01T10:06:00Z"]
    );
}

#[test]
fn step_can_differ_from_duration() {
    let loc = utc((10, 0), (11, 0));
    let resources = [Resource::new("r1", "room")];
    let treatment = Treatment {
        step: Some(mins(15)),
        ..single("room", 30)
    };
    let slots = search(
        &loc,
        &resources,
        &treatment,
        &[],
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(
        starts(&slots),
        [
            "2026-06-01T10:00:00Z",
            "2026-06-01T10:15:00Z",
            "2026-06-01T10:30:00Z"
        ]
    );
}

#[test]
fn several_ranges_per_weekday_each_start_a_grid() {
    let mut loc = utc((6, 0), (6, 20));
    loc.weekly_hours
        .push(OpeningHours::new(Weekday::Monday, at(6, 25), at(6, 40)));
    let resources = [Resource::new("b1", "boots")];
    let slots = search(
        &loc,
        &resources,
        &single("boots", 7),
        &[],
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(
        starts(&slots),
        [
            "2026-06-01T06:00:00Z",
            "2026-06-01T06:07:00Z",
            "2026-06-01T06:25:00Z",
            "2026-06-01T06:32:00Z",
        ]
    );
}

#[test]
fn stretch_needs_a_room_and_a_therapist() {
    let loc = utc((10, 0), (12, 0));
    let resources = [
        Resource::new("room-1", "room"),
        Resource::new("t-1", "therapist"),
    ];
    let treatment = Treatment::new(
        mins(30),
        vec![Need::new("room", 1), Need::new("therapist", 1)],
    );
    let taken = [
        busy("room-1", "2026-06-01T10:00:00Z", "2026-06-01T10:30:00Z"),
        busy("t-1", "2026-06-01T10:30:00Z", "2026-06-01T11:00:00Z"),
    ];
    let slots = search(
        &loc,
        &resources,
        &treatment,
        &taken,
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(
        starts(&slots),
        ["2026-06-01T11:00:00Z", "2026-06-01T11:30:00Z"]
    );
    let kinds: Vec<_> = slots[0].free.iter().map(|f| (f.kind, f.count)).collect();
    assert_eq!(kinds, [("room", 1), ("therapist", 1)]);
    assert_eq!(slots[0].free[1].candidates, ["t-1"]);
}

#[test]
fn a_need_for_two_counts_free_resources() {
    let loc = utc((10, 0), (11, 0));
    let resources = [
        Resource::new("r1", "room"),
        Resource::new("r2", "room"),
        Resource::new("r3", "room"),
    ];
    let treatment = Treatment::new(mins(30), vec![Need::new("room", 2)]);
    let taken = [
        busy("r2", "2026-06-01T10:00:00Z", "2026-06-01T10:30:00Z"),
        busy("r1", "2026-06-01T10:30:00Z", "2026-06-01T11:00:00Z"),
        busy("r3", "2026-06-01T10:30:00Z", "2026-06-01T11:00:00Z"),
    ];
    let slots = search(
        &loc,
        &resources,
        &treatment,
        &taken,
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(starts(&slots), ["2026-06-01T10:00:00Z"]);
    assert_eq!(slots[0].free[0].candidates, ["r1", "r3"]);
}

#[test]
fn therapist_works_only_in_their_shift() {
    let loc = utc((10, 0), (18, 0));
    let therapist = Resource {
        shifts: Some(vec![OpeningHours::new(
            Weekday::Monday,
            at(14, 0),
            at(15, 30),
        )]),
        ..Resource::new("t-1", "therapist")
    };
    let resources = [Resource::new("room-1", "room"), therapist];
    let treatment = Treatment::new(
        mins(30),
        vec![Need::new("room", 1), Need::new("therapist", 1)],
    );
    let slots = search(
        &loc,
        &resources,
        &treatment,
        &[],
        window(DAY.0, "2026-06-03T00:00:00Z"),
        None,
    )
    .unwrap();
    assert_eq!(
        starts(&slots),
        [
            "2026-06-01T14:00:00Z",
            "2026-06-01T14:30:00Z",
            "2026-06-01T15:00:00Z"
        ],
        "no shift on Tuesday"
    );
}

#[test]
fn resource_turnover_keeps_a_gap_on_both_sides() {
    let loc = utc((9, 0), (11, 0));
    let resources = [Resource {
        turnover: mins(5),
        ..Resource::new("b1", "boots")
    }];
    let taken = [busy("b1", "2026-06-01T10:00:00Z", "2026-06-01T10:03:00Z")];
    let w = window("2026-06-01T09:50:00Z", "2026-06-01T10:10:00Z");
    let slots = search(&loc, &resources, &single("boots", 3), &taken, w, None).unwrap();
    assert_eq!(
        starts(&slots),
        ["2026-06-01T09:51:00Z", "2026-06-01T10:09:00Z"],
        "09:54 would end its turnover at 10:02; 10:06 starts before 10:03 + 5 min"
    );
}

#[test]
fn treatment_turnover_follows_the_new_session() {
    let loc = utc((9, 0), (11, 0));
    let resources = [Resource::new("b1", "boots")];
    let treatment = Treatment {
        turnover: mins(2),
        ..single("boots", 3)
    };
    let taken = [busy("b1", "2026-06-01T10:00:00Z", "2026-06-01T10:03:00Z")];
    let w = window("2026-06-01T09:50:00Z", "2026-06-01T10:10:00Z");
    let slots = search(&loc, &resources, &treatment, &taken, w, None).unwrap();
    assert_eq!(
        starts(&slots),
        [
            "2026-06-01T09:51:00Z",
            "2026-06-01T09:54:00Z",
            "2026-06-01T10:03:00Z",
            "2026-06-01T10:06:00Z",
            "2026-06-01T10:09:00Z",
        ]
    );
}

#[test]
fn turnover_may_run_past_closing() {
    let loc = utc((10, 0), (10, 6));
    let resources = [Resource {
        turnover: mins(10),
        ..Resource::new("b1", "boots")
    }];
    let slots = search(
        &loc,
        &resources,
        &single("boots", 3),
        &[],
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    // 10:03 ends at 10:06 with its turnover until 10:16.
    assert_eq!(
        starts(&slots),
        ["2026-06-01T10:00:00Z", "2026-06-01T10:03:00Z"]
    );
}

#[test]
fn blackout_blocks_its_resource() {
    let loc = utc((9, 0), (11, 0));
    let resources = [Resource {
        blackouts: vec![Interval::new(
            ts("2026-06-01T10:00:00Z"),
            ts("2026-06-01T10:30:00Z"),
        )],
        ..Resource::new("b1", "boots")
    }];
    let w = window("2026-06-01T09:57:00Z", "2026-06-01T10:31:00Z");
    let slots = search(&loc, &resources, &single("boots", 3), &[], w, None).unwrap();
    assert_eq!(
        starts(&slots),
        ["2026-06-01T09:57:00Z", "2026-06-01T10:30:00Z"]
    );
}

#[test]
fn closure_date_has_no_slots() {
    let mut loc = utc((10, 0), (10, 6));
    loc.closures.push(date(2026, 6, 1));
    let resources = [Resource::new("b1", "boots")];
    let w = window(DAY.0, "2026-06-03T00:00:00Z");
    let slots = search(&loc, &resources, &single("boots", 3), &[], w, None).unwrap();
    assert_eq!(
        starts(&slots),
        ["2026-06-02T10:00:00Z", "2026-06-02T10:03:00Z"]
    );
}

#[test]
fn precool_after_opening() {
    let loc = utc((6, 0), (22, 0));
    let resources = [chamber("c1")];
    let slots = search(
        &loc,
        &resources,
        &single("cryo_chamber", 3),
        &[],
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(
        slots[0].start,
        ts("2026-06-01T06:12:00Z"),
        "06:10 is off the 3-minute grid"
    );
    assert_eq!(slots.last().unwrap().start, ts("2026-06-01T21:57:00Z"));
    assert_eq!(slots.len(), 320 - 4);
}

#[test]
fn a_chamber_measured_cold_needs_no_precool_at_opening() {
    let loc = utc((6, 0), (22, 0));
    let cold = Resource {
        cold_until: Some(ts("2026-06-01T06:30:00Z")),
        ..chamber("c1")
    };
    for (resources, first) in [
        ([cold.clone()], "2026-06-01T06:00:00Z"),
        ([chamber("c1")], "2026-06-01T06:12:00Z"),
    ] {
        let slots = search(
            &loc,
            &resources,
            &single("cryo_chamber", 3),
            &[],
            window(DAY.0, DAY.1),
            None,
        )
        .unwrap();
        assert_eq!(slots[0].start, ts(first));
    }
}

#[test]
fn session_before_opening_does_not_warm_the_chamber() {
    let loc = utc((6, 0), (22, 0));
    let resources = [chamber("c1")];
    let taken = [busy("c1", "2026-06-01T05:40:00Z", "2026-06-01T05:43:00Z")];
    let slots = search(
        &loc,
        &resources,
        &single("cryo_chamber", 3),
        &taken,
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(slots[0].start, ts("2026-06-01T06:12:00Z"));
}

#[test]
fn back_to_back_needs_no_precool_but_an_idle_chamber_does() {
    // Maintenance until 10:10 leaves the chamber warm only if a session
    // follows it right away.
    let loc = utc((6, 0), (22, 0));
    let resources = [Resource {
        blackouts: vec![Interval::new(
            ts("2026-06-01T10:00:00Z"),
            ts("2026-06-01T10:10:00Z"),
        )],
        ..chamber("c1")
    }];
    let treatment = single("cryo_chamber", 3);
    let w = window("2026-06-01T10:00:00Z", "2026-06-01T10:40:00Z");

    let idle = search(&loc, &resources, &treatment, &[], w, None).unwrap();
    assert_eq!(
        idle[0].start,
        ts("2026-06-01T10:21:00Z"),
        "10:11-10:21 cool-down"
    );

    let session = [busy("c1", "2026-06-01T10:10:00Z", "2026-06-01T10:15:00Z")];
    let warm = search(&loc, &resources, &treatment, &session, w, None).unwrap();
    assert_eq!(warm[0].start, ts("2026-06-01T10:15:00Z"), "back to back");
    assert!(
        has_start(&warm, "2026-06-01T10:30:00Z"),
        "idle exactly 15 min is still warm"
    );
}

#[test]
fn precool_is_needed_after_more_than_the_idle_time() {
    let loc = utc((6, 0), (22, 0));
    let resources = [Resource {
        blackouts: vec![Interval::new(
            ts("2026-06-01T10:12:00Z"),
            ts("2026-06-01T10:15:00Z"),
        )],
        ..chamber("c1")
    }];
    let session = [busy("c1", "2026-06-01T10:00:00Z", "2026-06-01T10:03:00Z")];
    let w = window("2026-06-01T10:15:00Z", "2026-06-01T10:30:00Z");
    let slots = search(
        &loc,
        &resources,
        &single("cryo_chamber", 3),
        &session,
        w,
        None,
    )
    .unwrap();
    // 10:18 is idle exactly 15 minutes: warm. 10:21 and 10:24 are idle longer
    // and their cool-down (from 10:11, 10:14) hits the blackout.
    assert_eq!(
        starts(&slots),
        [
            "2026-06-01T10:15:00Z",
            "2026-06-01T10:18:00Z",
            "2026-06-01T10:27:00Z"
        ]
    );
}

#[test]
fn preference_filters_slots_and_is_picked() {
    let loc = utc((10, 0), (10, 6));
    let resources = [Resource::new("b1", "boots"), Resource::new("b2", "boots")];
    let treatment = single("boots", 3);
    let taken = [busy("b1", "2026-06-01T10:00:00Z", "2026-06-01T10:03:00Z")];
    let w = window(DAY.0, DAY.1);

    let any = search(&loc, &resources, &treatment, &taken, w, None).unwrap();
    assert_eq!(any.len(), 2);
    let b1 = search(&loc, &resources, &treatment, &taken, w, Some("b1")).unwrap();
    assert_eq!(starts(&b1), ["2026-06-01T10:03:00Z"]);

    let picked = pick(
        &loc,
        &resources,
        &treatment,
        &taken,
        ts("2026-06-01T10:03:00Z"),
        Some("b1"),
    )
    .unwrap();
    assert_eq!(
        picked,
        [Assignment {
            kind: "boots",
            resource_id: "b1"
        }]
    );
    let picked = pick(
        &loc,
        &resources,
        &treatment,
        &taken,
        ts("2026-06-01T10:03:00Z"),
        None,
    )
    .unwrap();
    assert_eq!(picked[0].resource_id, "b2", "b2 is less busy that day");

    for bad in ["nobody", ""] {
        assert_eq!(
            search(&loc, &resources, &treatment, &taken, w, Some(bad)),
            Err(Error::Preference)
        );
    }
}

#[test]
fn pick_takes_the_least_busy_then_the_smallest_id() {
    let loc = utc((10, 0), (12, 0));
    let resources = [
        Resource::new("r3", "room"),
        Resource::new("r2", "room"),
        Resource::new("r1", "room"),
        Resource::new("t1", "therapist"),
    ];
    let treatment = Treatment::new(
        mins(30),
        vec![Need::new("room", 2), Need::new("therapist", 1)],
    );
    let taken = [busy("r1", "2026-06-01T10:00:00Z", "2026-06-01T10:30:00Z")];
    let start = ts("2026-06-01T11:00:00Z");
    let picked = pick(&loc, &resources, &treatment, &taken, start, None).unwrap();
    let ids: Vec<_> = picked.iter().map(|a| (a.kind, a.resource_id)).collect();
    assert_eq!(ids, [("room", "r2"), ("room", "r3"), ("therapist", "t1")]);

    let taken_now = [busy("t1", "2026-06-01T11:00:00Z", "2026-06-01T11:30:00Z")];
    assert_eq!(
        pick(&loc, &resources, &treatment, &taken_now, start, None),
        Err(Error::SlotUnavailable)
    );
    let off_grid = ts("2026-06-01T11:10:00Z");
    assert_eq!(
        pick(&loc, &resources, &treatment, &[], off_grid, None),
        Err(Error::SlotUnavailable)
    );
}

#[test]
fn busy_for_unknown_resources_is_ignored() {
    let loc = utc((10, 0), (10, 6));
    let resources = [Resource::new("b1", "boots")];
    let taken = [busy(
        "elsewhere",
        "2026-06-01T10:00:00Z",
        "2026-06-01T10:06:00Z",
    )];
    let slots = search(
        &loc,
        &resources,
        &single("boots", 3),
        &taken,
        window(DAY.0, DAY.1),
        None,
    )
    .unwrap();
    assert_eq!(slots.len(), 2);
}

/// The field named by the error of a search that must fail.
fn field(
    loc: &Location,
    resources: &[Resource],
    t: &Treatment,
    busy: &[Busy],
    w: Interval,
) -> String {
    let error = search(loc, resources, t, busy, w, None).unwrap_err();
    error.field().unwrap()
}

fn boots() -> [Resource; 1] {
    [Resource::new("b1", "boots")]
}

#[test]
fn invalid_window_names_the_field() {
    let (loc, ok) = (utc((10, 0), (11, 0)), single("boots", 3));
    assert_eq!(
        field(&loc, &boots(), &ok, &[], window(DAY.1, DAY.0)),
        "window.end"
    );
    assert_eq!(
        field(&loc, &boots(), &ok, &[], window(DAY.0, DAY.0)),
        "window.end"
    );
    let long = window(DAY.0, "2026-06-15T00:00:01Z");
    assert_eq!(field(&loc, &boots(), &ok, &[], long), "window");
    let longest = window(DAY.0, "2026-06-15T00:00:00Z");
    assert!(search(&loc, &boots(), &ok, &[], longest, None).is_ok());
}

#[test]
fn invalid_treatment_names_the_field() {
    let (loc, ok, w) = (
        utc((10, 0), (11, 0)),
        single("boots", 3),
        window(DAY.0, DAY.1),
    );
    let cases = [
        (
            Treatment {
                duration: mins(0),
                ..ok.clone()
            },
            "treatment.duration",
        ),
        (
            Treatment {
                step: Some(mins(0)),
                ..ok.clone()
            },
            "treatment.step",
        ),
        (
            Treatment {
                turnover: mins(-1),
                ..ok.clone()
            },
            "treatment.turnover",
        ),
        (
            Treatment {
                needs: vec![],
                ..ok.clone()
            },
            "treatment.needs",
        ),
        (
            Treatment {
                needs: vec![Need::new("boots", 1), Need::new("room", 0)],
                ..ok.clone()
            },
            "treatment.needs[1].count",
        ),
        (
            Treatment {
                needs: vec![Need::new("boots", 1), Need::new("boots", 1)],
                ..ok.clone()
            },
            "treatment.needs[1].kind",
        ),
    ];
    for (treatment, expected) in cases {
        assert_eq!(field(&loc, &boots(), &treatment, &[], w), expected);
    }
}

#[test]
fn invalid_location_resources_and_busy_name_the_field() {
    let (loc, ok, w) = (
        utc((10, 0), (11, 0)),
        single("boots", 3),
        window(DAY.0, DAY.1),
    );
    let mut overlapping = loc.clone();
    overlapping
        .weekly_hours
        .push(OpeningHours::new(Weekday::Monday, at(10, 30), at(12, 0)));
    assert_eq!(
        field(&overlapping, &boots(), &ok, &[], w),
        "location.weekly_hours[7]"
    );
    let backwards = location(
        "UTC",
        vec![OpeningHours::new(Weekday::Monday, at(12, 0), at(10, 0))],
    );
    assert_eq!(
        field(&backwards, &boots(), &ok, &[], w),
        "location.weekly_hours[0]"
    );

    let b1 = || Resource::new("b1", "boots");
    let cases = [
        (vec![b1(), b1()], "resources[1].id"),
        (vec![Resource::new("b1", "")], "resources[0].kind"),
        (
            vec![Resource {
                turnover: mins(-1),
                ..b1()
            }],
            "resources[0].turnover",
        ),
        (
            vec![Resource {
                precool: Some(Precool {
                    after: mins(-1),
                    duration: mins(1),
                }),
                ..b1()
            }],
            "resources[0].precool",
        ),
        (
            vec![Resource {
                shifts: Some(vec![OpeningHours::new(
                    Weekday::Monday,
                    at(12, 0),
                    at(12, 0),
                )]),
                ..b1()
            }],
            "resources[0].shifts[0]",
        ),
        (
            vec![Resource {
                blackouts: vec![Interval::new(ts(DAY.1), ts(DAY.0))],
                ..b1()
            }],
            "resources[0].blackouts[0].end",
        ),
    ];
    for (resources, expected) in cases {
        assert_eq!(field(&loc, &resources, &ok, &[], w), expected);
    }
    let backwards_busy = [busy("b1", DAY.1, DAY.0)];
    assert_eq!(
        field(&loc, &boots(), &ok, &backwards_busy, w),
        "busy[0].interval.end"
    );
}

#[test]
fn extreme_input_does_not_panic() {
    let loc = location("America/New_York", daily(at(0, 0), at(0, 0)));
    let resources = [Resource {
        turnover: jiff::SignedDuration::MAX,
        precool: Some(Precool {
            after: jiff::SignedDuration::MAX,
            duration: jiff::SignedDuration::MAX,
        }),
        ..Resource::new("b1", "boots")
    }];
    let treatment = Treatment {
        turnover: jiff::SignedDuration::MAX,
        ..Treatment::new(
            jiff::SignedDuration::MAX,
            vec![Need::new("boots", u32::MAX)],
        )
    };
    for (start, end) in [
        (
            jiff::Timestamp::MIN,
            jiff::Timestamp::MIN.checked_add(mins(600)).unwrap(),
        ),
        (
            jiff::Timestamp::MAX.checked_sub(mins(600)).unwrap(),
            jiff::Timestamp::MAX,
        ),
    ] {
        let w = Interval::new(start, end);
        for t in [&treatment, &single("boots", 1)] {
            let fast = search(&loc, &resources, t, &[], w, None);
            assert_eq!(fast, reference::search(&loc, &resources, t, &[], w, None));
        }
        let _ = pick(&loc, &resources, &treatment, &[], start, None);
        let _ = pick(&loc, &resources, &treatment, &[], end, None);
    }
}
