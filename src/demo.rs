//! The built-in demo: a tiny web application that answers hookbox's webhooks and serves a chat
//! page, so that `hookbox --demo` shows the whole loop (browser → hookbox → webhook → web app)
//! on one machine. It is an ordinary HookBox web app, just embedded in the binary.
//!
//! The browser has a session, as with any web app: an `HttpOnly` cookie, which the page's script
//! cannot read and which hookbox hands to the connect webhook because the page is on the web
//! app's own origin. Each page load is a visitor with a name of its own within that session,
//! carried in the page as a signed token that the page sends as its CONNECT payload (a cookie
//! is shared by every tab of the browser, and a tab reconnecting would take the name of
//! whichever tab loaded last).

use crate::protocol::to_ascii_string;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;

const PAGE: &str = include_str!("../static/demo/index.html");
/// The one channel the demo page uses, and the only one the demo lets anyone create or publish to.
const LOBBY: &str = "lobby";
/// Longest chat message the publish webhook lets through.
pub const MAX_MESSAGE_CHARS: usize = 2000;
const ADJECTIVES: [&str; 12] = [
    "amber", "brave", "calm", "deft", "eager", "fuzzy", "gentle", "happy", "jolly", "keen",
    "lucky", "merry",
];
const ANIMALS: [&str; 12] = [
    "otter", "fox", "heron", "lynx", "panda", "koala", "badger", "falcon", "gecko", "ibis",
    "moose", "wren",
];

/// What the create_channel webhook says to any channel but the lobby: the demo has one channel,
/// so one visitor cannot fill the server with channels (nor lock the others out of the chat).
pub const ONLY_LOBBY: &str = "The demo has one channel: lobby";
/// What the connect webhook says to a CONNECT without a name token the demo signed.
pub const NO_TOKEN: &str = "No valid demo name token: open the demo page first";
/// What it says to a CONNECT whose browser did not hand over the demo's session cookie.
pub const NO_SESSION: &str =
    "No demo session: open the demo page first (its HttpOnly cookie names the browser)";
/// The demo's session cookie: one per browser, `HttpOnly`, as a real app's session cookie is.
const SESSION_COOKIE: &str = "demo_session";

struct Demo {
    /// Port of the hookbox server the page connects to.
    hookbox_port: u16,
    /// Signs sessions and name tokens, so that a client can claim neither another browser's
    /// session nor somebody else's name. Kept in a file (see [`signing_key`]) so that a tab
    /// keeps its name through a restart.
    key: [u8; 32],
}

impl Demo {
    /// `value.<hex HMAC of value>`.
    fn signed(&self, value: &str) -> String {
        let tag = self.mac(value).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{value}.{hex}")
    }

    fn mac(&self, value: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(value.as_bytes());
        mac
    }

    /// The value of `<value>.<signature>`, if the signature is ours over `value` (with `scope`
    /// before it, when given).
    fn verified<'a>(&self, signed: &'a str, scope: &str) -> Option<&'a str> {
        let (value, sig) = signed.rsplit_once('.')?;
        let sig = (0..sig.len())
            .step_by(2)
            .map(|i| {
                sig.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()?;
        // Constant-time comparison.
        self.mac(&format!("{scope}{value}"))
            .verify_slice(&sig)
            .ok()?;
        (!value.is_empty()).then_some(value)
    }

    /// The browser's session: its id from a `demo_session` cookie we signed, if any.
    fn session<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        let value = cookie_header.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == SESSION_COOKIE).then_some(v)
        })?;
        self.verified(value, "")
    }

    /// A fresh name for a tab of the browser whose session is `session`, with its signature
    /// over both: `<name>.<hex HMAC>`. Each page load gets one, which the page sends as its
    /// CONNECT payload on every (re)connect: each tab is its own user for as long as it is
    /// open, whatever the other tabs do, and the name is good only with its browser's session.
    fn name_token(&self, session: &str) -> String {
        // 1.44 million names, so that two visitors rarely get the same one (and become one user).
        let n: usize = rand::random_range(0..ADJECTIVES.len() * ANIMALS.len() * 10_000);
        let name = format!(
            "{}-{}-{}",
            ADJECTIVES[n % ADJECTIVES.len()],
            ANIMALS[(n / ADJECTIVES.len()) % ANIMALS.len()],
            n / (ADJECTIVES.len() * ANIMALS.len())
        );
        let signed = self.signed(&format!("{session}/{name}"));
        let sig = signed.rsplit_once('.').map_or("", |(_, s)| s);
        format!("{name}.{sig}")
    }

    /// Who a connect webhook is about: the name in the CONNECT payload's `token`, signed for
    /// the session that the browser's HttpOnly cookie names.
    fn connecting(
        &self,
        form: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<String, &'static str> {
        let cookies = headers
            .get(header::COOKIE)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("");
        let session = self.session(cookies).ok_or(NO_SESSION)?;
        let token = form
            .get("payload")
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p.get("token").and_then(Value::as_str).map(str::to_owned))
            .ok_or(NO_TOKEN)?;
        self.verified(&token, &format!("{session}/"))
            .map(str::to_owned)
            .ok_or(NO_TOKEN)
    }
}

