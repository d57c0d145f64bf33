//! One reply, from admission to its log line: the pipeline every transport runs, what is sent
//! upstream (the conversation budget and memory), and how the upstream's events become typed
//! frames (re-chunking, errors, the end, cancellation), with the tool rounds of a model that
//! calls tools.

pub mod budget;
pub mod conversation;
pub mod frame;
pub mod history;
pub mod log;
pub mod on_wake;
pub mod pipeline;
pub mod relay;
pub mod scope;
pub mod start;
pub mod thinking;
pub mod tool_display;
pub mod tool_loop;
