//! HTTP routes. The table below is the single list of what the server serves: it registers the
//! handlers, and a test compares it with openapi.yaml in both directions.

mod archive;
mod archive_feed;
pub mod base_path;
mod clicks;
mod confirm;
pub mod console;
mod events;
mod exports;
mod fields;
mod health;
mod imports;
mod interests;
pub(crate) mod json;
mod manage;
mod newsletters;
pub(crate) mod pages;
mod results;
mod segments;
mod sends;
mod staff;
mod subscribe;
pub(crate) mod subscribers;
mod webhooks;

use actix_web::http::header::{self, AcceptLanguage, Header};
use actix_web::{web, HttpRequest, HttpResponse};

pub use pages::Page;

use crate::domain::Language;
use crate::error::ApiError;
use crate::state::AppState;

pub use crate::client::{client_ip, client_network};

/// `"path" => { method => handler, … }`, optionally `"path" (wrap middleware) => { … }` for a
/// middleware on that resource alone.
macro_rules! routes {
    ($( $path:literal $(($wrap:expr))? => { $( $method:ident => $handler:path ),+ $(,)? } ),* $(,)?) => {
        /// (method, path) of every route served.
        pub const ROUTES: &[(&str, &str)] = &[ $( $( (stringify!($method), $path) ),+ ),* ];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $({
                // The Allow header of this resource's 405: ", GET, POST" without the first ", ".
                const ALLOW: &str = concat!($( ", ", method_name!($method) ),+);
                cfg.service(
                    web::resource($path)
                        $( .wrap($wrap) )?
                        $( .route(web::$method().to($handler)) )+
                        .default_service(web::to(|| method_not_allowed(&ALLOW[2..]))),
                );
            })*
        }
    };
}

/// The HTTP method a route-table entry names, as the Allow header spells it.
macro_rules! method_name {
    (get) => {
        "GET"
    };
    (post) => {
        "POST"
    };
    (put) => {
        "PUT"
    };
    (patch) => {
        "PATCH"
    };
    (delete) => {
        "DELETE"
    };
    (head) => {
        "HEAD"
    };
}

routes! {
    // First: a widely shared newsletter's counted links are the busiest route by far, and
    // requests are matched against the resources in this order.
    "/l/{newsletter}/{link}" => { get => clicks::follow, head => clicks::follow },
    "/api/v1/subscribe" => { post => subscribe::subscribe },
    "/api/v1/confirm" => { post => confirm::confirm_json },
    "/confirm/{token}" => { get => confirm::confirm_page, post => confirm::confirm_form },
    "/confirm/{token}/renew" => { post => confirm::renew },
    "/unsubscribe/{token}" => { get => manage::unsubscribe_page, post => manage::unsubscribe },
    "/preferences/{token}" => { get => manage::preferences_page, post => manage::update_preferences },
    "/archive/{language}" => { get => archive::archive_list },
    "/archive/{language}/feed.atom" => { get => archive::archive_feed },
    "/archive/{language}/{id}" => { get => archive::archive_page },
    "/archive/{language}/{id}/content" => { get => archive::archive_content },
    "/api/v1/auth/token" => { post => staff::issue_token },
    "/api/v1/staff" => { get => staff::list_staff, post => staff::create_staff },
    "/api/v1/staff/me/password" => { put => staff::change_own_password },
    "/api/v1/staff/invitations" => { get => staff::list_invitations, post => staff::invite_staff },
    "/api/v1/staff/invitations/{id}" => { delete => staff::withdraw_invitation },
    "/api/v1/staff/invitations/{id}/resend" => { post => staff::resend_invitation },
    "/api/v1/staff/{id}" => { patch => staff::update_staff },
    "/api/v1/api-keys" => { get => staff::list_api_keys, post => staff::create_api_key },
    "/api/v1/api-keys/{id}" => { delete => staff::revoke_api_key },
    "/api/v1/audit-log" => { get => staff::audit_log },
    "/api/v1/fields" => { get => fields::list_fields, post => fields::create_field },
    "/api/v1/fields/{key}" => {
        get => fields::get_field,
        patch => fields::update_field,
        delete => fields::delete_field,
    },
    "/api/v1/subscribers" => {
        get => subscribers::list_subscribers,
        post => subscribers::upsert_subscriber,
    },
    "/api/v1/subscribers/{id}" => {
        get => subscribers::get_subscriber,
        patch => subscribers::update_subscriber,
        delete => subscribers::erase_subscriber,
    },
    "/api/v1/subscribers/{id}/data" => { get => subscribers::subscriber_data },
    "/api/v1/imports" => { get => imports::list_imports, post => imports::create_import },
    "/api/v1/imports/{id}" => { get => imports::get_import },
    "/api/v1/imports/{id}/cancel" => { post => imports::cancel_import },
    // gzip when the client accepts it: exports are large and compress well.
    "/api/v1/exports/subscribers" (actix_web::middleware::Compress::default()) => {
        get => exports::export_subscribers,
    },
    "/api/v1/interests" => { get => interests::list_interests, post => interests::create_interest },
    "/api/v1/interests/{slug}" => {
        get => interests::get_interest,
        patch => interests::update_interest,
        delete => interests::delete_interest,
    },
    "/api/v1/segments" => { get => segments::list_segments, post => segments::create_segment },
    "/api/v1/segments/preview" => { post => segments::preview_segment },
    "/api/v1/segments/count" => { post => segments::count_segment },
    "/api/v1/segments/{id}" => {
        get => segments::get_segment,
        patch => segments::update_segment,
        delete => segments::delete_segment,
    },
    "/api/v1/newsletters" => {
        get => newsletters::list_newsletters,
        post => newsletters::create_newsletter,
    },
    "/api/v1/newsletters/{id}" => {
        get => newsletters::get_newsletter,
        patch => newsletters::update_newsletter,
        delete => newsletters::delete_newsletter,
    },
    "/api/v1/newsletters/{id}/preview" => { post => newsletters::preview_newsletter },
    "/api/v1/newsletters/{id}/results" => { get => newsletters::newsletter_results },
    "/api/v1/newsletters/{id}/test" => { post => newsletters::test_newsletter },
    "/api/v1/newsletters/{id}/send" => { post => sends::send_newsletter },
    "/api/v1/newsletters/{id}/pause" => { post => sends::pause_newsletter },
    "/api/v1/newsletters/{id}/resume" => { post => sends::resume_newsletter },
    "/api/v1/newsletters/{id}/cancel" => { post => sends::cancel_newsletter },
    "/api/v1/newsletters/{id}/archived" => { put => newsletters::set_newsletter_archived },
    "/api/v1/events" => { post => events::record_events },
    "/api/v1/events/ses" => { post => events::ses_events },
    "/api/v1/events/postmark" => { post => events::postmark_events },
    "/api/v1/events/sendgrid" => { post => events::sendgrid_events },
    "/api/v1/events/mailgun" => { post => events::mailgun_events },
    "/api/v1/webhooks" => { get => webhooks::list_webhooks, post => webhooks::create_webhook },
    "/api/v1/webhooks/{id}" => {
        get => webhooks::get_webhook,
        patch => webhooks::update_webhook,
        delete => webhooks::delete_webhook,
    },
    "/api/v1/webhooks/{id}/test" => { post => webhooks::test_webhook },
    "/api/v1/webhooks/{id}/rotate-secret" => { post => webhooks::rotate_webhook_secret },
    "/api/v1/webhooks/{id}/deliveries" => { get => webhooks::list_deliveries },
    "/healthz" => { get => health::healthz },
    "/readyz" => { get => health::readyz },
    "/metrics" => { get => health::metrics },
    "/openapi.yaml" => { get => health::openapi },
}

