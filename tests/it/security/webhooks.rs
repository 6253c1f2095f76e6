//! Attacks through webhooks and the client's CONNECT, each reproduced against the real server and
//! checked for its bounded outcome.
//!
//! - **SSRF with a readable response, cookie and secret theft** (needs the API token): polling and
//!   webhooks may only call the webhook target(s) configured at startup plus
//!   `--webhook-allow-hosts`; `set_config` may not move webhooks without
//!   `--allow-set-config-webhooks`, and even then only to allowed hosts. A second "internal" HTTP
//!   service on another loopback port stands for what the attacker wants to reach: it records
//!   every request, and must record none.
//! - **Unlimited guessed CONNECTs** in one message: `--max-failed-connects` refusals close the
//!   connection.
//! - **A client-chosen X-Real-IP**: `X-Forwarded-For` is believed only from trusted proxies.
//! - **Unbounded queueing for a webhook slot**: the wait is bounded by the webhook timeout.

use crate::common;
use common::csp::{self, Csp};
use common::*;
use hookbox::net::{HostRule, IpRange};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// What a refused polling URL answers, wherever it is set.
const REFUSED_POLL_URL: &str = "Invalid value for polling.url: not an http(s) URL on an allowed \
                                host (see --webhook-allow-hosts)";

/// The secret an internal service would hand out to anyone who can make the server fetch it.
const INTERNAL_SECRET: &str = "TOP-SECRET internal document";

/// The service the attacker wants to reach: a second recording web app on another loopback port.
/// Polls (no `action` field) get the secret document.
async fn internal_service() -> WebApp {
    let internal = WebApp::start().await;
    internal.set(
        "",
        Reply::raw(200, &json!({ "secret": INTERNAL_SECRET }).to_string()),
    );
    internal
}

/// The internal service received no request at all (so no cookie, no secret, nothing to publish).
async fn assert_untouched(internal: &WebApp) {
    let got = internal.drain().await;
    assert!(got.is_empty(), "the internal service was reached: {got:?}");
}

/// A `polling` option value for `url`.
fn polling(mode: &str, url: &str) -> Value {
    json!({"mode": mode, "url": url, "interval": 0.05})
}

/// `get_channel_info` fails: the channel was not created.
async fn assert_no_channel(s: &Server, channel: &str) {
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", channel)])
            .await,
        format!("Channel {channel} doesn't exist")
    );
}

// ---------------------------------------------------------------------------------------------
// SSRF: polling

/// The attack: with the API token, create a channel (or re-point an existing one, or answer a
/// create_channel webhook) with `polling.url` on an internal service, subscribe, and read the
/// internal response out of the channel. Every way of setting it is refused, in every mode
/// (`simple` GETs, `persistent` and `once` POST with the webhook secret), and nothing is fetched.
#[tokio::test]
async fn polling_an_internal_url_is_refused_wherever_it_is_set() {
    let internal = internal_service().await;
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some("hook-secret".into())).await;
    let target = format!("http://{}/internal-secret", internal.addr);
    let mut alice = s.connected("alice").await;

    for mode in ["simple", "persistent", "once"] {
        let p = polling(mode, &target).to_string();

        // /web/create_channel.
        let channel = format!("api-{mode}");
        let (status, body) = s
            .api(
                "create_channel",
                &[("channel_name", &channel), ("polling", &p)],
            )
            .await;
        assert_eq!(
            (status, body),
            (200, json!([false, {"msg": REFUSED_POLL_URL}]))
        );
        assert_no_channel(&s, &channel).await;

        // /web/set_channel_options on an existing channel: its options stay as they were.
        let channel = format!("existing-{mode}");
        s.api_ok("create_channel", &[("channel_name", &channel)])
            .await;
        let before = s
            .api_ok("get_channel_info", &[("channel_name", &channel)])
            .await;
        let (status, body) = s
            .api(
                "set_channel_options",
                &[("channel_name", &channel), ("polling", &p)],
            )
            .await;
        assert_eq!(
            (status, body),
            (200, json!([false, {"msg": REFUSED_POLL_URL}]))
        );
        assert_eq!(
            s.api_ok("get_channel_info", &[("channel_name", &channel)])
                .await,
            before
        );

        // The create_channel webhook's reply, for a client's SUBSCRIBE …
        let channel = format!("hooked-{mode}");
        s.web.once(
            "create_channel",
            Reply::ok(json!({"moderated": false, "polling": polling(mode, &target)})),
        );
        let id = alice
            .send("SUBSCRIBE", json!({"channel_name": channel}))
            .await;
        assert_eq!(
            s.web.expect("create_channel").await.field("channel_name"),
            Some(channel.as_str())
        );
        assert_eq!(alice.expect_error(REFUSED_POLL_URL).await, id);
        assert_no_channel(&s, &channel).await;

        // … and for /web/create_channel with send_hook.
        let channel = format!("api-hooked-{mode}");
        s.web.once(
            "create_channel",
            Reply::ok(json!({"polling": polling(mode, &target)})),
        );
        let (_, body) = s
            .api(
                "create_channel",
                &[("channel_name", &channel), ("send_hook", "1")],
            )
            .await;
        s.web.expect("create_channel").await;
        assert_eq!(body, json!([false, {"msg": REFUSED_POLL_URL}]));
        assert_no_channel(&s, &channel).await;
    }
    alice.assert_quiet().await;
    assert_untouched(&internal).await;
}

