//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;

use super::HandlerResult;
use crate::db::{self, DbError};
use crate::error::ApiError;
use crate::startup::AppState;

pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HandlerResult {
    state
        .db
        .run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::Unavailable
        })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

pub async fn metrics(state: web::Data<AppState>) -> HandlerResult {
    let (depth, by_status) = state
        .db
        .run(|conn| -> Result<_, DbError> {
            Ok((
                db::jobs::queue_depth(conn)?,
                db::subscribers::count_subscribers_by_status(conn)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(depth, &by_status)))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI)
}