/// 405 problem+json with the methods the path does serve in `Allow` (RFC 9110, section 15.5.6).
async fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed);
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

pub async fn not_found() -> HandlerResult {
    Err(ApiError::NotFound)
}

/// Applies the per-network limit on public POSTs; answers 429 with Retry-After when exceeded.
pub fn check_rate_limit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let (Some(limiter), Some(network)) = (&state.limiter, client_network(req, &state.settings))
    else {
        return Ok(());
    };
    limiter.check_key(&network).map_err(|not_until| {
        use governor::clock::{Clock, DefaultClock};
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        }
    })
}

/// The reader's language when no subscriber is known: Accept-Language, else English.
pub fn negotiate_language(req: &HttpRequest) -> Language {
    AcceptLanguage::parse(req)
        .ok()
        .and_then(|accept| {
            accept.ranked().into_iter().find_map(|pref| match pref {
                header::Preference::Specific(tag) => Language::from_tag(tag.primary_language()),
                header::Preference::Any => None,
            })
        })
        .unwrap_or_default()
}

/// Consent evidence from the request: client address and user agent (bounded).
pub fn evidence(state: &AppState, req: &HttpRequest) -> crate::signup::Evidence {
    crate::signup::Evidence {
        ip: client_ip(req, &state.settings.trusted_proxies).map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    }
}

pub fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

pub type HandlerResult = Result<HttpResponse, ApiError>;

/// A UUID written as the document's UUID pattern has it (hyphenated, 36 characters), in the
/// lower-case form ids are stored in; `None` for anything else.
pub fn hyphenated_uuid(raw: &str) -> Option<String> {
    (raw.len() == 36)
        .then(|| uuid::Uuid::parse_str(raw).ok())
        .flatten()
        .map(|u| u.to_string())
}

/// Reads a JSON body of up to `limit` bytes, for the few staff endpoints whose bodies may be
/// larger than `ENLACE_MAX_BODY_BYTES` (newsletter content). Call after the credentials check.
pub async fn large_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    if media_type(req) != "application/json" {
        return Err(ApiError::UnsupportedMediaType(
            "send application/json".into(),
        ));
    }
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(limit))?
        .map_err(|e| match e.as_error::<actix_web::error::PayloadError>() {
            Some(e) if crate::http_limits::is_body_timeout(e) => ApiError::RequestTimeout,
            _ => ApiError::BadRequest(e.to_string()),
        })?;
    parse_json(&body)
}

/// Parses JSON as the JSON extractor would: a wrong field is a 422, broken JSON a 400.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    json::from_value(value)
}
