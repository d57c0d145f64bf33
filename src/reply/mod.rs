//! One reply: what is sent upstream (the conversation budget and memory) and how the
//! upstream's events are relayed (re-chunking, the stop key, errors, cancellation).

pub mod budget;
pub mod history;
pub mod log;
pub mod relay;
pub mod start;
