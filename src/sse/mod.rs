//! Server-sent events: the `text/event-stream` format (the SSE model's client and server build
//! on it).

pub mod event;
pub mod parse;
