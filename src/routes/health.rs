//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::HandlerResult;
use crate::db::{self, DbError};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::StatusView;

pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusView { status: "ok" })
}

pub async fn readyz(state: web::Data<AppState>) -> HandlerResult {
    // A write, not just a connection: with the disk full or the database refusing writes,
    // nothing useful can be done, and a load balancer should know.
    state.db.transaction(db::probe_write).await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable
    })?;
    Ok(HttpResponse::Ok().json(StatusView { status: "ready" }))
}

/// Public totals for anyone; the detail set for a caller with `ENLACE_METRICS_TOKEN`.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HandlerResult {
    let offered = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let detail = match (offered, &state.settings.metrics_token) {
        (None, _) => false,
        // Compared as digests, so the time taken says nothing about the token.
        (Some(offered), Some(token)) if Sha256::digest(offered) == Sha256::digest(token) => true,
        (Some(_), _) => return Err(ApiError::Unauthorized),
    };
    let (depth, by_status) = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let by_status = if detail {
                Some(db::subscribers::count_subscribers_by_status(conn)?)
            } else {
                None
            };
            Ok((db::jobs::queue_depth(conn)?, by_status))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(depth, by_status.as_deref())))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI)
}
