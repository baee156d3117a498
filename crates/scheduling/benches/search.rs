//! One day, 06:00-22:00, of 3-minute cryo slots on 4 chambers with 1,000
//! existing bookings: the sweep against the reference scan, same inputs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use recovery_scheduling::{
    Busy, Interval, Location, Need, OpeningHours, Precool, Resource, Treatment, reference, search,
};

const CHAMBERS: usize = 4;
const BOOKINGS_PER_CHAMBER: usize = 250;
const GRID: usize = 320;

fn setup() -> (Location, Vec<Resource>, Treatment, Vec<Busy>, Interval) {
    let week = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    let location = Location {
        tz: TimeZone::get("Europe/Berlin").expect("bundled zone"),
        weekly_hours: week
            .into_iter()
            .map(|d| OpeningHours::new(d, Time::constant(6, 0, 0, 0), Time::constant(22, 0, 0, 0)))
            .collect(),
        closures: Vec::new(),
    };
    let resources: Vec<Resource> = (0..CHAMBERS)
        .map(|i| Resource {
            precool: Some(Precool::default()),
            ..Resource::new(format!("chamber-{i}"), "cryo_chamber")
        })
        .collect();
    let treatment = Treatment::new(
        SignedDuration::from_mins(3),
        vec![Need::new("cryo_chamber", 1)],
    );

    // 06:00 in Berlin on 2026-06-02 (CEST); bookings on 250 of the 320 grid
    // places of each chamber, shuffled by a fixed LCG, listed interleaved.
    let open: Timestamp = "2026-06-02T04:00:00Z".parse().expect("instant");
    let mut state: u64 = 0x5eed;
    let mut places: Vec<Vec<usize>> = (0..CHAMBERS)
        .map(|_| {
            let mut p: Vec<usize> = (0..GRID).collect();
            for i in (1..p.len()).rev() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let j = usize::try_from(state >> 33).expect("fits") % (i + 1);
                p.swap(i, j);
            }
            p.truncate(BOOKINGS_PER_CHAMBER);
            p
        })
        .collect();
    let mut busy = Vec::with_capacity(CHAMBERS * BOOKINGS_PER_CHAMBER);
    for k in 0..BOOKINGS_PER_CHAMBER {
        for (chamber, p) in places.iter_mut().enumerate() {
            let minute = i64::try_from(p[k] * 3).expect("fits");
            let start = open + SignedDuration::from_mins(minute);
            busy.push(Busy::new(
                format!("chamber-{chamber}"),
                start,
                start + SignedDuration::from_mins(3),
            ));
        }
    }
    let window = Interval::new(
        "2026-06-01T22:00:00Z".parse().expect("instant"),
        "2026-06-02T22:00:00Z".parse().expect("instant"),
    );
    (location, resources, treatment, busy, window)
}

fn bench(c: &mut Criterion) {
    let (location, resources, treatment, busy, window) = setup();
    let fast = search(&location, &resources, &treatment, &busy, window, None).expect("valid");
    let slow =
        reference::search(&location, &resources, &treatment, &busy, window, None).expect("valid");
    assert_eq!(fast, slow, "both searches agree");
    assert_eq!(busy.len(), 1_000);
    eprintln!("{} open slots of {GRID}", fast.len());
    // The figure docs/BENCHMARKS.md quotes: the fixed shuffle leaves 192.
    assert_eq!(fast.len(), 192, "the open slots BENCHMARKS.md quotes");

    let mut group = c.benchmark_group("day_4_chambers_1000_bookings");
    group.bench_function("fast", |b| {
        b.iter(|| {
            search(
                &location,
                &resources,
                &treatment,
                black_box(&busy),
                window,
                None,
            )
        });
    });
    group.bench_function("naive", |b| {
        b.iter(|| {
            reference::search(
                &location,
                &resources,
                &treatment,
                black_box(&busy),
                window,
                None,
            )
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