/// The attack: spell the internal address so that a naive host check passes (another port of
/// the allowed host, `localhost`, user-info and fragment tricks, an IPv4-mapped or decimal IP,
/// other schemes). Each is refused; the real web app's own URL is accepted, which shows that
/// the check is the allow-list.
#[tokio::test]
async fn disguised_internal_urls_are_refused() {
    let internal = internal_service().await;
    let s = Server::start().await;
    let (wp, ip) = (s.web.addr.port(), internal.addr.port());
    let disguises = [
        format!("http://127.0.0.1:{ip}/internal-secret"),
        format!("http://localhost:{ip}/internal-secret"),
        format!("HTTP://127.0.0.1:{ip}/internal-secret"),
        format!("http://127.0.0.1:{wp}@127.0.0.1:{ip}/internal-secret"),
        format!("http://127.0.0.1:{ip}#@127.0.0.1:{wp}/"),
        format!("http://127.0.0.1:{ip}\\@127.0.0.1:{wp}/"),
        format!("http://[::ffff:127.0.0.1]:{ip}/internal-secret"),
        format!("http://2130706433:{ip}/internal-secret"),
        format!("http://localhost:{wp}/hookbox"),
        format!("gopher://127.0.0.1:{wp}/_GET%20/"),
        format!("ftp://127.0.0.1:{wp}/"),
        "file:///etc/passwd".to_owned(),
        "not a url".to_owned(),
    ];
    for (i, url) in disguises.iter().enumerate() {
        let channel = format!("disguise-{i}");
        let p = polling("simple", url).to_string();
        let (_, body) = s
            .api(
                "create_channel",
                &[("channel_name", &channel), ("polling", &p)],
            )
            .await;
        assert_eq!(body, json!([false, {"msg": REFUSED_POLL_URL}]), "{url}");
        assert_no_channel(&s, &channel).await;
    }

    // The configured web app itself may be polled.
    s.web.set("", Reply::raw(200, "\"public feed\""));
    let mut alice = s.connected("alice").await;
    let allowed = format!("http://127.0.0.1:{wp}/feed");
    s.api_ok(
        "create_channel",
        &[
            ("channel_name", "feed"),
            ("moderated", "false"),
            ("polling", &polling("simple", &allowed).to_string()),
        ],
    )
    .await;
    let poll = s.web.next().await;
    assert_eq!((poll.method.as_str(), poll.path.as_str()), ("GET", "/feed"));
    s.api_ok("subscribe", &[("channel_name", "feed"), ("name", "alice")])
        .await;
    alice.expect("SUBSCRIBE").await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], "public feed");
    assert_untouched(&internal).await;
}

