//! `GET|HEAD /l/{newsletter}/{link}`: a counted link of a newsletter. It leads only to the address
//! the newsletter's own content gives at that place (the tag is checked against both), and
//! counts the click in memory (see `crate::clicks`): nothing about the person or their device is
//! kept, and nothing is written per click.

use std::time::Instant;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};

use super::manage::invalid_link;
use super::{client_ip, hyphenated_uuid, negotiate_language, Page};
use crate::clicks::scanners;
use crate::db::ids::NewsletterId;
use crate::db::newsletter_actions::hour_of;
use crate::state::AppState;

pub async fn follow(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (newsletter, link) = path.into_inner();
    let signer = &state.engine.links;
    let Some((id, (place, tag))) = hyphenated_uuid(&newsletter)
        .and_then(|id| signer.check_place(&id, &link).map(|found| (id, found)))
    else {
        return invalid_link(&state, &req);
    };
    let Some(id) = NewsletterId::parse(&id) else {
        return invalid_link(&state, &req);
    };
    let targets = match state.click_targets.get(&state.db, id).await {
        Ok(Some(targets)) => targets,
        Ok(None) => return invalid_link(&state, &req),
        Err(e) => return Page::error(&state, negotiate_language(&req), e.into()),
    };
    let Some(target) = targets
        .links
        .get(place as usize)
        .filter(|t| signer.check_target(&targets.newsletter_id, place, t, &tag))
    else {
        return invalid_link(&state, &req);
    };
    if targets.counting {
        let agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let address = client_ip(&req, &state.settings.trusted_proxies);
        let client = state.clicks.client(address, agent);
        state.clicks.record(
            targets.newsletter_id.clone(),
            place,
            hour_of(crate::db::now()),
            client,
            scanners::by_request(req.method() == Method::HEAD, agent),
            Instant::now(),
        );
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, target.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Robots-Tag", "noindex"))
        .finish()
}
