//! Operations: health and readiness, metrics.

pub mod catalog;
pub mod chunk_gaps;
pub mod health;
pub mod telemetry;
