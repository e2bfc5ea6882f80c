//! Process plumbing the two binaries share: the settings every process
//! reads (the services it connects to, logging), and telemetry (each
//! binary's own metrics registry, exported at `/metrics` in the OpenMetrics
//! text format with `pulse_build_info`).

pub mod metrics;
pub mod process;
pub mod settings;

pub use metrics::{Format, ServerMetrics, WorkerMetrics, CONTENT_TYPE};
pub use settings::ServiceArgs;