/// The attack: poll an allowed host that answers with a redirect to the internal service. The
/// redirect is not followed: the first thing published is the allowed host's next answer (after
/// the failed poll's back-off), never the internal response.
#[tokio::test]
async fn an_allowed_poll_target_cannot_redirect_the_poller_inside() {
    let internal = internal_service().await;
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    s.web.once(
        "",
        Reply::raw(302, "").with_header(
            "location",
            &format!("http://{}/internal-secret", internal.addr),
        ),
    );
    s.web.set("", Reply::raw(200, "\"public feed\""));
    s.api_ok(
        "create_channel",
        &[("channel_name", "feed"), ("moderated", "false")],
    )
    .await;
    s.api_ok("subscribe", &[("channel_name", "feed"), ("name", "alice")])
        .await;
    alice.expect("SUBSCRIBE").await;
    let url = format!("http://{}/feed", s.web.addr);
    s.api_ok(
        "set_channel_options",
        &[
            ("channel_name", "feed"),
            ("polling", &polling("simple", &url).to_string()),
        ],
    )
    .await;
    assert_eq!(s.web.next().await.path, "/feed"); // answered with the redirect
    assert_eq!(s.web.next().await.path, "/feed"); // the retry after the back-off
    assert_eq!(alice.expect("PUBLISH").await["payload"], "public feed");
    assert_untouched(&internal).await;
}

/// The attack: a `persistent` poll answer may carry new options, `polling` included; an allowed
/// feed (or whoever controls it) answers with a `polling.url` on the internal service. The
/// payload is published, the re-pointing is refused: the channel keeps its options and goes on
/// polling the allowed URL (a refused reply used to stop the poller), and the internal service
/// is never called.
#[tokio::test]
async fn a_persistent_poll_reply_cannot_move_polling_inside() {
    let internal = internal_service().await;
    let s = Server::start().await;
    let mut alice = s.connected("alice").await;
    let inside = format!("http://{}/internal-secret", internal.addr);
    s.web.once(
        "",
        Reply::ok(json!({"payload": {"n": 1}, "polling": {"url": inside}})),
    );
    s.web.set("", Reply::ok(json!({"payload": {"n": 2}})));
    s.api_ok(
        "create_channel",
        &[("channel_name", "feed"), ("moderated", "false")],
    )
    .await;
    s.api_ok("subscribe", &[("channel_name", "feed"), ("name", "alice")])
        .await;
    alice.expect("SUBSCRIBE").await;
    let url = format!("http://{}/feed", s.web.addr);
    s.api_ok(
        "set_channel_options",
        &[
            ("channel_name", "feed"),
            ("polling", &polling("persistent", &url).to_string()),
        ],
    )
    .await;
    assert_eq!(alice.expect("PUBLISH").await["payload"], json!({"n": 1}));
    let info = s
        .api_ok("get_channel_info", &[("channel_name", "feed")])
        .await;
    assert_eq!(info["options"]["polling"]["url"], url, "{info}");
    assert_eq!(alice.expect("PUBLISH").await["payload"], json!({"n": 2}));
    assert_untouched(&internal).await;
}

