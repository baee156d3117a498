//! A span per SQL statement, by the database conventions: sqlx reports each
//! statement it ran as an event (target `sqlx::query`, with the statement
//! text and how long it took); this layer turns it into a client span under
//! the span the statement ran in, named by its summary (`SELECT bookings`),
//! with `db.system.name`, `db.operation.name`, `db.collection.name` and
//! `db.query.summary`. Only the operation and the first table are read from
//! the text: never the text itself, never a parameter value.
//!
//! Statements outside any span (a relay's poll, a sweep) make no span: they
//! would be a trace of their own every second.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::trace::SdkTracer;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Level};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::Engine;

/// The engine this process's database runs on (one per process).
static ENGINE: AtomicU8 = AtomicU8::new(0);

/// Tells the statement spans which engine they describe.
pub(crate) fn note_engine(engine: Engine) {
    let n = match engine {
        Engine::Sqlite => 1,
        Engine::Postgres => 2,
    };
    ENGINE.store(n, Ordering::Relaxed);
}

fn system_name() -> &'static str {
    match ENGINE.load(Ordering::Relaxed) {
        1 => "sqlite",
        2 => "postgresql",
        _ => "other_sql",
    }
}

/// What the layer sees: spans the span layer exports, and sqlx's statements.
pub(super) fn filter() -> Targets {
    Targets::new()
        .with_default(Level::INFO)
        .with_target("sqlx::query", Level::DEBUG)
}

/// The layer.
pub(super) struct StatementSpans {
    tracer: SdkTracer,
    dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl StatementSpans {
    pub(super) fn new(tracer: SdkTracer) -> Self {
        Self {
            tracer,
            dispatch: std::sync::OnceLock::new(),
        }
    }
}

#[derive(Default)]
struct Statement {
    summary: String,
    text: String,
    elapsed_secs: f64,
}

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.text),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S> tracing_subscriber::Layer<S> for StatementSpans
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let Some(dispatch) = self
            .dispatch
            .get()
            .and_then(tracing::dispatcher::WeakDispatch::upgrade)
        else {
            return;
        };
        let Some(current) = ctx.event_span(event) else {
            return;
        };
        let Some(parent) =
            tracing_opentelemetry::get_otel_context(&mut current.extensions_mut(), &dispatch)
        else {
            return;
        };
        if !parent.span().span_context().is_valid() {
            return;
        }
        let mut statement = Statement::default();
        event.record(&mut statement);
        // sqlx leaves the text empty when its summary (the first four
        // words) is the whole statement.
        let text = if statement.text.trim().is_empty() {
            statement.summary.as_str()
        } else {
            statement.text.as_str()
        };
        let Some(summary) = Summary::of(text) else {
            return;
        };
        let end = SystemTime::now();
        let start = end
            .checked_sub(Duration::from_secs_f64(statement.elapsed_secs.max(0.0)))
            .unwrap_or(end);
        let mut attributes = vec![
            KeyValue::new("db.system.name", system_name()),
            KeyValue::new("db.operation.name", summary.operation.clone()),
            KeyValue::new("db.query.summary", summary.to_string()),
        ];
        if let Some(table) = &summary.table {
            attributes.push(KeyValue::new("db.collection.name", table.clone()));
        }
        let mut span = self
            .tracer
            .span_builder(summary.to_string())
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        span.end_with_timestamp(end);
    }
}

/// A statement's operation and the first table it names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    operation: String,
    table: Option<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.table {
            Some(table) => write!(f, "{} {table}", self.operation),
            None => f.write_str(&self.operation),
        }
    }
}

impl Summary {
    /// Reads only keywords and identifiers: a literal or a value can never
    /// end up in a summary.
    pub(crate) fn of(sql: &str) -> Option<Self> {
        let mut words = sql
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == ';')
            .filter(|w| !w.is_empty());
        let first = words.next()?;
        if !first.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let operation = first.to_ascii_uppercase();
        if operation == "WITH" {
            // Common table expressions: summed up by the first statement
            // in them (`WITH booked AS (INSERT INTO bookings …` is
            // `INSERT bookings`), the work the rest builds on.
            let statement = words.find(|w| {
                ["SELECT", "INSERT", "UPDATE", "DELETE"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
            })?;
            let at = (statement.as_ptr() as usize).checked_sub(sql.as_ptr() as usize)?;
            return Self::of(sql.get(at..)?);
        }
        let before_table: &[&str] = match operation.as_str() {
            "SELECT" | "DELETE" => &["FROM"],
            "INSERT" => &["INTO"],
            "UPDATE" => &["UPDATE"],
            _ => &[],
        };
        let table = if operation == "UPDATE" {
            words.next().and_then(identifier)
        } else if before_table.is_empty() {
            None
        } else {
            // The first identifier after a FROM (INTO): a subquery's
            // SELECT is no table.
            let mut after = false;
            words.find_map(|w| {
                let keyword = before_table.iter().any(|k| w.eq_ignore_ascii_case(k));
                let found = (after && !w.eq_ignore_ascii_case("SELECT"))
                    .then(|| identifier(w))
                    .flatten();
                after = keyword;
                found
            })
        };
        Some(Self { operation, table })
    }
}

/// `word` as a table name, if it is one (quotes dropped).
fn identifier(word: &str) -> Option<String> {
    let name = word.trim_matches('"');
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    .then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::Summary;

    fn summary(sql: &str) -> Option<String> {
        Summary::of(sql).map(|s| s.to_string())
    }

    #[test]
    fn summaries_name_the_operation_and_the_first_table_only() {
        assert_eq!(
            summary("SELECT id, name FROM bookings WHERE id = $1").as_deref(),
            Some("SELECT bookings")
        );
        assert_eq!(
            summary("select count(*) AS n from booking_outbox").as_deref(),
            Some("SELECT booking_outbox")
        );
        assert_eq!(
            summary("INSERT INTO clients (id, email) VALUES ($1, 'ana@example.com')").as_deref(),
            Some("INSERT clients")
        );
        assert_eq!(
            summary("UPDATE api_keys SET revoke_time = $1").as_deref(),
            Some("UPDATE api_keys")
        );
        assert_eq!(
            summary("DELETE FROM \"holds\" WHERE x = 'secret'").as_deref(),
            Some("DELETE holds")
        );
        assert_eq!(summary("BEGIN").as_deref(), Some("BEGIN"));
        assert_eq!(
            summary("SELECT n FROM (SELECT COUNT(*) AS n FROM devices) AS d").as_deref(),
            Some("SELECT devices")
        );
        assert_eq!(
            summary("SELECT * FROM ('secret')").as_deref(),
            Some("SELECT")
        );
        assert_eq!(
            summary("WITH booked AS (INSERT INTO bookings (id) VALUES ($1) RETURNING id) SELECT id FROM booked")
                .as_deref(),
            Some("INSERT bookings")
        );
        assert_eq!(
            summary("WITH s AS (SELECT id FROM protocols_screenings LIMIT 1) SELECT 'x' FROM s")
                .as_deref(),
            Some("SELECT protocols_screenings")
        );
        assert_eq!(summary("WITH 'secret'").as_deref(), None);
        assert_eq!(summary("'x' SELECT"), None);
        assert_eq!(summary(""), None);
    }
}
