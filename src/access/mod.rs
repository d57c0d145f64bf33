//! Who may use the proxy and how much: origins, client auth, rate limits, connections per IP.

pub mod auth;
pub mod connections;
pub mod ip_slots;
pub mod origins;
pub mod ratelimit;
