//! Telemetry shared by the binaries: each has its own metrics registry (so
//! neither exports the other's series), exported at `/metrics` in the
//! OpenMetrics text format, with `pulse_build_info`.

pub mod metrics;

pub use metrics::{ServerMetrics, WorkerMetrics, CONTENT_TYPE};
