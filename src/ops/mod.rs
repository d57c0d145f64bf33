//! Operations: health and readiness, metrics.

pub mod catalog;
pub mod health;
pub mod telemetry;
