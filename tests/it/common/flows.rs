//! Assertions and setup steps many tests share: frame key sets, joining a channel, checking that
//! no webhook is pending, the disconnect cascade, server state through the Web API.

use super::{Client, Reply, Server, WebApp, GUARD};
use serde_json::{json, Map, Value};
use std::future::Future;

/// The args of the own SUBSCRIBE frame (without `initial_data`).
pub const OWN_SUBSCRIBE_KEYS: [&str; 7] = [
    "channel_name",
    "history",
    "history_duration",
    "history_size",
    "presence",
    "state",
    "user",
];
/// The args of the own SUBSCRIBE frame when the subscribe reply gave `initial_data`.
pub const OWN_SUBSCRIBE_KEYS_WITH_INITIAL_DATA: [&str; 8] = [
    "channel_name",
    "history",
    "history_duration",
    "history_size",
    "initial_data",
    "presence",
    "state",
    "user",
];
/// The args of a presence SUBSCRIBE / UNSUBSCRIBE frame.
pub const PRESENCE_KEYS: [&str; 3] = ["channel_name", "datetime", "user"];
/// The args of a PUBLISH frame.
pub const PUBLISH_KEYS: [&str; 4] = ["channel_name", "datetime", "payload", "user"];
/// The args of a MESSAGE frame.
pub const MESSAGE_KEYS: [&str; 4] = ["datetime", "payload", "recipient", "sender"];
/// The form of the message webhook.
pub const MESSAGE_HOOK_KEYS: [&str; 5] = [
    "action",
    "payload",
    "recipient",
    "recipient_exists",
    "sender",
];

/// Sorted keys of a frame's args.
pub fn keys(args: &Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = args.keys().map(String::as_str).collect();
    k.sort();
    k
}

/// Asserts a `datetime` value has the original's format `YYYY-MM-DDTHH:MM:SS`.
pub fn assert_datetime(v: &Value) {
    let s = v.as_str().expect("datetime is a string");
    assert_eq!(s.len(), 19, "{s}");
    assert!(
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok(),
        "{s}"
    );
}

/// A port that was free a moment ago (nothing listens on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SUBSCRIBE and returns the own SUBSCRIBE frame (hooks are left to the caller).
pub async fn join(c: &mut Client, channel: &str) -> Map<String, Value> {
    c.send("SUBSCRIBE", json!({"channel_name": channel})).await;
    let args = c.expect("SUBSCRIBE").await;
    assert_eq!(args["channel_name"], channel);
    args
}

/// `join`, returning the channel's history as the own SUBSCRIBE frame gave it.
pub async fn join_history(c: &mut Client, channel: &str) -> Vec<Value> {
    join(c, channel).await["history"]
        .as_array()
        .expect("history is a list")
        .clone()
}

/// Sends PUBLISH of `payload` (JSON text) to `channel`.
pub async fn publish(c: &mut Client, channel: &str, payload: &str) {
    c.send(
        "PUBLISH",
        json!({"channel_name": channel, "payload": payload}),
    )
    .await;
}

/// Answers the next `hook` call with `reply`, sends the frame `(name, args)`, and checks that the
/// hook was called and that the frame was answered with ERROR `msg`.
pub async fn expect_refused(
    s: &Server,
    c: &mut Client,
    hook: &str,
    reply: Reply,
    (name, args): (&str, Value),
    msg: &str,
) {
    s.web.once(hook, reply);
    let id = c.send(name, args).await;
    s.web.expect(hook).await;
    assert_eq!(c.expect_error(msg).await, id, "{name} refused by {hook}");
}

/// A WebSocket client of user `name` (cookie `user=<name>`) that asked for positions (CONNECT
/// `recovery`), its connect webhook taken.
pub async fn recovering(s: &Server, name: &str) -> Client {
    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": format!("user={name}"), "recovery": true}),
    )
    .await;
    assert_eq!(c.expect("CONNECTED").await["name"], name);
    s.web.expect("connect").await;
    c
}

/// After a barrier on the connection that triggered them, no webhook call is pending.
pub async fn assert_no_hooks(s: &Server) {
    assert_no_hooks_in(&s.web).await;
}

/// The same for a web app.
pub async fn assert_no_hooks_in(web: &WebApp) {
    let left = web.drain().await;
    assert!(left.is_empty(), "unexpected webhooks: {left:?}");
}

/// Checks the webhooks of a subscribed user's disconnect cascade, in order.
pub async fn expect_cascade(s: &Server, user: &str, channel: &str) {
    let hook = s.web.expect("unsubscribe").await;
    assert_eq!(
        (hook.field("channel_name"), hook.field("user")),
        (Some(channel), Some(user))
    );
    assert_eq!(hook.header("cookie"), Some(format!("user={user}").as_str()));
    assert_eq!(
        s.web.expect("destroy_channel").await.field("channel_name"),
        Some(channel)
    );
    assert_eq!(s.web.expect("disconnect").await.field("name"), Some(user));
}

/// The channel names of `get_server_info`.
pub async fn channel_names(s: &Server) -> Vec<Value> {
    server_info(s).await.0
}

/// The channel names and connection ids of `get_server_info`.
pub async fn server_info(s: &Server) -> (Vec<Value>, Vec<Value>) {
    let info = s.api_ok("get_server_info", &[]).await;
    (
        info["channels"].as_array().unwrap().clone(),
        info["connections"].as_array().unwrap().clone(),
    )
}

/// Number of connections of user `name` (0 when the user does not exist).
pub async fn connections_of(s: &Server, name: &str) -> usize {
    let (_, body) = s.api("get_user_info", &[("user_name", name)]).await;
    if body[0] == true {
        body[1]["connections"].as_array().unwrap().len()
    } else {
        0
    }
}

/// Re-checks `cond` (each check is a Web API round trip) until it holds; fails after GUARD.
pub async fn wait_until<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    tokio::time::timeout(GUARD, async {
        while !cond().await {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("condition never became true");
}

/// Checks one history entry: `[kind, {datetime, user, payload?}]`.
pub fn assert_history_entry(entry: &Value, kind: &str, user: &str, payload: Option<Value>) {
    assert_eq!(entry[0], kind, "{entry}");
    let body = entry[1]
        .as_object()
        .expect("history entry body is an object");
    match payload {
        Some(p) => {
            assert_eq!(keys(body), ["datetime", "payload", "user"], "{entry}");
            assert_eq!(body["payload"], p, "{entry}");
        }
        None => assert_eq!(keys(body), ["datetime", "user"], "{entry}"),
    }
    assert_eq!(body["user"], user, "{entry}");
    assert_datetime(&body["datetime"]);
    assert_eq!(entry.as_array().unwrap().len(), 2);
}
