//! The only code that knows Deep Chat: its request JSON, its response frames, its transports
//! (WebSocket with keepalive and closing, HTTP SSE and JSON, multipart uploads), the page.

pub mod closing;
pub mod frames;
pub mod history_api;
pub mod http;
pub mod keepalive;
pub mod multipart;
pub mod page;
pub mod queue;
pub mod request;
pub mod sse;
pub mod ws;
pub mod ws_reply;
