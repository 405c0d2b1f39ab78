//! Every error the API answers, as RFC 9457 `application/problem+json`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;

pub use crate::domain::FieldErrors;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields")]
    Validation(FieldErrors),
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Missing or wrong HTTP Basic credentials (a provider's webhook): 401 with a Basic challenge.
    #[error("missing or invalid credentials")]
    BasicUnauthorized { realm: &'static str },
    #[error("these credentials do not allow this")]
    Forbidden,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body arrived too slowly")]
    RequestTimeout,
    #[error("service unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The same problem an extractor reported, for handlers that look at the body only after
    /// checking credentials (`Result<web::Json<T>, actix_web::Error>` parameters).
    pub fn from_extractor(error: actix_web::Error) -> Self {
        match error.as_error::<ApiError>() {
            Some(Self::Validation(errors)) => Self::Validation(errors.clone()),
            Some(Self::BadRequest(detail)) => Self::BadRequest(detail.clone()),
            Some(Self::UnsupportedMediaType(detail)) => Self::UnsupportedMediaType(detail.clone()),
            Some(Self::PayloadTooLarge(limit)) => Self::PayloadTooLarge(*limit),
            _ => Self::BadRequest(error.to_string()),
        }
    }
}

/// Seconds a client is asked to wait when the database cannot be reached or written.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// A database that cannot be reached or written for now (a full disk, PostgreSQL restarting)
/// is a 503 with `Retry-After`, not a 500: the request was fine and can be sent again.
impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "the database is unavailable");
            Self::Unavailable
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::one(field, message))
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::Validation(_) => ("validation", "Your request has invalid fields"),
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::NotFound => ("not-found", "Not found"),
            Self::Unauthorized | Self::BasicUnauthorized { .. } => ("unauthorized", "Unauthorized"),
            Self::Forbidden => ("forbidden", "Forbidden"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::Gone(_) => ("gone", "Gone"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Request body too large"),
            Self::RequestTimeout => ("request-timeout", "Request timeout"),
            Self::Unavailable => ("unavailable", "Service unavailable"),
            Self::Internal(_) => ("internal", "Internal server error"),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a FieldErrors>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized | Self::BasicUnauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.kind();
        let detail = match self {
            // The cause chain goes to the log, never to the client.
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                "The server could not complete the request; it has been logged.".to_owned()
            }
            other => other.to_string(),
        };
        let errors = match self {
            Self::Validation(errors) => Some(errors),
            _ => None,
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        if let Self::Unauthorized = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Self::BasicUnauthorized { realm } = self {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            ));
        }
        if let Self::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let Self::Unavailable = self {
            response.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_SECS.to_string()));
        }
        if let Self::RequestTimeout = self {
            response.insert_header((header::CONNECTION, "close"));
        }
        response.json(Problem {
            kind: format!("urn:enlace:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    use super::*;

    #[test]
    fn a_full_database_is_a_503_with_retry_after_not_a_500() {
        // A real SQLite "database or disk is full": the file may not grow past its pages.
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("CREATE TABLE t (x TEXT); PRAGMA max_page_count = 2;")
            .unwrap();
        let full = conn
            .batch_execute(
                "INSERT INTO t SELECT hex(zeroblob(4000)) FROM (SELECT 1 UNION SELECT 2)",
            )
            .unwrap_err();
        let error = ApiError::from(DbError::from(full));
        assert!(matches!(error, ApiError::Unavailable), "{error:?}");
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "5");
        // A request that is simply wrong stays what it was.
        let wrong = conn.batch_execute("SELECT * FROM nowhere").unwrap_err();
        assert!(matches!(
            ApiError::from(DbError::from(wrong)),
            ApiError::Internal(_)
        ));
    }
}
