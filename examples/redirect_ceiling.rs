//! The click benchmark's ceiling: a bare actix-web handler that answers `GET /l/{newsletter}/{link}`
//! with a 302 to a fixed address, with no signature check, no counting and no middleware.
//! `cargo run --release --example redirect_ceiling -- 127.0.0.1:18083`

use actix_web::{http::header, web, App, HttpResponse, HttpServer};

async fn follow(_path: web::Path<(String, String)>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "https://example.org/town-hall"))
        .finish()
}

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18083".into());
    actix_web::rt::System::new().block_on(
        HttpServer::new(|| App::new().route("/l/{newsletter}/{link}", web::get().to(follow)))
            .bind(listen)?
            .run(),
    )
}