/// The positive control: listed in `webhook_allow_hosts`, the same internal service can be
/// polled, in `simple` mode (GET, its body published) and `persistent` mode (POST with the
/// webhook secret). So the refusals above are the allow-list's doing.
#[tokio::test]
async fn polling_an_allow_listed_service_works() {
    let internal = internal_service().await;
    let s = Server::start_with(|c| {
        c.webhooks.webhook_secret = Some("hook-secret".into());
        c.webhook_allow_hosts = vec![HostRule::parse(&internal.addr.to_string()).unwrap()];
    })
    .await;
    let mut alice = s.connected("alice").await;
    let url = format!("http://{}/internal-secret", internal.addr);
    s.api_ok(
        "create_channel",
        &[
            ("channel_name", "simple"),
            ("moderated", "false"),
            ("polling", &polling("simple", &url).to_string()),
        ],
    )
    .await;
    let poll = internal.next().await;
    assert_eq!(
        (poll.method.as_str(), poll.path.as_str()),
        ("GET", "/internal-secret")
    );
    s.api_ok(
        "subscribe",
        &[("channel_name", "simple"), ("name", "alice")],
    )
    .await;
    alice.expect("SUBSCRIBE").await;
    assert_eq!(
        alice.expect("PUBLISH").await["payload"],
        json!({ "secret": INTERNAL_SECRET })
    );

    s.api_ok(
        "set_channel_options",
        &[("channel_name", "simple"), ("polling", r#"{"mode": ""}"#)],
    )
    .await;
    internal.set(
        "",
        Reply::ok(json!({"payload": {"secret": INTERNAL_SECRET}})),
    );
    s.api_ok(
        "create_channel",
        &[
            ("channel_name", "persistent"),
            ("moderated", "false"),
            ("polling", &polling("persistent", &url).to_string()),
        ],
    )
    .await;
    let poll = loop {
        let r = internal.next().await;
        if r.method == "POST" {
            break r;
        }
    };
    assert_eq!(poll.path, "/internal-secret");
    assert_eq!(poll.field("secret"), Some("hook-secret"));
}

// ---------------------------------------------------------------------------------------------
// SSRF and cookie theft: webhooks

/// The attack: with the API token, point webhooks at the internal service (or anywhere) through
/// `set_config`, so that the next CONNECT's browser cookie and the webhook secret go there.
/// Without `--allow-set-config-webhooks` every addressing key is refused, naming the keys, and
/// nothing in the call is applied; the next CONNECT's webhook still goes to the real web app.
#[tokio::test]
async fn set_config_cannot_move_webhooks_without_the_flag() {
    let internal = internal_service().await;
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some("hook-secret".into())).await;
    let steal = format!("http://{}/steal", internal.addr);
    let ip = internal.addr.port().to_string();
    let refused = |keys: &str| {
        format!(
            "set_config may not change where webhooks go ({keys}): start hookbox with \
             --allow-set-config-webhooks"
        )
    };
    let attempts: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("cb_single_url", &steal)], "cb_single_url"),
        (vec![("cbport", &ip)], "cbport"),
        (vec![("cbhost", "localhost")], "cbhost"),
        (vec![("cbpath", "/steal")], "cbpath"),
        (vec![("cbhttps", "true")], "cbhttps"),
        (vec![("cbtrailingslash", "true")], "cbtrailingslash"),
        (vec![("cb_connect", "steal")], "cb_connect"),
        (
            vec![("cbport", &ip), ("cbhost", "127.0.0.1")],
            "cbhost, cbport",
        ),
        // Mixed with keys that would be allowed alone: nothing is applied.
        (
            vec![
                ("webhook_secret", "attacker-known"),
                ("cb_single_url", &steal),
            ],
            "cb_single_url",
        ),
    ];
    for (params, keys) in attempts {
        let (status, body) = s.api("set_config", &params).await;
        assert_eq!(
            (status, body),
            (200, json!([false, {"msg": refused(keys)}])),
            "{params:?}"
        );
    }

    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=victim; sessionid=victim-session"}),
    )
    .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(hook.path, "/hookbox/connect");
    assert_eq!(
        hook.header("cookie"),
        Some("user=victim; sessionid=victim-session")
    );
    assert_eq!(hook.field("secret"), Some("hook-secret"));
    assert_eq!(c.expect("CONNECTED").await["name"], "victim");
    assert_untouched(&internal).await;
}

