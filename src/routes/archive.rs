//! The public archive, with no sign-in: each language's list of published newsletters, a
//! newsletter's page (its public copy shown in a sandboxed frame), the copy itself for that frame,
//! and an Atom feed per language. What is not public (not archived, not sent, withdrawn, unknown)
//! gets one and the same 404 page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Datelike, NaiveDateTime, TimeZone};
use minijinja::{context, Value};
use serde::Deserialize;

use super::{negotiate_language, Page};
use crate::db::ids::NewsletterId;
use crate::domain::Language;
use crate::email::newsletter::{list_url, page_url};
use crate::error::ApiError;
use crate::services::archive::{self as service, ArchiveError, Published, Publishing};
use crate::state::AppState;

/// The archive page's policy: the public pages' own, and a frame from Enlace itself (the copy).
pub fn page_content_security_policy() -> String {
    format!(
        "{}; frame-src 'self'",
        super::pages::CONTENT_SECURITY_POLICY
    )
}

/// The copy in its frame: a sandbox without scripts, forms or same-origin rights (links may open
/// the whole window or a new one, when clicked); nothing fetched but images; framed by Enlace only.
const COPY_CONTENT_SECURITY_POLICY: &str = "sandbox allow-popups allow-popups-to-escape-sandbox \
     allow-top-navigation-by-user-activation; default-src 'none'; img-src https: data:; \
     style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::NotFound => Self::NotFound,
            ArchiveError::Db(e) => e.into(),
            ArchiveError::Internal(e) => Self::Internal(e),
        }
    }
}

/// A language as the archive's paths spell it: `en` or `es`, nothing else.
fn path_language(raw: &str) -> Option<Language> {
    Language::ALL.into_iter().find(|l| l.as_str() == raw)
}

fn other(language: Language) -> Language {
    match language {
        Language::En => Language::Es,
        Language::Es => Language::En,
    }
}

fn publishing<'a>(state: &'a AppState, base_url: &'a str) -> Publishing<'a> {
    Publishing {
        templates: &state.templates,
        links: &state.engine.links,
        base_url,
    }
}

/// A date in the configured time zone, for the templates: day, month (from 0) and year, and
/// the ISO date for `<time datetime>`.
fn date(state: &AppState, at: NaiveDateTime) -> Value {
    let zone = state
        .settings
        .time_zone
        .parse::<chrono_tz::Tz>()
        .unwrap_or(chrono_tz::Tz::UTC);
    let local = zone.from_utc_datetime(&at);
    context! {
        day => local.day(),
        month0 => local.month0(),
        year => local.year(),
        date => local.format("%Y-%m-%d").to_string(),
    }
}

fn not_public(state: &AppState, language: Language) -> HttpResponse {
    let list = list_url(&state.settings.base_url(), language);
    Page::render(
        state,
        language,
        StatusCode::NOT_FOUND,
        "archive_gone",
        context! { list_url => list },
    )
}

fn bad_request(state: &AppState, language: Language) -> HttpResponse {
    let text = |key| state.templates.text(language, key);
    Page::render(
        state,
        language,
        StatusCode::BAD_REQUEST,
        "error",
        context! { title => text("errors.bad_request_title"), message => text("errors.bad_request") },
    )
}

fn with_policy(mut response: HttpResponse, policy: &str) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

#[derive(Deserialize)]
pub struct ListQuery {
    page: Option<String>,
}

/// `?page=`: 1 (the newest) up to `MAX_PAGE`, written as plain digits.
fn page_number(raw: Option<&str>) -> Option<i64> {
    match raw {
        None => Some(1),
        Some(raw)
            if !raw.is_empty() && raw.len() <= 4 && raw.bytes().all(|b| b.is_ascii_digit()) =>
        {
            raw.parse()
                .ok()
                .filter(|n| (1..=service::MAX_PAGE).contains(n))
        }
        Some(_) => None,
    }
}

/// `GET /archive/{language}`: the published newsletters, newest first, a page at a time.
pub async fn archive_list(
    req: HttpRequest,
    language: web::Path<String>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(language) = path_language(&language) else {
        return Page::error(&state, negotiate_language(&req), ApiError::NotFound);
    };
    let raw_page = query.ok().map(|q| q.into_inner().page);
    let Some(page) = raw_page.and_then(|p| page_number(p.as_deref())) else {
        return bad_request(&state, language);
    };
    let base = state.settings.base_url();
    let p = publishing(&state, &base);
    let found = service::list(&state.db, &state.archive, p, page, service::PAGE_SIZE).await;
    let found = match found {
        Ok(found) => found,
        Err(e) => return Page::error(&state, language, e.into()),
    };
    let list = list_url(&base, language);
    let items: Vec<Value> = found
        .items
        .iter()
        .map(|n| {
            let copy = n.copy(language);
            let sent = date(&state, n.sent_at);
            context! {
                url => page_url(&base, language, n.id.as_str()),
                subject => &copy.subject,
                lang => copy.written_in.as_str(),
                ..sent
            }
        })
        .collect();
    let alternates: Vec<Value> = Language::ALL
        .iter()
        .map(|l| context! { hreflang => l.as_str(), href => list_url(&base, *l) })
        .chain(std::iter::once(
            context! { hreflang => "x-default", href => list_url(&base, Language::En) },
        ))
        .collect();
    Page::render(
        &state,
        language,
        StatusCode::OK,
        "archive_list",
        context! {
            items,
            alternates,
            feed_url => format!("{list}/feed.atom"),
            other_url => list_url(&base, other(language)),
            other_lang => other(language).as_str(),
            newer_url => (page > 1).then(|| match page {
                2 => list.clone(),
                _ => format!("{list}?page={}", page - 1),
            }),
            older_url => found.more.then(|| format!("{list}?page={}", page + 1)),
        },
    )
}

