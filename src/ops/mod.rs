//! Operations: health and readiness, metrics.

pub mod health;
pub mod telemetry;
