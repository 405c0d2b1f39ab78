//! Serving under a sub-path: when `ENLACE_PUBLIC_URL` has a path (`https://example.org/lista`),
//! every link and form Enlace writes starts with it, and requests are accepted with it or
//! without it, so a reverse proxy may pass the path on or strip it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::middleware::Next;
use actix_web::web;

/// The path of the public URL without its trailing slash (`/lista`); empty at the root.
#[derive(Clone, Debug)]
pub struct BasePath(pub String);

impl BasePath {
    pub fn of(public_url: &url::Url) -> Self {
        Self(public_url.path().trim_end_matches('/').to_owned())
    }
}

/// Routes `/lista/confirm/…` as `/confirm/…`; other paths are left as they are.
pub async fn strip_base_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let base = req
        .app_data::<web::Data<BasePath>>()
        .map(|b| b.0.clone())
        .unwrap_or_default();
    if !base.is_empty() {
        let rest = req
            .path()
            .strip_prefix(base.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'));
        if let Some(rest) = rest {
            let path = if rest.is_empty() { "/" } else { rest };
            let target = match req.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            if let Ok(uri) = target.parse::<Uri>() {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}
