//! The states a newsletter and each of its deliveries go through, stored as the TEXT values the
//! columns' CHECK constraints allow. `db::newsletters` and `db::deliveries` both read them here.

crate::text_enum! {
    /// Where a newsletter stands: a draft until it is sent; `overdue` when its time passed long
    /// before an engine got to it (it waits for staff); `paused` by staff or by the engine.
    pub enum NewsletterState {
        Draft = "draft",
        Scheduled = "scheduled",
        Overdue = "overdue",
        Sending = "sending",
        Paused = "paused",
        Sent = "sent",
        Cancelled = "cancelled",
    }
}

impl NewsletterState {
    /// The states of newsletters that may still send.
    pub const UNFINISHED: [Self; 5] = [
        Self::Draft,
        Self::Scheduled,
        Self::Overdue,
        Self::Sending,
        Self::Paused,
    ];
}

crate::text_enum! {
    /// Where one message of a send stands: `sending` while a worker holds it under a lease.
    pub enum DeliveryState {
        Pending = "pending",
        Sending = "sending",
        Sent = "sent",
        Failed = "failed",
        Skipped = "skipped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_stored_text() {
        for &s in NewsletterState::ALL {
            assert_eq!(NewsletterState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for &s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(NewsletterState::parse("Draft"), None);
        assert_eq!(DeliveryState::parse(""), None);
    }
}
