//! The error every service answers with, and its one mapping to `tonic::Status`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `ErrorInfo.domain` of every error we send.
pub const DOMAIN: &str = "recovery.studio";

/// The stable `ErrorInfo` reasons of refusals that more than one service
/// gives: one code per kind of refusal, whichever service refuses.
pub mod reason {
    /// The object's state does not allow the change (metadata `from`, `to`).
    pub const ILLEGAL_TRANSITION: &str = "ILLEGAL_TRANSITION";
    /// The `request_id` was used before for a different request.
    pub const REQUEST_ID_REUSED: &str = "REQUEST_ID_REUSED";
    /// The slot is no longer free.
    pub const SLOT_UNAVAILABLE: &str = "SLOT_UNAVAILABLE";
    /// No device fits, or the named one is taken or out of service.
    pub const DEVICE_UNAVAILABLE: &str = "DEVICE_UNAVAILABLE";
    /// The client's personal data was erased.
    pub const CLIENT_ERASED: &str = "CLIENT_ERASED";
    /// The tenant has as many calls in flight as it may (`--tenant-in-flight`).
    pub const TENANT_BUSY: &str = "TENANT_BUSY";
    /// The key called faster than its rate (`--key-rate`, `--key-burst`).
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The tenant has as many streams open as it may (`--tenant-watchers`).
    pub const TOO_MANY_WATCHERS: &str = "TOO_MANY_WATCHERS";
    /// A waitlist offer was not accepted before its expiry.
    pub const OFFER_EXPIRED: &str = "OFFER_EXPIRED";
}

/// An error a handler returns; the caller sees it as a `tonic::Status` with
/// google.rpc details.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: every field problem, collected into one `BadRequest`.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<Violation>),
    /// The object does not exist, or belongs to another tenant.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked for, e.g. `location`.
        kind: &'static str,
        /// The id the caller gave.
        id: String,
    },
    /// A unique value is taken (a serial number, a name).
    #[error("{message}")]
    AlreadyExists {
        /// Stable `ErrorInfo` reason, e.g. `SERIAL_TAKEN`.
        reason: &'static str,
        /// A sentence for people.
        message: String,
    },
    /// The request is valid but the system is not in a state to do it.
    #[error("{message}")]
    FailedPrecondition {
        /// Stable `ErrorInfo` reason, e.g. `SLOT_UNAVAILABLE`.
        reason: &'static str,
        /// A sentence for people.
        message: String,
        /// Extra facts for machines (ids, states).
        metadata: HashMap<String, String>,
    },
    /// No usable credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The credentials are valid but their role may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A dependency (database, another service) is not reachable right now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A limit of the caller's was reached: answered at once with when to
    /// retry, never queued.
    #[error("{message}")]
    ResourceExhausted {
        /// Stable `ErrorInfo` reason, e.g. `TENANT_BUSY`.
        reason: &'static str,
        /// What was reached.
        message: String,
        /// When a retry may succeed (`RetryInfo`).
        retry_after: std::time::Duration,
    },
    /// A peer service's refusal, passed on as it came: its code, message
    /// and details (a `FAILED_PRECONDITION DEVICE_UNAVAILABLE` from fleet
    /// reaches booking's caller unchanged).
    #[error("{}", .0.message())]
    Upstream(tonic::Status),
    /// Anything unexpected: logged with its detail, answered without it.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// One field problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path, e.g. `location.weekly_hours[2].close`.
    pub field: String,
    /// What is wrong with it, for people.
    pub description: String,
}

/// The most field violations one answer names.
const MAX_VIOLATIONS: usize = 16;
/// The longest field path or description an answer repeats.
const MAX_DETAIL: usize = 160;
/// The longest message an answer carries.
const MAX_MESSAGE: usize = 1024;

