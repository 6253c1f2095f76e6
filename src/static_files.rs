//! Files served under `/static`, embedded in the binary.

use axum::http::header;
use axum::response::IntoResponse;

/// Our browser client, API-compatible with the original `hookbox.js`.
pub const HOOKBOX_JS: &str = include_str!("../static/hookbox.js");

/// `/static/hookbox.js` (also served as `hookbox.min.js`, the name many pages load).
pub async fn hookbox_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        HOOKBOX_JS,
    )
}
