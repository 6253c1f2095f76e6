//! The built-in demo: a tiny web application that answers hookbox's webhooks and serves a chat
//! page, so that `hookbox --demo` shows the whole loop (browser → hookbox → webhook → web app)
//! on one machine. It is an ordinary HookBox web app, just embedded in the binary.

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
const COOKIE: &str = "demo_user";
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

struct Demo {
    /// Port of the hookbox server the page connects to.
    hookbox_port: u16,
    /// Signs the name cookie, so that a client cannot claim somebody else's name. Random per
    /// process: names do not outlive a restart.
    key: [u8; 32],
}

impl Demo {
    /// A `Set-Cookie` value with a fresh, signed name.
    fn name_cookie(&self) -> String {
        // 1.44 million names, so that two visitors rarely get the same one (and become one user).
        let n: usize = rand::random_range(0..ADJECTIVES.len() * ANIMALS.len() * 10_000);
        let name = format!(
            "{}-{}-{}",
            ADJECTIVES[n % ADJECTIVES.len()],
            ANIMALS[(n / ADJECTIVES.len()) % ANIMALS.len()],
            n / (ADJECTIVES.len() * ANIMALS.len())
        );
        format!("{COOKIE}={name}.{}; Path=/; SameSite=Lax", self.sign(&name))
    }

    fn sign(&self, name: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(name.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The name in a `demo_user=<name>.<signature>` cookie, if the signature is ours.
    fn cookie_name(&self, headers: &HeaderMap) -> Option<String> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        let value = cookies.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then_some(v)
        })?;
        let (name, sig) = value.rsplit_once('.')?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(name.as_bytes());
        let sig = (0..sig.len())
            .step_by(2)
            .map(|i| {
                sig.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()?;
        // Constant-time comparison.
        mac.verify_slice(&sig).ok()?;
        (!name.is_empty()).then(|| name.to_owned())
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
            key: rand::random(),
        }))
}

/// The chat page. Every page load gets a fresh name in a cookie (readable by the page's script,
/// so that `hookbox.connect` forwards it to hookbox, which forwards it to our connect webhook).
/// The page connects as soon as it loads, so each tab becomes its own user and a newcomer can
/// chat between two tabs.
async fn page(State(demo): State<Arc<Demo>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host))
        .unwrap_or("127.0.0.1");
    let url = format!("http://{host}:{}", demo.hookbox_port);
    let html = Html(PAGE.replace("{{HOOKBOX_URL}}", &url));
    ([(header::SET_COOKIE, demo.name_cookie())], html).into_response()
}

/// A fresh name for a page whose cookie no longer works (hookbox restarted: names are signed
/// with a per-process key), in the same cookie.
async fn new_name(State(demo): State<Arc<Demo>>) -> Response {
    ([(header::SET_COOKIE, demo.name_cookie())], "").into_response()
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

/// Answers every webhook: names come from the cookie, channels get history and presence, and
/// publishes are checked (non-empty text, at most [`MAX_MESSAGE_CHARS`] characters).
async fn webhook(
    State(demo): State<Arc<Demo>>,
    Path(hook): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match hook.as_str() {
        "connect" => match demo.cookie_name(&headers) {
            Some(name) => answer(true, json!({"name": name})),
            None => answer(
                false,
                json!({"error": "No valid demo_user cookie: open the demo page first"}),
            ),
        },
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
