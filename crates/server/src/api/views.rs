//! What the API shows of stored things: runs and alerts as JSON, times in
//! the one format (`pulse_core::time`).

use chrono::{DateTime, Utc};
use pulse_core::assertion::AssertionResult;
use pulse_core::delivery::DeliveryState;
use pulse_core::run::{Certificate, Phases};
use pulse_core::AlertKind;
use pulse_store::pg::alerts::AlertRecord;
use pulse_store::RunRow;
use serde::Serialize;
use uuid::Uuid;

/// A run as `GET /checks/:id/runs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: Uuid,
    pub check_id: Uuid,
    pub status: String,
    pub failure_reason: Option<String>,
    pub latency_ms: u32,
    /// `null` when no response arrived.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// When the first attempt started.
    #[serde(serialize_with = "pulse_core::time::ms")]
    pub run_at: DateTime<Utc>,
    /// The due time of the slot it served.
    #[serde(serialize_with = "pulse_core::time::ms")]
    pub scheduled_at: DateTime<Utc>,
    pub attempts: u8,
    /// The location it ran in.
    pub location: String,
    /// Where the time went: `dns_ms`, `connect_ms`, `tls_ms`, `ttfb_ms`,
    /// `download_ms` (summed over redirects; they add up to `latency_ms`).
    pub phases: Option<Phases>,
    /// Every assertion's outcome: `index`, `passed`, `actual`.
    pub assertions: Vec<AssertionResult>,
    /// A failed run's response: status line, headers, first 4 KiB of body.
    pub excerpt: Option<String>,
    /// The server's certificate (HTTPS runs).
    pub certificate: Option<Certificate>,
}

impl From<RunRow> for RunView {
    fn from(r: RunRow) -> RunView {
        let ms = |v: i64| DateTime::from_timestamp_millis(v).unwrap_or_default();
        let details = r.details();
        RunView {
            id: r.id,
            check_id: r.check_id,
            status: r.status,
            failure_reason: r.failure_reason,
            latency_ms: r.latency_ms,
            status_code: (r.status_code != 0).then_some(r.status_code),
            error: r.error,
            run_at: ms(r.run_at_ms),
            scheduled_at: ms(r.scheduled_at_ms),
            attempts: r.attempts,
            location: r.location,
            phases: details.phases,
            assertions: details.assertions,
            excerpt: details.excerpt,
            certificate: details.certificate,
        }
    }
}

/// An alert as `GET /checks/:id/alerts` shows it, delivery state included.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub id: Uuid,
    pub check_id: Uuid,
    #[serde(rename = "type")]
    pub kind: AlertKind,
    pub status: String,
    pub error: Option<String>,
    pub consecutive_fails: i32,
    /// The webhook body, as sent.
    pub payload: serde_json::Value,
    pub delivery_state: DeliveryState,
    pub attempts: i32,
    pub last_response_code: Option<i32>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "pulse_core::time::ms_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "pulse_core::time::ms")]
    pub created_at: DateTime<Utc>,
    /// Every delivery attempt, oldest first: `attempt`, `attempted_at`,
    /// `response_code`, `error`, `duration_ms`.
    pub deliveries: serde_json::Value,
}

impl From<AlertRecord> for AlertView {
    fn from(a: AlertRecord) -> AlertView {
        AlertView {
            id: a.id,
            check_id: a.check_id,
            kind: a.kind,
            status: a.status,
            error: a.error,
            consecutive_fails: a.consecutive_fails,
            payload: a.payload,
            delivery_state: a.delivery_state,
            attempts: a.attempts,
            last_response_code: a.last_response_code,
            last_error: a.last_error,
            delivered_at: a.delivered_at,
            created_at: a.created_at,
            deliveries: a.deliveries,
        }
    }
}
