//! Staff invitations: an admin invites an address with a role and a console language; Enlace
//! mails a single-use link (through the outbox) where the invitee chooses a password and is
//! signed in. A link's token is random and stored only as its SHA-256; it expires, is used once,
//! and dies when the invitation is withdrawn or sent again.

use governor::DefaultKeyedRateLimiter;
use tokio::sync::Notify;

use super::{hash_off_thread, limit_attempt_on, ROLE_MESSAGE};
use crate::auth::{self, passwords, Principal, Role};
use crate::db::staff::{self as staff_db, Invitation, InvitationId};
use crate::db::{self, Db, DbError};
use crate::domain::{Email, FieldErrors, Language};

/// How long an invitation's link works.
pub const INVITATION_DAYS: i64 = 7;

/// An invitation as asked for, not yet checked.
pub struct NewInvitation {
    pub email: String,
    pub role: String,
    pub language: String,
}

/// An open invitation and who made it (their address, while their account exists).
pub struct OpenInvitation {
    pub invitation: Invitation,
    pub invited_by: Option<String>,
}

impl OpenInvitation {
    pub fn expired(&self) -> bool {
        self.invitation.expires_at <= db::now()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("invalid invitation")]
    Invalid(FieldErrors),
    #[error("a staff account with this email exists")]
    HasAccount,
    #[error("this email has an open invitation; send it again or withdraw it")]
    AlreadyInvited,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for InviteError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Where the mailed links lead: the console's invitation page (`https://…/admin/invitation/`),
/// followed by the token.
pub struct Links<'a> {
    pub base: &'a str,
    pub mail_ready: &'a Notify,
}

/// Invites `input.email`: the invitation, its mail and the audit entry in one transaction. An
/// address that has an account or an open invitation is refused.
pub async fn invite(
    db: &Db,
    links: Links<'_>,
    actor: &Principal,
    ip: Option<&str>,
    input: NewInvitation,
) -> Result<OpenInvitation, InviteError> {
    let mut errors = FieldErrors::new();
    let email = Email::parse(&input.email)
        .map_err(|e| errors.add("email", e))
        .ok();
    let role = Role::parse(&input.role);
    if role.is_none() {
        errors.add("role", ROLE_MESSAGE);
    }
    let language = Language::parse(input.language.trim())
        .map_err(|e| errors.add("language", e))
        .ok();
    let (Some(email), Some(role), Some(language), true) =
        (email, role, language, errors.is_empty())
    else {
        return Err(InviteError::Invalid(errors));
    };
    let token = crate::tokens::random_token();
    let now = db::now();
    let invitation = Invitation {
        id: InvitationId::new(),
        email: email.as_str().to_owned(),
        role,
        language: language.as_str().to_owned(),
        token_hash: crate::tokens::hash_token(&token),
        invited_by: actor.staff_id().cloned(),
        created_at: now,
        sent_at: now,
        expires_at: now + chrono::Duration::days(INVITATION_DAYS),
    };
    let stored = invitation.clone();
    let link = links.base.to_owned();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let invited_by = db
        .transaction(move |conn| {
            if staff_db::find_staff_by_email(conn, &stored.email)?.is_some() {
                return Err(InviteError::HasAccount);
            }
            if staff_db::find_invitation_by_email(conn, &stored.email)?.is_some() {
                return Err(InviteError::AlreadyInvited);
            }
            match staff_db::insert_invitation(conn, &stored) {
                // Two admins inviting the same address at once.
                Err(e) if db::is_unique_violation(&e) => return Err(InviteError::AlreadyInvited),
                other => other?,
            }
            crate::jobs::enqueue_invitation_mail(conn, &link, &token, now)?;
            actor.audit(
                conn,
                ip.as_deref(),
                "staff.invite",
                "staff_invitation",
                Some(&stored.id),
            )?;
            let by = match &stored.invited_by {
                Some(id) => staff_db::find_staff(conn, id)?.map(|m| m.email),
                None => None,
            };
            Ok(by)
        })
        .await?;
    links.mail_ready.notify_one();
    tracing::info!(invitation_id = %invitation.id, role = role.as_str(), "staff invitation sent");
    Ok(OpenInvitation {
        invitation,
        invited_by,
    })
}

/// Every open invitation, newest first (expired ones too, until withdrawn or sent again).
pub async fn list_invitations(db: &Db) -> Result<Vec<OpenInvitation>, DbError> {
    let rows = db
        .run(|conn| staff_db::list_invitations(conn).map_err(DbError::from))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(invitation, invited_by)| OpenInvitation {
            invitation,
            invited_by,
        })
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    /// No such open invitation (withdrawn, accepted, or never made).
    #[error("no such open invitation")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for InvitationError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Withdraws an invitation: its link stops working at once.