/// `text` cut to `max` characters, with "…" when cut: an answer never
/// echoes a megabyte a caller sent (it would not fit a response header).
fn bounded(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One bad field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![Violation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// A refusal with a stable reason and facts for machines (ids, states).
    pub fn refuse(
        reason: &'static str,
        message: impl Into<String>,
        facts: &[(&str, &str)],
    ) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
            metadata: facts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// `ILLEGAL_TRANSITION`: a `what` in state `from` cannot become `to`.
    pub fn illegal_transition(what: &str, from: &str, to: &str) -> Self {
        Self::refuse(
            reason::ILLEGAL_TRANSITION,
            format!("{what} is {from}: it cannot become {to}"),
            &[("from", from), ("to", to)],
        )
    }

    /// A refusal for the current state, with a stable reason.
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
            metadata: HashMap::new(),
        }
    }

    /// The same refusal with one more fact for machines (e.g. which item of
    /// a batch it is about); other errors are returned unchanged.
    #[must_use]
    pub fn with_fact(mut self, key: &str, value: impl Into<String>) -> Self {
        if let Self::FailedPrecondition { metadata, .. } = &mut self {
            metadata.insert(key.to_owned(), value.into());
        }
        self
    }

    /// The `ErrorInfo` reason this error carries, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::AlreadyExists { reason, .. }
            | Error::FailedPrecondition { reason, .. }
            | Error::ResourceExhausted { reason, .. } => Some(reason),
            Error::NotFound { .. } => Some("NOT_FOUND"),
            _ => None,
        }
    }

    /// Not found (or another tenant's).
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        crate::db::note_fault(&error);
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(format!("database: {error}"))
            }
            other => Self::Internal(anyhow::Error::new(other).context("database")),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => {
                let violations: Vec<Violation> = violations
                    .into_iter()
                    .take(MAX_VIOLATIONS)
                    .map(|v| Violation {
                        field: bounded(&v.field, MAX_DETAIL),
                        description: bounded(&v.description, MAX_DETAIL),
                    })
                    .collect();
                let message = bounded(
                    &format!("invalid argument: {}", describe(&violations)),
                    MAX_MESSAGE,
                );
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::NotFound { kind, id } => {
                let id = bounded(&id, crate::wire::ECHO);
                Status::with_error_details(
                    Code::NotFound,
                    format!("{kind} {id} not found"),
                    ErrorDetails::with_error_info(
                        "NOT_FOUND",
                        DOMAIN,
                        HashMap::from([
                            ("kind".to_owned(), kind.to_owned()),
                            ("id".to_owned(), id),
                        ]),
                    ),
                )
            }
            Error::AlreadyExists { reason, message } => Status::with_error_details(
                Code::AlreadyExists,
                bounded(&message, MAX_MESSAGE),
                ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new()),
            ),
            Error::FailedPrecondition {
                reason,
                message,
                metadata,
            } => Status::with_error_details(
                Code::FailedPrecondition,
                bounded(&message, MAX_MESSAGE),
                ErrorDetails::with_error_info(
                    reason,
                    DOMAIN,
                    metadata
                        .into_iter()
                        .map(|(k, v)| (k, bounded(&v, MAX_DETAIL)))
                        .collect::<HashMap<_, _>>(),
                ),
            ),
            Error::Unauthenticated(message) => Status::with_error_details(
                Code::Unauthenticated,
                message,
                ErrorDetails::with_error_info("UNAUTHENTICATED", DOMAIN, HashMap::new()),
            ),
            Error::PermissionDenied(message) => Status::with_error_details(
                Code::PermissionDenied,
                message,
                ErrorDetails::with_error_info("ROLE_NOT_ALLOWED", DOMAIN, HashMap::new()),
            ),
            Error::Unavailable(detail) => {
                tracing::warn!(error = %detail, "dependency unavailable");
                Status::unavailable("temporarily unavailable, retry later")
            }
            Error::ResourceExhausted {
                reason,
                message,
                retry_after,
            } => {
                let mut details = ErrorDetails::with_retry_info(Some(retry_after));
                details.set_error_info(reason, DOMAIN, HashMap::new());
                Status::with_error_details(
                    Code::ResourceExhausted,
                    bounded(&message, MAX_MESSAGE),
                    details,
                )
            }
            Error::Upstream(status) => status,
            Error::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// Collects field problems so that one response names all of them.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Runs a check and records its error, keeping the value when it passes.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// Records every problem of `other` after those already here.
    pub fn append(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else one `InvalidArgument` with all.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    /// Returns `value` when nothing was recorded.
    pub fn finish_with<T>(self, value: Option<T>) -> Result<T, Error> {
        self.finish()?;
        value.ok_or_else(|| Error::Internal(anyhow::anyhow!("validated value missing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let mut v = Violations::new();
        v.add("location.time_zone", "unknown time zone \"Mars/Base\"");
        v.add("location.display_name", "must not be empty");
        let status = Status::from(v.finish().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest detail");
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, ["location.time_zone", "location.display_name"]);
        assert!(status.message().contains("Mars/Base"));
    }

    #[test]
    fn precondition_carries_a_stable_reason() {
        let status = Status::from(Error::precondition("SLOT_UNAVAILABLE", "slot taken"));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .expect("ErrorInfo");
        assert_eq!(info.reason, "SLOT_UNAVAILABLE");
        assert_eq!(info.domain, DOMAIN);
    }

    #[test]
    fn internal_errors_do_not_leak_their_detail() {
        let status = Status::from(Error::Internal(anyhow::anyhow!(
            "password authentication failed for user postgres"
        )));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert!(status.details().is_empty());
    }

    #[test]
    fn answers_never_echo_more_than_a_few_kilobytes() {
        let huge = "x".repeat(90_000);
        let mut v = Violations::new();
        for i in 0..1000 {
            v.add(
                format!("emails[{i}].{huge}"),
                format!("{huge:?} is not an email"),
            );
        }
        let status = Status::from(v.finish().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().len() <= 4 * 1024,
            "{}",
            status.message().len()
        );
        assert!(
            status.details().len() <= 8 * 1024,
            "{}",
            status.details().len()
        );
        let bad = status.get_error_details();
        let listed = &bad.bad_request().expect("BadRequest").field_violations;
        assert_eq!(listed.len(), MAX_VIOLATIONS);
        assert!(listed[0].description.ends_with('…'));
        let missing = Status::from(Error::not_found("client", huge.clone()));
        assert!(missing.message().len() < 200, "{}", missing.message().len());
        let refused = Status::from(Error::refuse(
            "RULES_REFUSED",
            huge.clone(),
            &[("rule", &huge)],
        ));
        assert!(refused.message().len() <= 4 * 1024);
        assert!(refused.details().len() <= 4 * 1024);
    }

    #[test]
    fn not_found_names_the_kind() {
        let status = Status::from(Error::not_found("location", "0191"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "location 0191 not found");
    }
}
