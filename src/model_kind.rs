//! The delivery models by name: one enum for the summary, the CSVs, the interval-log file names,
//! `--model` and capacity's searches, so a model is never a string compared with literals.

use serde::{Deserialize, Serialize};

/// A delivery model. Serialized lowercase (`"webhook"`, `"websocket"`), as results files and
/// threshold names (`webhook.latency_us.p99`) spell it.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Webhook deliveries: a signed HTTP POST per event (load in events/s).
    #[default]
    Webhook,
    /// The WebSocket model: held connections, server push or echo (events/s; connections in
    /// idle mode).
    #[value(name = "websocket")]
    WebSocket,
    /// Server-sent events: held `text/event-stream` responses, server push (events/s; streams
    /// in idle mode).
    Sse,
    /// Long polling: a request held until events arrive, asked again at once (events/s).
    #[serde(rename = "longpoll")]
    #[value(name = "longpoll")]
    LongPoll,
}

impl ModelKind {
    /// Every model, in the order a run runs them.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Webhook,
        ModelKind::WebSocket,
        ModelKind::Sse,
        ModelKind::LongPoll,
    ];

    /// The name in results files, metric names and file names.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Webhook => "webhook",
            ModelKind::WebSocket => "websocket",
            ModelKind::Sse => "sse",
            ModelKind::LongPoll => "longpoll",
        }
    }

    /// The model a name means (as [`name`](Self::name) writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`: widths and alignment in format strings apply (tables line up).
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_clap() {
        for m in ModelKind::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<ModelKind>(&json).unwrap(), m);
            assert_eq!(ModelKind::from_name(m.name()), Some(m));
            let arg = <ModelKind as clap::ValueEnum>::from_str(m.name(), false).unwrap();
            assert_eq!(arg, m);
        }
        assert_eq!(ModelKind::from_name("long-poll"), None);
        // Widths apply: the comparison and summary tables line their columns up with them.
        assert_eq!(
            format!("{:<9}|{:>9}", ModelKind::Sse, ModelKind::LongPoll),
            "sse      | longpoll"
        );
    }
}
