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
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    signups: Family<OutcomeLabels, Counter>,
    signup_batch: Histogram,
    confirmations: Counter,
    unsubscribes: Counter,
    mails_sent: Family<KindLabels, Counter>,
    mails_failed: Family<KindLabels, Counter>,
    queue_depth: Gauge,
    subscribers: Family<StatusLabels, Gauge>,
}

/// Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("enlace");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            latency.clone(),
        );
        let signups = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "signups",
            "Signups by what happened behind the public answer",
            signups.clone(),
        );
        let signup_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "signup_batch_size",
            "Signups committed per transaction",
            signup_batch.clone(),
        );
        let confirmations = Counter::default();
        registry.register(
            "confirmations",
            "Subscriptions confirmed",
            confirmations.clone(),
        );
        let unsubscribes = Counter::default();
        registry.register("unsubscribes", "Unsubscriptions", unsubscribes.clone());
        let mails_sent = Family::<KindLabels, Counter>::default();
        registry.register(
            "mails_sent",
            "Messages handed to the mail transport",
            mails_sent.clone(),
        );
        let mails_failed = Family::<KindLabels, Counter>::default();
        registry.register("mails_failed", "Messages given up on", mails_failed.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs waiting or running",
            queue_depth.clone(),
        );
        let subscribers = Family::<StatusLabels, Gauge>::default();
        registry.register("subscribers", "Subscribers by status", subscribers.clone());
        Self(Arc::new(Inner {
            registry,
            requests,
            latency,
            signups,
            signup_batch,
            confirmations,
            unsubscribes,
            mails_sent,
            mails_failed,
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
        self.0
            .signups
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
        self.0
            .mails_sent
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn mail_failed(&self, kind: &str) {
        self.0
            .mails_failed
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records the database-derived gauges, then renders everything in the text format.
    pub fn render(&self, queue_depth: i64, by_status: &[(String, i64)]) -> String {
        self.0.queue_depth.set(queue_depth);
        for (status, count) in by_status {
            self.0
                .subscribers
                .get_or_create(&StatusLabels {
                    status: status.clone(),
                })
                .set(*count);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)
            .expect("writing to a String");
        out
    }
}
