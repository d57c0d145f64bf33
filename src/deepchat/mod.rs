//! The only code that knows Deep Chat: its request JSON, its response frames, its transports.

pub mod closing;
pub mod frames;
pub mod http;
pub mod keepalive;
pub mod multipart;
pub mod page;
pub mod queue;
pub mod request;
pub mod response;
pub mod sse;
pub mod ws;