/// The same attack on a server started with `--allow-set-config-webhooks`: webhooks may move,
/// but only within the allow-list, so the internal service is refused by URL and the next
/// CONNECT's cookie and secret still go to the real web app.
#[tokio::test]
async fn set_config_with_the_flag_still_only_reaches_allowed_hosts() {
    let internal = internal_service().await;
    let s = Server::start_with(|c| {
        c.allow_set_config_webhooks = true;
        c.webhooks.webhook_secret = Some("hook-secret".into());
    })
    .await;
    let refused = |url: &str| {
        format!(
            "Invalid webhook address {url}: not an http(s) URL on an allowed host (see \
             --webhook-allow-hosts)"
        )
    };
    let steal = format!("http://{}/steal", internal.addr);
    assert_eq!(
        s.api_err("set_config", &[("cb_single_url", &steal)]).await,
        refused(&steal)
    );
    let ip = internal.addr.port().to_string();
    assert_eq!(
        s.api_err("set_config", &[("cbport", &ip)]).await,
        refused(&format!("http://127.0.0.1:{ip}/hookbox/connect"))
    );
    assert_eq!(
        s.api_err("set_config", &[("cbhost", "localhost")]).await,
        refused(&format!(
            "http://localhost:{}/hookbox/connect",
            s.web.addr.port()
        ))
    );

    let mut c = s.client().await;
    c.send(
        "CONNECT",
        json!({"cookie_string": "user=victim; sessionid=s3"}),
    )
    .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(hook.header("cookie"), Some("user=victim; sessionid=s3"));
    assert_eq!(hook.field("secret"), Some("hook-secret"));
    c.expect("CONNECTED").await;
    assert_untouched(&internal).await;
}

/// The positive control: with the flag and the service on the allow-list, `set_config` does
/// move the webhooks there (cookie and secret included). So the refusals above are the flag's
/// and the allow-list's doing.
#[tokio::test]
async fn set_config_reaches_a_host_only_when_allow_listed() {
    let internal = internal_service().await;
    let s = Server::start_with(|c| {
        c.allow_set_config_webhooks = true;
        c.webhooks.webhook_secret = Some("hook-secret".into());
        c.webhook_allow_hosts = vec![HostRule::parse(&internal.addr.to_string()).unwrap()];
    })
    .await;
    let url = format!("http://{}/moved", internal.addr);
    s.api_ok("set_config", &[("cb_single_url", &url)]).await;
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "user=zed"}))
        .await;
    let hook = internal.expect("connect").await;
    assert_eq!(hook.path, "/moved");
    assert_eq!(hook.header("cookie"), Some("user=zed"));
    assert_eq!(hook.field("secret"), Some("hook-secret"));
    assert_eq!(c.expect("CONNECTED").await["name"], "zed");
    assert_no_hooks(&s).await;
}

/// The attack: a webhook target answers with a redirect to the internal service (hoping hookbox
/// re-sends the cookie and secret there). Redirects are not followed: the CONNECT is refused
/// with the 302 reported, and the internal service gets nothing.
#[tokio::test]
async fn a_webhook_redirect_is_not_followed() {
    let internal = internal_service().await;
    let s = Server::start_with(|c| c.webhooks.webhook_secret = Some("hook-secret".into())).await;
    s.web.once(
        "connect",
        Reply::raw(302, "").with_header("location", &format!("http://{}/steal", internal.addr)),
    );
    let mut c = s.client().await;
    let id = c
        .send("CONNECT", json!({"cookie_string": "sessionid=victim"}))
        .await;
    s.web.expect("connect").await;
    assert_eq!(
        c.expect_error("Invalid callback response, status=302")
            .await,
        id
    );
    assert_untouched(&internal).await;
}

// ---------------------------------------------------------------------------------------------
// Guessed cookies: refused CONNECTs close the connection

/// One message (or CSP packet) holding `n` CONNECT frames with guessed cookies `sid=guess<i>`.
fn guesses(n: usize) -> String {
    (1..=n)
        .map(|i| {
            frame(
                i as i64,
                "CONNECT",
                json!({"cookie_string": format!("sid=guess{i}")}),
            )
        })
        .collect()
}

/// Checks that exactly the first three guesses reached the web app, from `ip`.
async fn assert_three_guesses_hooked(s: &Server, ip: &str) {
    let hooks = s.web.drain().await;
    let cookies: Vec<Option<&str>> = hooks.iter().map(|h| h.header("cookie")).collect();
    assert_eq!(
        cookies,
        [Some("sid=guess1"), Some("sid=guess2"), Some("sid=guess3")],
        "{hooks:?}"
    );
    for h in &hooks {
        assert_eq!(h.action(), "connect");
        assert_eq!(h.header("x-real-ip"), Some(ip));
    }
}