/// The newsletter `raw_id` in the archive of `raw_language`, or the answer to give instead.
async fn published(
    state: &AppState,
    req: &HttpRequest,
    (raw_language, raw_id): (&str, &str),
) -> Result<(Language, std::sync::Arc<Published>), HttpResponse> {
    let Some(language) = path_language(raw_language) else {
        return Err(Page::error(
            state,
            negotiate_language(req),
            ApiError::NotFound,
        ));
    };
    let Some(id) = super::hyphenated_uuid(raw_id).and_then(|id| NewsletterId::parse(&id)) else {
        return Err(not_public(state, language));
    };
    let base = state.settings.base_url();
    match service::find(&state.db, &state.archive, publishing(state, &base), id).await {
        Ok(found) => Ok((language, found)),
        Err(ArchiveError::NotFound) => Err(not_public(state, language)),
        Err(e) => Err(Page::error(state, language, e.into())),
    }
}

/// `GET /archive/{language}/{id}`: the newsletter as readers of that language got it, in a
/// sandboxed frame, with links to its other language and the feed.
pub async fn archive_page(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (language, found) = match published(&state, &req, (&path.0, &path.1)).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let base = state.settings.base_url();
    let id = found.id.as_str();
    let copy = found.copy(language);
    let mut alternates: Vec<Value> = Language::ALL
        .into_iter()
        .filter(|l| found.copy(*l).written_in == *l)
        .map(|l| context! { hreflang => l.as_str(), href => page_url(&base, l, id) })
        .collect();
    alternates
        .push(context! { hreflang => "x-default", href => page_url(&base, Language::En, id) });
    let page = page_url(&base, language, id);
    let response = Page::render(
        &state,
        language,
        StatusCode::OK,
        "archive_page",
        context! {
            subject => &copy.subject,
            sent => date(&state, found.sent_at),
            content_lang => copy.written_in.as_str(),
            fallback => copy.written_in != language,
            canonical_url => page_url(&base, copy.written_in, id),
            alternates,
            list_url => list_url(&base, language),
            feed_url => format!("{}/feed.atom", list_url(&base, language)),
            other_url => page_url(&base, other(language), id),
            other_lang => other(language).as_str(),
            content_url => format!("{page}/content"),
            // Room for a newsletter's usual 600 pixels.
            wide => true,
        },
    );
    with_policy(response, &page_content_security_policy())
}

/// `GET /archive/{language}/{id}/content`: the public copy alone, for the page's frame (or to
/// open on its own), sandboxed by its own policy.
pub async fn archive_content(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (language, found) = match published(&state, &req, (&path.0, &path.1)).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let copy = found.copy(language);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_LANGUAGE, copy.written_in.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        // Search engines are pointed at the page around it.
        .insert_header(("x-robots-tag", "noindex"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            COPY_CONTENT_SECURITY_POLICY,
        ))
        .body(copy.html.clone())
}

/// `GET /archive/{language}/feed.atom`: the newest published newsletters as an Atom feed
/// (RFC 4287), each entry a link to its page with a summary that names nobody.
pub async fn archive_feed(
    req: HttpRequest,
    language: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(language) = path_language(&language) else {
        return Page::error(&state, negotiate_language(&req), ApiError::NotFound);
    };
    let base = state.settings.base_url();
    let p = publishing(&state, &base);
    let found = service::list(&state.db, &state.archive, p, 1, service::FEED_SIZE).await;
    let items = match found {
        Ok(found) => found.items,
        Err(e) => return Page::error(&state, language, e.into()),
    };
    match super::archive_feed::feed(&state.templates, &base, language, &items).write_to(Vec::new())
    {
        Ok(xml) => HttpResponse::Ok()
            .content_type("application/atom+xml; charset=utf-8")
            .insert_header((header::CONTENT_LANGUAGE, language.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(xml),
        Err(e) => Page::error(&state, language, ApiError::Internal(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_plain_numbers_within_bounds() {
        assert_eq!(page_number(None), Some(1));
        assert_eq!(page_number(Some("3")), Some(3));
        for bad in ["0", "", "-1", "1.5", "+2", "1001", "99999", "x"] {
            assert_eq!(page_number(Some(bad)), None, "{bad}");
        }
    }
}