pub async fn withdraw(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: InvitationId,
) -> Result<(), InvitationError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| {
        if !staff_db::delete_invitation(conn, &id)? {
            return Err(InvitationError::NotFound);
        }
        actor.audit(
            conn,
            ip.as_deref(),
            "staff.invitation_withdraw",
            "staff_invitation",
            Some(&id),
        )?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// Sends an invitation again with a new link, valid for another `INVITATION_DAYS`; the link
/// sent before stops working (and its mail, if not sent yet, is not sent).
pub async fn resend(
    db: &Db,
    links: Links<'_>,
    actor: &Principal,
    ip: Option<&str>,
    id: InvitationId,
) -> Result<Invitation, InvitationError> {
    let token = crate::tokens::random_token();
    let hash = crate::tokens::hash_token(&token);
    let link = links.base.to_owned();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let invitation = db
        .transaction(move |conn| {
            let now = db::now();
            let expires = now + chrono::Duration::days(INVITATION_DAYS);
            if !staff_db::renew_invitation(conn, &id, &hash, now, expires)? {
                return Err(InvitationError::NotFound);
            }
            crate::jobs::enqueue_invitation_mail(conn, &link, &token, now)?;
            actor.audit(
                conn,
                ip.as_deref(),
                "staff.invitation_resend",
                "staff_invitation",
                Some(&id),
            )?;
            staff_db::find_invitation(conn, &id)?.ok_or(InvitationError::NotFound)
        })
        .await?;
    links.mail_ready.notify_one();
    tracing::info!(invitation_id = %invitation.id, "staff invitation sent again");
    Ok(invitation)
}

/// What a visitor of an invitation link may be told: only with a valid link.
#[derive(Clone, Debug)]
pub struct InvitationLink {
    pub email: String,
    pub role: Role,
    pub language: Language,
    pub expires_at: chrono::NaiveDateTime,
}

/// What opening or answering a link can fail with. An unknown, expired, used or withdrawn link
/// is one refusal, alike.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("this invitation link is not valid")]
    Invalid,
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The password chosen breaks a rule; the link stays valid (it is given back, to show the
    /// form again).
    #[error("invalid password")]
    Password(FieldErrors, Box<InvitationLink>),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for LinkError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Every look at an invitation link, valid or not, counts against the client network's
/// attempts (the limit sign-in uses), so links cannot be guessed at speed.
fn count_attempt(limiter: &DefaultKeyedRateLimiter<String>, origin: &str) -> Result<(), LinkError> {
    limit_attempt_on(limiter, format!("invitation:{origin}"))
        .map_err(|retry_after_secs| LinkError::TooManyAttempts { retry_after_secs })
}

fn find_open(conn: &mut db::AnyConnection, token: &str) -> Result<Option<Invitation>, DbError> {
    if !crate::tokens::is_well_formed(token) {
        return Ok(None);
    }
    let hash = crate::tokens::hash_token(token);
    Ok(staff_db::find_open_invitations_by_token(conn, &[hash], db::now())?.pop())
}

/// The invitation a link names, when it is valid now.
pub async fn open_link(
    db: &Db,
    limiter: &DefaultKeyedRateLimiter<String>,
    origin: &str,
    token: String,
) -> Result<InvitationLink, LinkError> {
    count_attempt(limiter, origin)?;
    let found = db.run(move |conn| find_open(conn, &token)).await?;
    found.map(link_of).ok_or(LinkError::Invalid)
}

fn link_of(invitation: Invitation) -> InvitationLink {
    InvitationLink {
        email: invitation.email,
        role: invitation.role,
        language: Language::parse(&invitation.language).unwrap_or_default(),
        expires_at: invitation.expires_at,
    }
}

/// The password an invitee chose, typed twice.
pub struct ChosenPassword {
    pub password: String,
    pub repeated: String,
}

/// Accepts an invitation: the account is created with the chosen password (the rules every
/// password follows) and the invitation's role and language, the invitation is used up, and a
/// console session begins — all in one transaction.
pub async fn accept(
    db: &Db,
    limiter: &DefaultKeyedRateLimiter<String>,
    origin: &str,
    ip: Option<&str>,
    token: String,
    chosen: ChosenPassword,
    limits: auth::sessions::SessionLimits,
) -> Result<(auth::sessions::Started, staff_db::StaffMember), LinkError> {
    count_attempt(limiter, origin)?;
    let lookup = token.clone();
    let Some(found) = db.run(move |conn| find_open(conn, &lookup)).await? else {
        return Err(LinkError::Invalid);
    };
    let ChosenPassword { password, repeated } = chosen;
    let mut errors = FieldErrors::new();
    if let Err(e) = passwords::check_new_password(&password) {
        errors.add("password", e);
    } else if password != repeated {
        errors.add("password_again", "must be the same password");
    }
    errors
        .into_result()
        .map_err(|errors| LinkError::Password(errors, Box::new(link_of(found))))?;
    let hash = hash_off_thread(password).await?;
    let ip = ip.map(str::to_owned);
    let (started, member) = db
        .transaction(move |conn| {
            // Looked up again inside the transaction: of two answers to one link, one wins.
            let Some(invitation) = find_open(conn, &token)? else {
                return Err(LinkError::Invalid);
            };
            if !staff_db::delete_invitation(conn, &invitation.id)? {
                return Err(LinkError::Invalid);
            }
            let email = Email::parse(&invitation.email).map_err(|_| LinkError::Invalid)?;
            let mut member =
                match auth::accounts::create_staff_member(conn, &email, invitation.role, hash) {
                    // An account made for the address another way since: the link is spent.
                    Err(e) if db::is_unique_violation(&e) => return Err(LinkError::Invalid),
                    other => other?,
                };
            let language = staff_db::StaffPreferences {
                language: Some(Some(invitation.language.clone())),
                ..Default::default()
            };
            staff_db::update_preferences(conn, &member.id, &language)?;
            member.language = Some(invitation.language.clone());
            auth::Actor {
                actor_type: "staff",
                actor_id: Some(member.id.as_str()),
                ip: ip.as_deref(),
            }
            .record(conn, "staff.invitation_accept", "staff", Some(&member.id))?;
            let started = auth::sessions::start(conn, &member, db::now(), limits)?;
            Ok((started, member))
        })
        .await?;
    tracing::info!(staff_id = %member.id, role = member.role.as_str(), "staff invitation accepted");
    Ok((started, member))
}