/// After the flooding connection closed, another connection's CONNECT is the next webhook: the
/// flood left nothing queued behind it.
async fn assert_flood_over(s: &Server) {
    s.web
        .once("connect", Reply::ok(json!({"name": "bystander"})));
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "sid=bystander"}))
        .await;
    let hook = s.web.expect("connect").await;
    assert_eq!(hook.header("cookie"), Some("sid=bystander"));
    assert_eq!(c.expect("CONNECTED").await["name"], "bystander");
    assert_no_hooks(s).await;
}

/// The attack: one WebSocket message with 600 CONNECT frames, each a guessed session cookie,
/// made the web app check 600 cookies. Now the third refusal closes the connection (1008): three
/// connect webhooks, three ERRORs, the close, and none of the remaining 597 frames is handled.
#[tokio::test]
async fn six_hundred_guessed_cookies_in_one_message_cost_three_webhooks() {
    let s = Server::start().await;
    s.web
        .set("connect", Reply::deny(json!({"error": "bad cookie"})));
    let mut c = s.client().await;
    c.send_text(&guesses(600)).await;
    let (frames, close) = c.frames_until_close().await;
    let errors: Vec<(String, Value, Value)> = frames
        .into_iter()
        .map(|(_, name, args)| (name, args["id"].clone(), args["msg"].clone()))
        .collect();
    let expected: Vec<(String, Value, Value)> = (1..=3)
        .map(|i| ("ERROR".to_owned(), json!(i), json!("bad cookie")))
        .collect();
    assert_eq!(errors, expected);
    assert_eq!(
        close,
        Some((1008, "3 refused CONNECTs on this connection".to_owned()))
    );
    assert_three_guesses_hooked(&s, "127.0.0.1").await;
    assert_flood_over(&s).await;
}

/// The same flood over CSP: one `send` whose one packet holds 600 CONNECT frames. Three connect
/// webhooks, three ERRORs, then the session's close packet.
#[tokio::test]
async fn six_hundred_guessed_cookies_over_csp_cost_three_webhooks() {
    let s = Server::start().await;
    s.web
        .set("connect", Reply::deny(json!({"error": "bad cookie"})));
    let mut c = Csp::handshake(&s).await;
    c.send_text(&guesses(600)).await;
    tokio::time::timeout(GUARD, async {
        while !c.closed_by_server {
            c.comet().await;
        }
    })
    .await
    .expect("the CSP session was not closed");
    let errors: Vec<(String, Value, Value)> = c
        .frames
        .drain(..)
        .map(|(_, name, args)| (name, args["id"].clone(), args["msg"].clone()))
        .collect();
    let expected: Vec<(String, Value, Value)> = (1..=3)
        .map(|i| ("ERROR".to_owned(), json!(i), json!("bad cookie")))
        .collect();
    assert_eq!(errors, expected);
    assert_three_guesses_hooked(&s, "127.0.0.1").await;
    assert_flood_over(&s).await;
}

