//! Bounce and complaint intake on the wire: what became of each report a script or a mail
//! provider sent.

use serde::Serialize;

/// The outcome of each report, by the sender's own id. `ignored` (events of kinds Enlace does
/// not act on) is written for the provider endpoints only.
#[derive(Serialize)]
pub struct ReportResultsView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<usize>,
    pub results: Vec<ReportResultView<'a>>,
}

/// What became of one report: `applied`, `duplicate`, … (`bounces::ReportOutcome::answer`).
#[derive(Serialize)]
pub struct ReportResultView<'a> {
    pub id: &'a str,
    pub outcome: &'static str,
}

/// The answer to an Amazon SNS subscription confirmation.
#[derive(Serialize)]
pub struct SubscriptionView {
    pub subscription: &'static str,
}
