//! Pulse's pure domain logic: check definitions and their validation, run
//! outcomes, queue jobs and the alert state machine. No I/O lives here.

pub mod alert;
pub mod api_key;
pub mod assertion;
pub mod check;
pub mod delivery;
pub mod job;
pub mod location;
pub mod policy;
pub mod redact;
pub mod report;
pub mod run;
pub mod slo;
pub mod time;
pub mod webhook;

pub use alert::{AlertKind, AlertPayload, IncidentState, LocationStreak};
pub use check::{Check, CheckInput, CheckSpec, ValidationError, INPUT_FIELDS};
pub use job::{Job, JobCheck, RetrySkipped};
pub use location::{LocationStrategy, Quorum};
pub use run::{FailureReason, RunOutcome, RunStatus};
