//! Prometheus metrics: request counts and latency, the list's key events, and mail outcomes.
//! Gauges read from the database (queue depth, subscribers by status) are sampled at scrape time.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

struct Inner {
    /// What anyone may read: totals that do not tell one address's state from another's.
    public: Registry,
    /// With the metrics token only: outcomes, mail counts and kinds, the queue's depth and
    /// subscribers by status, which taken before and after one signup would reveal what the
    /// public answer hides (a new address gets a confirmation; a suppressed one gets nothing).
    detail: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    signups: Counter,
    signup_outcomes: Family<OutcomeLabels, Counter>,
    signup_batch: Histogram,
    confirmations: Counter,
    unsubscribes: Counter,
    mails_sent: Counter,
    mails_failed: Counter,
    mails_sent_by_kind: Family<KindLabels, Counter>,
    mails_failed_by_kind: Family<KindLabels, Counter>,
    queue_depth: Gauge,
    subscribers: Family<StatusLabels, Gauge>,
}

/// Cheap to clone; every clone records into the same registries.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut public = Registry::with_prefix("enlace");
        let mut detail = Registry::with_prefix("enlace");
        let requests = Family::<RequestLabels, Counter>::default();
        public.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        public.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            latency.clone(),
        );
        let signups = Counter::default();
        public.register("signups", "Signups accepted", signups.clone());
        let signup_outcomes = Family::<OutcomeLabels, Counter>::default();
        detail.register(
            "signup_outcomes",
            "Signups by what happened behind the public answer",
            signup_outcomes.clone(),
        );
        let signup_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        public.register(
            "signup_batch_size",
            "Signups committed per transaction",
            signup_batch.clone(),
        );
        let confirmations = Counter::default();
        public.register(
            "confirmations",
            "Subscriptions confirmed",
            confirmations.clone(),
        );
        let unsubscribes = Counter::default();
        public.register("unsubscribes", "Unsubscriptions", unsubscribes.clone());
        let mails_sent = Counter::default();
        detail.register(
            "mails_sent",
            "Messages handed to the mail transport",
            mails_sent.clone(),
        );
        let mails_failed = Counter::default();
        detail.register("mails_failed", "Messages given up on", mails_failed.clone());
        let mails_sent_by_kind = Family::<KindLabels, Counter>::default();
        detail.register(
            "mails_sent_by_kind",
            "Messages sent, by kind",
            mails_sent_by_kind.clone(),
        );
        let mails_failed_by_kind = Family::<KindLabels, Counter>::default();
        detail.register(
            "mails_failed_by_kind",
            "Messages given up on, by kind",
            mails_failed_by_kind.clone(),
        );
        let queue_depth = Gauge::default();
        detail.register(
            "queue_depth",
            "Jobs waiting or running",
            queue_depth.clone(),
        );
        let subscribers = Family::<StatusLabels, Gauge>::default();
        detail.register("subscribers", "Subscribers by status", subscribers.clone());
        Self(Arc::new(Inner {
            public,
            detail,
            requests,
            latency,
            signups,
            signup_outcomes,
            signup_batch,
            confirmations,
            unsubscribes,
            mails_sent,
            mails_failed,
            mails_sent_by_kind,
            mails_failed_by_kind,
            queue_depth,
            subscribers,
        }))
    }

    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.0
            .latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn signup(&self, outcome: &str) {
        self.0.signups.inc();
        self.0
            .signup_outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn signup_batch(&self, size: usize) {
        self.0.signup_batch.observe(size as f64);
    }

    pub fn confirmation(&self) {
        self.0.confirmations.inc();
    }

    pub fn unsubscribe(&self) {
        self.0.unsubscribes.inc();
    }

    pub fn mail_sent(&self, kind: &str) {
        self.0.mails_sent.inc();
        self.0
            .mails_sent_by_kind
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn mail_failed(&self, kind: &str) {
        self.0.mails_failed.inc();
        self.0
            .mails_failed_by_kind
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Renders the text format: the public set, plus the detail set when `by_status` is given
    /// (the caller holds the metrics token).
    pub fn render(
        &self,
        queue_depth: i64,
        by_status: Option<&[(crate::domain::SubscriberStatus, i64)]>,
    ) -> String {
        use prometheus_client::encoding::text::encode;
        self.0.queue_depth.set(queue_depth);
        let mut out = String::new();
        encode(&mut out, &self.0.public).expect("writing to a String");
        if let Some(by_status) = by_status {
            for (status, count) in by_status {
                self.0
                    .subscribers
                    .get_or_create(&StatusLabels {
                        status: status.as_str().to_owned(),
                    })
                    .set(*count);
            }
            let mut detail = String::new();
            encode(&mut detail, &self.0.detail).expect("writing to a String");
            // One exposition, one closing "# EOF".
            out.truncate(out.trim_end().trim_end_matches("# EOF").len());
            out.push_str(&detail);
        }
        out
    }
}
