//! The benchmark ceiling: a bare actix-web handler that parses the same JSON as
//! `POST /api/v1/subscribe` and answers 202, with no database and no mail.
//! `cargo run --release --example ceiling -- 127.0.0.1:18081`

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Subscribe {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interests: Vec<String>,
    #[serde(default)]
    language: Option<String>,
}

async fn subscribe(_body: web::Json<Subscribe>) -> HttpResponse {
    HttpResponse::Accepted().json(serde_json::json!({ "status": "pending" }))
}

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    actix_web::rt::System::new().block_on(
        HttpServer::new(|| App::new().route("/api/v1/subscribe", web::post().to(subscribe)))
            .bind(listen)?
            .run(),
    )
}
