//! The README's walkthrough: the block between its markers, run exactly as
//! written with `bash -euo pipefail` against a server, and what a reader of
//! the README would check in its output. `e2e.rs` runs it against
//! `recoveryd`, `router.rs` against the four binaries apart behind the
//! router: the same day in both shapes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The README's walkthrough block, exactly as written.
pub(crate) fn script() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README has a walkthrough start marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("README has a walkthrough end marker");
    let block = &readme[start..end];
    let body_start = block.find("```sh\n").expect("a sh block") + 6;
    let body_end = block.rfind("```").expect("closed block");
    block[body_start..body_end].to_owned()
}

/// Runs the walkthrough against `addr` as the operator `operator_key`, and
/// checks that it succeeded and showed what the README says it shows.
pub(crate) fn run_and_check(grpcurl: &Path, addr: &str, operator_key: &str) {
    let script = script();
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &script])
        .env("ADDR", addr)
        .env("OPERATOR_KEY", operator_key)
        .env("PATH", {
            let mut paths: Vec<PathBuf> = vec![grpcurl.parent().unwrap().to_owned()];
            paths.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ));
            std::env::join_paths(paths).unwrap()
        });
    let output = cmd.output().expect("run bash");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    eprintln!("walkthrough against {addr}:\n{out}\n--- stderr ---\n{err}");
    assert!(output.status.success(), "the README walkthrough failed");
    check(&output);
}

fn check(walkthrough: &Output) {
    let out = String::from_utf8_lossy(&walkthrough.stdout);
    let err = String::from_utf8_lossy(&walkthrough.stderr);
    let line = |text: &str| out.lines().any(|l| l.trim() == text);
    // Cryo six hours after the long run warns; two hours after, nothing; the
    // booking for tomorrow keeps the warning.
    assert!(line("OUTSIDE_CRYO_WINDOW"), "no cryo-window warning");
    assert!(
        line("{'allowed': True, 'recommendedDuration': '90s'}"),
        "no clean evaluation"
    );
    assert!(
        out.lines()
            .filter(|l| l.trim() == "OUTSIDE_CRYO_WINDOW")
            .count()
            >= 2,
        "the cryo booking keeps its warning"
    );
    // Suggestions after her run: the first is inside the window, with her
    // first session's 90 s, and she is booked on it.
    assert!(
        line("SUGGESTION_FIT_BEST"),
        "no suggestion inside the window"
    );
    assert!(line("90s"), "no recommended duration on the suggestion");
    // Compression the evening before her race warns.
    assert!(line("COMPRESSION_BEFORE_RACE"), "no race warning");
    // Ana's cancelled slot was offered to Cy on the waitlist, and booked.
    assert!(line("OFFER_STATE_ACCEPTED"), "no accepted waitlist offer");
    // Every step the README lets fail (`|| true`) fails, and in the way it
    // says: its code and its reason or the fields it names, in order, and
    // nothing else failed.
    assert_eq!(
        refusals(&err),
        [
            // A location on the moon: the time zone is wrong.
            ("InvalidArgument", "location.time_zone".to_owned()),
            // Soreness 11 and an unknown modality: both fields named.
            (
                "InvalidArgument",
                "session.modality session.soreness_before".to_owned()
            ),
            // The rules refuse before anything is booked: the daily limit
            // for a second cryo that day, the contraindication for Bea; an
            // unknown client is not found.
            ("FailedPrecondition", "DAILY_LIMIT_REACHED".to_owned()),
            ("FailedPrecondition", "CONTRAINDICATED".to_owned()),
            ("NotFound", "NOT_FOUND".to_owned()),
            // The gun in use cannot be reserved twice.
            ("FailedPrecondition", "DEVICE_UNAVAILABLE".to_owned()),
            // The device board is a stream, cut by `-max-time`.
            ("DeadlineExceeded", String::new()),
            // A battery of 140 %.
            ("InvalidArgument", "readings[0].battery_percent".to_owned()),
        ]
        .map(|(code, why)| (code.to_owned(), why)),
        "the refusals the walkthrough shows"
    );
    // Both live streams began with their snapshot: the schedule's bookings
    // and the board's devices.
    for stream in ["bookings", "devices"] {
        assert!(
            out.contains(&format!("\"snapshot\": {{\n    \"{stream}\"")),
            "no snapshot of {stream}"
        );
    }
    // The stretch booking reserved the gun; staff took it out and back; the
    // session landed in Ana's timeline once, with the gun's settings and her
    // soreness; the double reservation of the gun in use was refused.
    for expected in [
        "\"accepted\": \"2\"",
        "DEVICE_STATE_IN_USE",
        "RESERVATION_STATE_COMPLETED",
        "\"bookingId\"",
        "\"speed_level\": \"3\"",
        "\"attachment\": \"fork\"",
        "\"sorenessBefore\": 6",
        "\"sorenessAfter\": 3",
        "\"notes\": \"head replaced\"",
        // One chamber, one record: registered in the fleet, offered by
        // booking; in maintenance, Ana's booking on it is at risk and moved.
        "\"deviceId\"",
        "'deviceState': 'DEVICE_STATE_MAINTENANCE'",
        "\"seal replaced\"",
        // Protocols' thresholds: the defaults, then the manager's window.
        "\"isDefault\": true",
        "\"cryoWindow\": \"14400s\"",
    ] {
        assert!(out.contains(expected), "walkthrough printed no {expected}");
    }
}

/// grpcurl's error blocks in `err`, in order: the code, and the
/// `ErrorInfo` reason or else the `BadRequest` fields (space-separated).
fn refusals(err: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for line in err.lines().map(str::trim) {
        if let Some(code) = line.strip_prefix("Code: ") {
            found.push((code.to_owned(), String::new()));
            continue;
        }
        let Some((_, why)) = found.last_mut() else {
            continue;
        };
        let Some(detail) = line
            .split_once('\t')
            .and_then(|(_, json)| serde_json::from_str::<serde_json::Value>(json).ok())
        else {
            continue;
        };
        if let Some(reason) = detail["reason"].as_str() {
            reason.clone_into(why);
        } else if let Some(violations) = detail["fieldViolations"].as_array() {
            *why = violations
                .iter()
                .filter_map(|v| v["field"].as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    found
}
