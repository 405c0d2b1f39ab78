//! Mail jobs: rendered at send time from the subscriber's current record, so an address that was
//! erased, suppressed or already confirmed in the meantime gets nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use minijinja::context;
use uuid::Uuid;

use super::{Outcome, Worker};
use crate::db::jobs::ClaimedJob;
use crate::db::{self, subscribers, suppressions};
use crate::domain::{Language, SubscriberStatus, SuppressionReason};
use crate::email::{OutgoingMail, SendError, Templates};
use crate::tokens::{self, ManageTokens};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    Confirmation,
    Welcome,
    AlreadySubscribed,
}

impl MailKind {
    pub fn job_kind(self) -> &'static str {
        match self {
            Self::Confirmation => "mail.confirmation",
            Self::Welcome => "mail.welcome",
            Self::AlreadySubscribed => "mail.already_subscribed",
        }
    }

    pub fn from_job_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "mail.confirmation" => Self::Confirmation,
            "mail.welcome" => Self::Welcome,
            "mail.already_subscribed" => Self::AlreadySubscribed,
            _ => return None,
        })
    }

    fn template(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Welcome => "welcome",
            Self::AlreadySubscribed => "already_subscribed",
        }
    }

    /// Which subscriber states this mail still makes sense for.
    fn wanted_for(self, status: SubscriberStatus) -> bool {
        match self {
            Self::Confirmation => matches!(
                status,
                SubscriberStatus::Pending | SubscriberStatus::Unsubscribed
            ),
            Self::Welcome | Self::AlreadySubscribed => status == SubscriberStatus::Confirmed,
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct Payload {
    token: Option<String>,
}

/// What the worker read from the database for one mail.
#[derive(Clone)]
struct Recipient {
    subscriber: subscribers::Subscriber,
    interests: Vec<db::interests::Interest>,
}

/// A job whose message is ready to send, or the outcome already decided without sending.
pub(super) type Prepared = Result<OutgoingMail, Outcome>;

/// The recipients of a round of jobs, by subscriber id, with three queries in all. Erased and
/// suppressed subscribers are simply absent.
fn load_recipients(
    conn: &mut db::AnyConnection,
    jobs: &[ClaimedJob],
) -> Result<HashMap<String, Recipient>, db::DbError> {
    let ids: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.subscriber_id.as_deref())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found = subscribers::find_subscribers(conn, &ids)?;
    let hashes: Vec<String> = found.iter().map(|s| tokens::email_hash(&s.email)).collect();
    let blocked: HashSet<String> = suppressions::find_suppressions(conn, &hashes)?
        .into_iter()
        .filter(|(_, reason)| *reason != SuppressionReason::Erased)
        .map(|(hash, _)| hash)
        .collect();
    let mut recipients: HashMap<String, Recipient> = found
        .into_iter()
        .zip(hashes)
        .filter(|(_, hash)| !blocked.contains(hash))
        .map(|(subscriber, _)| {
            (
                subscriber.id.to_string(),
                Recipient {
                    subscriber,
                    interests: Vec::new(),
                },
            )
        })
        .collect();
    for (id, interest) in subscribers::list_interests_of(conn, &ids)? {
        if let Some(recipient) = recipients.get_mut(&id) {
            recipient.interests.push(interest);
        }
    }
    Ok(recipients)
}

/// The proposals carried by the confirmation links of these jobs, by job id.
fn load_proposals(
    conn: &mut db::AnyConnection,
    jobs: &[ClaimedJob],
) -> Result<HashMap<String, crate::db::confirmations::Proposal>, db::DbError> {
    let by_hash: HashMap<String, &str> = jobs
        .iter()
        .filter(|j| MailKind::from_job_kind(&j.kind) == Some(MailKind::Confirmation))
        .filter_map(|j| {
            let payload: Payload = serde_json::from_str(&j.payload).ok()?;
            Some((tokens::hash_token(&payload.token?), j.id.as_str()))
        })
        .collect();
    if by_hash.is_empty() {
        return Ok(HashMap::new());
    }
    let hashes: Vec<String> = by_hash.keys().cloned().collect();
    Ok(db::confirmations::find_proposals(conn, &hashes)?
        .into_iter()
        .filter_map(|(hash, json)| {
            let proposal = crate::db::confirmations::Proposal::from_json(Some(&json))?;
            Some((by_hash.get(&hash)?.to_string(), proposal))
        })
        .collect())
}

/// The invitations whose current links the invitation mails of these jobs carry, by job id:
/// a link withdrawn, used, replaced or expired since is absent.
fn load_invitations(
    conn: &mut db::AnyConnection,
    jobs: &[ClaimedJob],
) -> Result<HashMap<String, db::staff::Invitation>, db::DbError> {
    let by_hash: HashMap<String, &str> = jobs
        .iter()
        .filter(|j| j.kind == super::INVITATION_MAIL_KIND)
        .filter_map(|j| {
            let payload: super::InvitationMail = serde_json::from_str(&j.payload).ok()?;
            Some((tokens::hash_token(&payload.token), j.id.as_str()))
        })
        .collect();
    if by_hash.is_empty() {
        return Ok(HashMap::new());
    }
    let hashes: Vec<String> = by_hash.keys().cloned().collect();
    Ok(
        db::staff::find_open_invitations_by_token(conn, &hashes, db::now())?
            .into_iter()
            .filter_map(|i| Some((by_hash.get(&i.token_hash)?.to_string(), i)))
            .collect(),
    )
}

impl Worker {
    /// Reads every claimed job's recipient in one database visit and renders the messages there
    /// too, on the blocking pool: rendering is CPU work that must not stall the async threads.
    pub(super) async fn prepare_mails(
        &self,
        jobs: Vec<ClaimedJob>,
    ) -> anyhow::Result<Vec<(ClaimedJob, Prepared)>> {
        let renderer = self.renderer.clone();
        let prepared = self
            .db
            .run(move |conn| -> Result<_, db::DbError> {
                let recipients = load_recipients(conn, &jobs)?;
                let proposals = load_proposals(conn, &jobs)?;
                let invitations = load_invitations(conn, &jobs)?;
                let catalogue = if proposals.is_empty() {
                    Vec::new()
                } else {
                    db::interests::list_interests(conn)?
                };
                Ok(jobs
                    .into_iter()
                    .map(|job| {
                        if job.kind == super::INVITATION_MAIL_KIND {
                            let prepared = renderer.invitation(&job, invitations.get(&job.id));
                            return (job, prepared);
                        }
                        let recipient = job
                            .subscriber_id
                            .as_ref()
                            .and_then(|id| recipients.get(id).cloned())
                            .map(|mut recipient| {
                                // A confirmation for a signup's proposal speaks the language
                                // and lists the interests the form asked for.
                                if let Some(proposal) = proposals.get(&job.id) {
                                    recipient.subscriber.language =
                                        proposal.language.as_str().to_owned();
                                    recipient.interests =
                                        proposal.chosen_interests(catalogue.clone());
                                }
                                recipient
                            });
                        let prepared = renderer.prepare(&job, recipient);
                        (job, prepared)
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(prepared)
    }

    pub(super) async fn send_mail(&self, job: &ClaimedJob, mut mail: OutgoingMail) -> Outcome {
        // At the sending domain (not the machine's host name), and the same on every attempt,
        // so a copy that goes out twice after a crash is recognisably one message.
        let domain = mail
            .from
            .as_ref()
            .unwrap_or(&self.mailer.from)
            .email
            .domain();
        mail.message_id = Some(format!("<{}@{domain}>", job.id));
        match self.mailer.send(mail).await {
            Ok(()) => {
                tracing::info!(job_id = %job.id, kind = %job.kind, subscriber_id = ?job.subscriber_id, "mail sent");
                Outcome::Done
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, error = %e, "mail not sent");
                Outcome::from(e)
            }
        }
    }
}

/// A newsletter test message from its job payload.
fn test_mail(payload: &str) -> Prepared {
    let permanent = |what: &str| Err(Outcome::from(SendError::Permanent(what.to_owned())));
    let Ok(mail) = serde_json::from_str::<super::TestMail>(payload) else {
        return permanent("test message payload unreadable");
    };
    let mailbox = |raw: Option<String>| raw.and_then(|m| m.parse().ok());
    Ok(OutgoingMail {
        to_email: mail.to,
        to_name: None,
        language: mail.language,
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        unsubscribe_url: mail.unsubscribe_url,
        from: mailbox(mail.from),
        reply_to: mailbox(mail.reply_to),
        list_id: None,
        message_id: None,
    })
}

/// Everything needed to turn a job into a message; cheap to clone into a blocking task.
#[derive(Clone)]
pub struct MailRenderer {
    pub templates: Arc<Templates>,
    pub tokens: ManageTokens,
    pub base_url: String,
    pub confirm_ttl_days: i64,
}

impl MailRenderer {
    fn prepare(&self, job: &ClaimedJob, recipient: Option<Recipient>) -> Prepared {
        if job.kind == super::TEST_MAIL_KIND {
            return test_mail(&job.payload);
        }
        let Some(kind) = MailKind::from_job_kind(&job.kind) else {
            return Err(Outcome::from(SendError::Permanent(format!(
                "unknown job kind {}",
                job.kind
            ))));
        };
        let Some(recipient) = recipient else {
            return Err(Outcome::Dropped("recipient erased or suppressed"));
        };
        if !kind.wanted_for(recipient.subscriber.status) {
            return Err(Outcome::Dropped(
                "no longer needed for the subscriber's status",
            ));
        }
        let payload: Payload = serde_json::from_str(&job.payload).unwrap_or_default();
        self.render(kind, &recipient, payload.token.as_deref()).map_err(|e| {
            tracing::error!(job_id = %job.id, kind = kind.job_kind(), error = format!("{e:#}"), "rendering a mail failed");
            Outcome::from(SendError::Permanent(format!("rendering: {e:#}")))
        })
    }

    /// A staff invitation, in the language it was made with; nothing when its link is no longer
    /// the valid one.
    fn invitation(&self, job: &ClaimedJob, invitation: Option<&db::staff::Invitation>) -> Prepared {
        let Some(invitation) = invitation else {
            return Err(Outcome::Dropped(
                "the invitation was withdrawn, accepted, sent again or has expired",
            ));
        };
        let Ok(payload) = serde_json::from_str::<super::InvitationMail>(&job.payload) else {
            return Err(Outcome::from(SendError::Permanent(
                "invitation payload unreadable".into(),
            )));
        };
        let language = Language::parse(&invitation.language).unwrap_or_default();
        let left = invitation.expires_at - crate::db::now();
        let ctx = context! {
            invitation_url => format!("{}{}", payload.link, payload.token),
            role => invitation.role.as_str(),
            expires_days => (left.num_hours() + 23) / 24,
        };
        let rendered = (|| -> anyhow::Result<OutgoingMail> {
            let name = "mail/staff_invitation";
            Ok(OutgoingMail {
                to_email: invitation.email.clone(),
                to_name: None,
                language,
                subject: self
                    .templates
                    .text(language, "console.admin.invitation_mail.subject"),
                html: self
                    .templates
                    .render(&format!("{name}.html"), language, ctx.clone())?,
                text: self
                    .templates
                    .render(&format!("{name}.txt"), language, ctx)?,
                // Not list mail: no unsubscribe headers.
                unsubscribe_url: String::new(),
                from: None,
                reply_to: None,
                list_id: None,
                message_id: None,
            })
        })();
        rendered.map_err(|e| {
            tracing::error!(job_id = %job.id, error = format!("{e:#}"), "rendering an invitation failed");
            Outcome::from(SendError::Permanent(format!("rendering: {e:#}")))
        })
    }

    fn render(
        &self,
        kind: MailKind,
        recipient: &Recipient,
        token: Option<&str>,
    ) -> anyhow::Result<OutgoingMail> {
        let subscriber = &recipient.subscriber;
        let language = Language::parse(&subscriber.language).unwrap_or_default();
        let id: Uuid = subscriber.id.parse()?;
        let manage = self.tokens.sign(id);
        let unsubscribe_url = format!("{}/unsubscribe/{manage}", self.base_url);
        let preferences_url = format!("{}/preferences/{manage}", self.base_url);
        let confirm_url = match (kind, token) {
            (MailKind::Confirmation, Some(token)) => {
                Some(format!("{}/confirm/{token}", self.base_url))
            }
            (MailKind::Confirmation, None) => anyhow::bail!("confirmation job without a token"),
            _ => None,
        };
        let interests: Vec<_> = recipient
            .interests
            .iter()
            .map(|i| context! { name => i.name(language), description => i.description(language) })
            .collect();
        // Nobody has confirmed the name on a confirmation yet: a stranger may have typed anything
        // there, so it appears neither in the greeting nor in the To header.
        let name = if kind == MailKind::Confirmation {
            None
        } else {
            subscriber.name.clone()
        };
        let ctx = context! {
            name => &name,
            unsubscribe_url => &unsubscribe_url,
            preferences_url => &preferences_url,
            confirm_url => confirm_url,
            expires_days => self.confirm_ttl_days,
            interests => interests,
        };
        let template = kind.template();
        let html =
            self.templates
                .render(&format!("mail/{template}.html"), language, ctx.clone())?;
        let text = self
            .templates
            .render(&format!("mail/{template}.txt"), language, ctx)?;
        Ok(OutgoingMail {
            to_email: subscriber.email.clone(),
            to_name: name,
            language,
            subject: self
                .templates
                .text(language, &format!("mail.{template}.subject")),
            text,
            html,
            unsubscribe_url,
            from: None,
            reply_to: None,
            list_id: None,
            message_id: None,
        })
    }
}