/// Every kind of refusal counts, not only an explicit denial: a failing web app (HTTP 500) and a
/// reply without a name are refusals too. Refusals that never reach the web app (a CONNECT
/// without cookie_string) cost nothing and are not counted.
#[tokio::test]
async fn every_refused_connect_counts_toward_the_limit() {
    let s = Server::start().await;
    s.web.once("connect", Reply::raw(500, "oops"));
    s.web.once("connect", Reply::ok(json!({})));
    s.web.once("connect", Reply::deny(json!({})));
    let mut c = s.client().await;
    let text: String = [
        frame(1, "CONNECT", json!({})),
        frame(2, "CONNECT", json!({"cookie_string": "sid=a"})),
        frame(3, "CONNECT", json!({"cookie_string": "sid=b"})),
        frame(4, "CONNECT", json!({})),
        frame(5, "CONNECT", json!({"cookie_string": "sid=c"})),
        frame(6, "CONNECT", json!({"cookie_string": "sid=d"})),
    ]
    .concat();
    c.send_text(&text).await;
    let (frames, close) = c.frames_until_close().await;
    let errors: Vec<(Value, Value)> = frames
        .iter()
        .map(|(_, name, args)| {
            assert_eq!(name, "ERROR");
            (args["id"].clone(), args["msg"].clone())
        })
        .collect();
    assert_eq!(
        errors,
        [
            (json!(1), json!("Missing cookie_string")),
            (json!(2), json!("failure: HTTP 500")),
            (
                json!(3),
                json!("Unauthorized (missing name parameter in server response)")
            ),
            (json!(4), json!("Missing cookie_string")),
            (json!(5), json!("Unauthorized")),
        ]
    );
    assert_eq!(
        close,
        Some((1008, "3 refused CONNECTs on this connection".to_owned()))
    );
    let cookies: Vec<String> = s
        .web
        .drain()
        .await
        .iter()
        .map(|h| h.header("cookie").unwrap_or("").to_owned())
        .collect();
    assert_eq!(cookies, ["sid=a", "sid=b", "sid=c"]);
}

// ---------------------------------------------------------------------------------------------
// X-Real-IP

/// Connects a WebSocket sending `X-Forwarded-For: xff` and returns the connect webhook's
/// X-Real-IP. The client is kept open (in `keep`), so that no disconnect webhook interleaves.
async fn real_ip_with(s: &Server, keep: &mut Vec<Client>, xff: &str) -> Option<String> {
    let mut c =
        Client::open_with_headers(&format!("ws://{}/ws", s.addr), &[("X-Forwarded-For", xff)])
            .await;
    c.send("CONNECT", json!({"cookie_string": "user=fwd"}))
        .await;
    let hook = s.web.expect("connect").await;
    c.expect("CONNECTED").await;
    keep.push(c);
    hook.header("x-real-ip").map(str::to_owned)
}

/// The attack: any client wrote `X-Forwarded-For: <any address>` and the web app got that
/// address as X-Real-IP (defeating its per-address limits and logs). Now the header is believed
/// only from a trusted proxy (loopback by default, as the test client is), and of its chain only
/// the rightmost address that is not a trusted proxy counts: what a client wrote to the left of
/// its proxy's entry is ignored.
#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    // Default trusted proxies: loopback (the test client).
    let mut keep = Vec::new();
    let s = Server::start().await;
    assert_eq!(
        real_ip_with(&s, &mut keep, "203.0.113.9").await.as_deref(),
        Some("203.0.113.9")
    );
    assert_eq!(
        real_ip_with(&s, &mut keep, "6.6.6.6, 203.0.113.9")
            .await
            .as_deref(),
        Some("203.0.113.9"),
        "the client-written left part is ignored"
    );
    assert_eq!(
        real_ip_with(&s, &mut keep, "6.6.6.6, 203.0.113.9, 127.0.0.1")
            .await
            .as_deref(),
        Some("203.0.113.9"),
        "trusted proxies in the chain are skipped"
    );

    // Nobody trusted: the socket's peer, whatever the header says.
    let s = Server::start_with(|c| c.trusted_proxies = vec![]).await;
    assert_eq!(
        real_ip_with(&s, &mut keep, "203.0.113.9").await.as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        real_ip_with(&s, &mut keep, "6.6.6.6, 203.0.113.9")
            .await
            .as_deref(),
        Some("127.0.0.1")
    );

    // Only some other network trusted: loopback is then an ordinary client.
    let s = Server::start_with(|c| c.trusted_proxies = vec![IpRange::parse("10.0.0.0/8").unwrap()])
        .await;
    assert_eq!(
        real_ip_with(&s, &mut keep, "203.0.113.9").await.as_deref(),
        Some("127.0.0.1")
    );
}

