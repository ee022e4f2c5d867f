//! The webhook model: the harness acts as the provider and POSTs each delivery, signed, with
//! retries, to `/hooks/{subscriber}` of the receiver.

pub mod http;
pub mod model;
pub mod payload;
pub mod plain;
pub mod provider;
pub mod response;
pub mod retry;
pub mod sign;