/// The key that signs names: read from a file in the temporary folder, made there (readable by
/// this user only) the first time. A restarted demo signs with the same key, so a tab's name
/// survives the restart; if the file cannot be used, a key of this process's own.
fn signing_key() -> [u8; 32] {
    let path = std::env::temp_dir().join("hookbox-demo-signing.key");
    let read = || {
        std::fs::read(&path)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
    };
    if let Some(key) = read() {
        return key;
    }
    let key: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            use std::io::Write;
            if file.write_all(&key).is_ok() {
                return key;
            }
            key
        }
        // Another demo made it first: use its key.
        Err(_) => read().unwrap_or(key),
    }
}

pub fn router(hookbox_port: u16) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/name", post(new_name))
        .route("/favicon.ico", get(favicon))
        .route("/hookbox/{hook}", post(webhook))
        .with_state(Arc::new(Demo {
            hookbox_port,
            key: signing_key(),
        }))
}

/// The chat page, with a fresh signed name in it, and the browser's session cookie (made on its
/// first visit): the page connects as soon as it loads, so each tab becomes its own user and a
/// newcomer can chat between two tabs.
async fn page(State(demo): State<Arc<Demo>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host))
        .unwrap_or("127.0.0.1");
    let url = format!("http://{host}:{}", demo.hookbox_port);
    let (session, cookie) = demo_session(&demo, &headers);
    let html = PAGE
        .replace("{{HOOKBOX_URL}}", &url)
        .replace("{{NAME_TOKEN}}", &demo.name_token(&session))
        .replace("{{MAX_MESSAGE_CHARS}}", &MAX_MESSAGE_CHARS.to_string());
    (
        [
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
        Html(html),
    )
        .into_response()
}

/// The browser's session id (a new one if it has none we signed) and its `Set-Cookie`.
fn demo_session(demo: &Demo, headers: &HeaderMap) -> (String, String) {
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let session = demo
        .session(cookies)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("s{:032x}", rand::random::<u128>()));
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
        demo.signed(&session)
    );
    (session, cookie)
}

/// A fresh name token, for a page whose token no longer works (the signing key changed).
async fn new_name(State(demo): State<Arc<Demo>>, headers: HeaderMap) -> Response {
    let (session, cookie) = demo_session(&demo, &headers);
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
        demo.name_token(&session),
    )
        .into_response()
}

/// No icon, but no 404 in the console of every visitor either.
async fn favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

fn answer(ok: bool, options: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        to_ascii_string(&json!([ok, options])),
    )
        .into_response()
}

/// Answers every webhook: names come from the CONNECT payload's signed token (good with its
/// browser's HttpOnly session cookie, which hookbox forwards from the page), the lobby gets
/// history and presence and is kept when everyone has left (its conversation stays for the next
/// visitor, until hookbox stops), and publishes are checked (non-empty text, at most
/// [`MAX_MESSAGE_CHARS`] characters).
async fn webhook(
    State(demo): State<Arc<Demo>>,
    Path(hook): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match hook.as_str() {
        "connect" => match demo.connecting(&form, &headers) {
            Ok(name) => answer(true, json!({"name": name})),
            Err(why) => answer(false, json!({ "error": why })),
        },
        "destroy_channel" if form.get("channel_name").map(String::as_str) == Some(LOBBY) => {
            answer(false, json!({}))
        }
        "create_channel" if form.get("channel_name").map(String::as_str) != Some(LOBBY) => {
            answer(false, json!({"error": ONLY_LOBBY}))
        }
        "create_channel" => answer(
            true,
            json!({"history_size": 50, "presenceful": true, "reflective": true,
                   "moderated": false, "moderated_publish": true}),
        ),
        "publish" if form.get("channel_name").map(String::as_str) != Some(LOBBY) => answer(
            false,
            json!({"error": format!("The demo's chat happens in {LOBBY}")}),
        ),
        "publish" => {
            let payload: Value = form
                .get("payload")
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or(Value::Null);
            let text = payload
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_owned();
            let chars = text.chars().count();
            if text.is_empty() {
                answer(false, json!({"error": "Empty message"}))
            } else if chars > MAX_MESSAGE_CHARS {
                let error =
                    format!("Message too long: {chars} characters (at most {MAX_MESSAGE_CHARS})");
                answer(false, json!({"error": error}))
            } else {
                answer(true, json!({"override_payload": {"text": text}}))
            }
        }
        _ => answer(true, json!({})),
    }
}
