//! The states a newsletter and each of its deliveries go through, stored as the TEXT values the
//! columns' CHECK constraints allow. `db::newsletters` and `db::deliveries` both read them here.

use std::fmt;

/// Where a newsletter stands: a draft until it is sent; `overdue` when its time passed long before
/// an engine got to it (it waits for staff); `paused` by staff or by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewsletterState {
    Draft,
    Scheduled,
    Overdue,
    Sending,
    Paused,
    Sent,
    Cancelled,
}

impl NewsletterState {
    pub const ALL: [Self; 7] = [
        Self::Draft,
        Self::Scheduled,
        Self::Overdue,
        Self::Sending,
        Self::Paused,
        Self::Sent,
        Self::Cancelled,
    ];

    /// The states of newsletters that may still send.
    pub const UNFINISHED: [Self; 5] = [
        Self::Draft,
        Self::Scheduled,
        Self::Overdue,
        Self::Sending,
        Self::Paused,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Overdue => "overdue",
            Self::Sending => "sending",
            Self::Paused => "paused",
            Self::Sent => "sent",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for NewsletterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one message of a send stands: `sending` while a worker holds it under a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Sending,
    Sent,
    Failed,
    Skipped,
}

impl DeliveryState {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Skipped,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_stored_text() {
        for s in NewsletterState::ALL {
            assert_eq!(NewsletterState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(NewsletterState::parse("Draft"), None);
        assert_eq!(DeliveryState::parse(""), None);
    }
}