/// The same over CSP: the address is fixed at the handshake, from the handshake's headers and
/// peer, and follows the same rules.
#[tokio::test]
async fn x_forwarded_for_over_csp_is_believed_only_from_trusted_proxies() {
    for (trusted, expected) in [(true, "203.0.113.9"), (false, "127.0.0.1")] {
        let s = Server::start_with(|c| {
            if !trusted {
                c.trusted_proxies = vec![];
            }
        })
        .await;
        let r = csp::fetch(
            http_client()
                .post(format!(
                    "{}/handshake?ct=application%2Fjavascript",
                    Csp::base(&s)
                ))
                .header("content-type", "text/plain")
                .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
                .body("{}"),
        )
        .await;
        let key = csp::session_key(r.ok(), "(", ")");
        let mut c = Csp::new(&s, key);
        c.send("CONNECT", json!({"cookie_string": "user=fwd"}))
            .await;
        let hook = s.web.expect("connect").await;
        assert_eq!(
            hook.header("x-real-ip"),
            Some(expected),
            "trusted: {trusted}"
        );
        c.expect("CONNECTED").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting for a webhook slot

/// The attack: behind a slow web app, a flood of actions queued for a webhook slot without end.
/// Now the wait for a slot is bounded by `--webhook-queue-timeout` (here 500 ms, as the webhook
/// timeout; the test asserts only what the clients get).
///
/// With one slot, held by a CONNECT whose reply never comes, three more CONNECTs queue for it.
/// Every call in a slot is itself bounded by the timeout, so when the holder gives up the slot
/// passes to the first in line, and those behind it give up waiting: each of them gets
/// `Too busy …` with a retry hint, and its cookie never reaches the web app. Afterwards the
/// server serves CONNECTs again.
#[tokio::test]
async fn waiting_for_a_webhook_slot_is_bounded() {
    let s = Server::start_with(|c| {
        c.webhook_max_concurrency = 1;
        c.webhook_timeout = Duration::from_millis(500);
        c.webhook_queue_timeout = Duration::from_millis(500);
    })
    .await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    s.web
        .set("connect", Reply::ok(json!({"name": "slow"})).gated(&gate));
    let no_slot = "Too busy to ask the web application now: try again in ";
    let no_reply = "failure: no reply within 0.5s".to_owned();

    let mut waiters = Vec::new();
    for i in 0..3 {
        waiters.push((format!("sid=waiter{i}"), s.client().await));
    }
    let mut holder = s.client().await;
    holder
        .send("CONNECT", json!({"cookie_string": "sid=holder"}))
        .await;
    assert_eq!(
        s.web.expect("connect").await.header("cookie"),
        Some("sid=holder")
    );
    // The slot is taken: the others queue.
    for (cookie, c) in &mut waiters {
        c.send("CONNECT", json!({"cookie_string": cookie})).await;
    }

    assert_eq!(holder.expect_error(&no_reply).await, 1);
    let mut refused = 0;
    let mut served = HashSet::new();
    for (cookie, c) in &mut waiters {
        let args = c.expect("ERROR").await;
        if args["msg"].as_str().unwrap().starts_with(no_slot) {
            assert!(args["retry_after"].as_u64().unwrap() >= 1, "{args:?}");
            refused += 1;
        } else {
            assert_eq!(args["msg"], no_reply.as_str(), "{args:?}");
            served.insert(cookie.clone());
        }
    }
    assert!(refused >= 1, "nobody was refused a slot");
    // The web app saw exactly the CONNECTs that got a slot.
    let seen: HashSet<String> = s
        .web
        .drain()
        .await
        .iter()
        .map(|h| h.header("cookie").unwrap_or("").to_owned())
        .collect();
    assert_eq!(seen, served);

    // The slow replies may now come; nothing is stuck: the next CONNECT is served.
    gate.add_permits(10);
    s.web.set("connect", Reply::ok(json!({"name": "dora"})));
    let mut c = s.client().await;
    c.send("CONNECT", json!({"cookie_string": "sid=dora"}))
        .await;
    assert_eq!(c.expect("CONNECTED").await["name"], "dora");
}
