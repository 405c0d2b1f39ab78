//! The console's stylesheet and scripts, compiled into the binary and served by Enlace itself
//! (no CDN). Their URLs carry a hash of their content, so browsers may keep them for a year
//! and still never use a stale copy after an upgrade.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../../../assets/console.css");
const JS: &str = include_str!("../../../assets/console.js");
const SEGMENTS_JS: &str = include_str!("../../../assets/segments.js");

/// A short hash of both files, put in their URLs (`console.css?v=…`).
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let digest = Sha256::new()
            .chain_update(CSS.as_bytes())
            .chain_update(JS.as_bytes())
            .chain_update(SEGMENTS_JS.as_bytes())
            .finalize();
        crate::tokens::hex(&digest[..6])
    })
}

pub async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "segments.js" => (SEGMENTS_JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(body)
}
