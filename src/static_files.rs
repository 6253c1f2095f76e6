//! Files served under `/static`, embedded in the binary.

use axum::http::header;
use axum::response::IntoResponse;

/// Our browser client, API-compatible with the original `hookbox.js`.
pub const HOOKBOX_JS: &str = include_str!("../static/hookbox.js");

/// The same client as an ES module: the script, then its exports.
pub const HOOKBOX_MJS: &str = concat!(
    include_str!("../static/hookbox.js"),
    "\n// ES module exports (the script above also sets globalThis.hookbox).\n",
    "const hookbox = globalThis.hookbox;\n",
    "export default hookbox;\n",
    "export const connect = (...args) => hookbox.connect(...args);\n",
    "export const { Connection, Subscription, logging } = hookbox;\n",
);

/// The page at `/`: what this server is and where its parts are, for whoever opens hookbox's
/// address in a browser. `{{VERSION}}`, `{{URL}}` and `{{DEMO}}` are filled in by [`landing`].
const LANDING: &str = include_str!("../static/landing/index.html");

/// The landing page for a server reached at `url`, with a link to its demo if it runs one.
pub fn landing(url: &str, demo_port: Option<u16>) -> String {
    let demo = match demo_port {
        Some(port) => format!(
            "<li>Demo chat: <a href=\"http://127.0.0.1:{port}/\">http://127.0.0.1:{port}/</a> \
             (open it in two tabs)</li>"
        ),
        None => "<li>Demo chat: start hookbox with <code>--demo</code> to get one</li>".to_owned(),
    };
    LANDING
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{URL}}", url)
        .replace("{{DEMO}}", &demo)
}

/// TypeScript declarations of the client's API.
pub const HOOKBOX_D_TS: &str = include_str!("../static/hookbox.d.ts");

fn script(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
}

/// `/static/hookbox.js` (also served as `hookbox.min.js`, the name many pages load).
pub async fn hookbox_js() -> impl IntoResponse {
    script("text/javascript; charset=utf-8", HOOKBOX_JS)
}

/// `/static/hookbox.mjs`: `import hookbox from 'http://HOST:8001/static/hookbox.mjs'`.
pub async fn hookbox_mjs() -> impl IntoResponse {
    script("text/javascript; charset=utf-8", HOOKBOX_MJS)
}

/// `/static/hookbox.d.ts`.
pub async fn hookbox_d_ts() -> impl IntoResponse {
    script("application/typescript; charset=utf-8", HOOKBOX_D_TS)
}
