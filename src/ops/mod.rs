//! Operations: health and readiness, metrics (their catalog, chunk gaps), the `/status` page
//! and the recent figures it shows.

pub mod catalog;
pub mod chunk_gaps;
pub mod health;
pub mod otel;
pub mod recent;
pub mod status;
pub mod telemetry;
