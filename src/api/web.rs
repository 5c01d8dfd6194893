//! The web page at `/`: plain HTML, CSS and JavaScript compiled into the binary
//! (`include_str!`), nothing loaded from elsewhere (the CSP in `mod.rs` forbids it), so it
//! works on a closed network. The page itself is in `web/`: `index.html` (the skeleton),
//! `app.css`, `app.js` (live view over SSE, calls table and detail with the SIP ladder,
//! charts on canvas, recordings with player, waveform, spot-check sample and playback log,
//! the long-distance register, approvals; English and Chinese labels).

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");

pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX)
}

pub async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SCRIPT)
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], STYLE)
}
