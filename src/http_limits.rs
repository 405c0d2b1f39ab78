//! Limits that keep slow or greedy clients from holding the service: a client (an address, an
//! IPv6 /64) may have only so many requests in progress at once, and a request body must keep
//! arriving (an idle limit between chunks) and be complete within a total budget. Health checks
//! and metrics are exempt, so a prober is answered whatever one client is doing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::client::network_of_client;
use crate::error::ApiError;

/// Seconds a client told to slow down is asked to wait.
const RETRY_AFTER_SECS: u64 = 5;

/// Requests in progress per client network.
pub struct ClientLimits {
    per_client: usize,
    /// Which proxies to believe about the client's address, and the IPv6 network size a client
    /// is counted by (`ENLACE_TRUSTED_PROXIES`, `ENLACE_IPV6_PREFIX`).
    trusted_proxies: Vec<IpAddr>,
    ipv6_prefix: u8,
    body_idle: Duration,
    body_total: Duration,
    in_progress: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One request counted against its client until dropped.
struct Held {
    client: IpAddr,
    in_progress: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

impl ClientLimits {
    pub fn new(
        per_client: usize,
        body_idle: Duration,
        body_total: Duration,
        trusted_proxies: Vec<IpAddr>,
        ipv6_prefix: u8,
    ) -> Self {
        Self {
            per_client,
            trusted_proxies,
            ipv6_prefix,
            body_idle,
            body_total,
            in_progress: Default::default(),
        }
    }

    fn enter(&self, client: IpAddr) -> Option<Held> {
        let mut counts = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(client).or_default();
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        Some(Held {
            client,
            in_progress: self.in_progress.clone(),
        })
    }
}

/// The body as the handler reads it, cut off with a timeout error when the client stops sending
/// for `idle` or has not finished within `total`.
fn timed(payload: Payload, idle: Duration, total: Duration) -> Payload {
    let deadline = Instant::now() + total;
    let stream =
        futures_util::stream::unfold((payload, false), move |(mut payload, ended)| async move {
            if ended {
                return None;
            }
            let until = (Instant::now() + idle).min(deadline);
            match tokio::time::timeout_at(until, payload.next()).await {
                Ok(Some(item)) => {
                    let failed = item.is_err();
                    Some((item, (payload, failed)))
                }
                Ok(None) => None,
                Err(_) => {
                    let late = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body arrived too slowly",
                    );
                    Some((Err(PayloadError::Io(late)), (payload, true)))
                }
            }
        });
    Payload::Stream {
        payload: Box::pin(stream),
    }
}

/// Raises the soft limit on open files to the hard one (a common service default is 1,024,
/// which a few hundred slow connections would use up). Returns the limit in force.
#[cfg(target_os = "linux")]
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(not(target_os = "linux"))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

/// Whether a body-read error is this module's timeout.
pub fn is_body_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

pub async fn limit_clients(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let exempt = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    let limits = req.app_data::<web::Data<ClientLimits>>().cloned();
    let (Some(limits), false) = (limits, exempt) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let client = network_of_client(req.request(), &limits.trusted_proxies, limits.ipv6_prefix);
    let held = match client {
        Some(client) => match limits.enter(client) {
            Some(held) => Some(held),
            None => {
                // Answered at once without reading the body; the connection is closed, which
                // gives its file descriptor back.
                let mut response = ApiError::TooManyRequests {
                    retry_after_secs: RETRY_AFTER_SECS,
                }
                .error_response();
                response.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
                return Ok(req.into_response(response).map_into_right_body());
            }
        },
        None => None,
    };
    let (http, payload) = req.into_parts();
    let req = ServiceRequest::from_parts(http, timed(payload, limits.body_idle, limits.body_total));
    let response = next.call(req).await;
    drop(held);
    response.map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let limits = ClientLimits::new(
            2,
            Duration::from_secs(1),
            Duration::from_secs(2),
            Vec::new(),
            64,
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.enter(a).unwrap();
        let _second = limits.enter(a).unwrap();
        assert!(limits.enter(a).is_none());
        assert!(limits.enter(b).is_some(), "another client is not affected");
        drop(first);
        assert!(limits.enter(a).is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_one() {
        let raised = raise_open_file_limit().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed to it.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!((limit.rlim_cur, raised), (limit.rlim_max, limit.rlim_max));
    }
}
