//! Attacks through channel history and the Web API's fan-out, each reproduced and held to its
//! bounded outcome:
//!
//! - history poisoning: one user fills a channel's history with large publications, so that every
//!   tab or user joining gets a SUBSCRIBE frame bigger than its outbox and is disconnected (or the
//!   server holds megabytes per channel). History is bounded in bytes, the history in an
//!   own-SUBSCRIBE frame is trimmed (oldest first) to half the joining connection's free room, and
//!   such frames never close the connection;
//! - publish_multi stalls: one call naming the same channel thousands of times, or thousands of
//!   channels with a big payload, monopolising the server. Names count once, their number is
//!   capped, and the call yields between channels so that other requests are answered meanwhile.
//!
//! Sizes are measured on the JSON as the server writes it (Python's `", "` and `": "`
//! separators), re-encoded here from the frames received.

use crate::common;
use common::csp::Csp;
use common::*;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// Measuring JSON as the server writes it

/// serde_json's compact output with Python's separators: `[1, 2]`, `{"a": 1}`.
struct PythonSeparators;

impl serde_json::ser::Formatter for PythonSeparators {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// Length of `v` encoded as the server encodes it (every value here is ASCII).
fn wire_len(v: &Value) -> usize {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonSeparators);
    serde::Serialize::serialize(v, &mut ser).unwrap();
    assert!(out.is_ascii(), "test values are ASCII");
    out.len()
}

// ---------------------------------------------------------------------------------------------
// History poisoning

/// Payload of the `i`-th large publication: a JSON string of `len` characters starting `NNN-`.
fn tagged(i: usize, len: usize) -> String {
    json!(format!("{i:03}-{}", "x".repeat(len - 4))).to_string()
}

/// The tag of a history entry that is a publication of `tagged`.
fn tag_of(entry: &Value) -> usize {
    assert_eq!(entry[0], "PUBLISH", "{:.200}", entry.to_string());
    entry[1]["payload"].as_str().expect("a tagged payload")[..3]
        .parse()
        .unwrap()
}

/// Asserts `history` is the newest publications, in order, ending with `last`; returns how many.
fn assert_newest_publications(history: &[Value], last: usize) -> usize {
    let tags: Vec<usize> = history.iter().map(tag_of).collect();
    let want: Vec<usize> = (last + 1 - tags.len()..=last).collect();
    assert_eq!(tags, want, "the newest entries, oldest first");
    tags.len()
}

/// `user` (subscribed to `channel`) publishes `count` payloads of `len` characters, reading each
/// echo so that its own outbox never fills.
async fn publish_large(c: &mut Client, channel: &str, count: usize, len: usize) {
    for i in 0..count {
        publish(c, channel, &tagged(i, len)).await;
        let args = c.expect("PUBLISH").await;
        assert_eq!(args["channel_name"], channel);
    }
}

/// The history of an own-SUBSCRIBE frame, checking it is for `channel`.
fn subscribe_history(args: &Map<String, Value>, channel: &str) -> Vec<Value> {
    assert_eq!(args["channel_name"], channel);
    args["history"].as_array().expect("history list").clone()
}

/// The audit's reproduction: one user publishes 17 × ~63 KB into `lobby` (history_size 50, the
/// byte bound set high so it does not hide the trimming), then opens 11 more tabs. The full
/// history (over 1 MiB) does not fit any connection's outbox; each tab used to be closed for
/// overflow on its replayed SUBSCRIBE. Now each gets CONNECTED and a SUBSCRIBE whose history is
/// the newest entries, in order, within half its outbox, and stays open; a brand-new user joining
/// gets the same trimmed history.
#[tokio::test]
async fn large_history_is_trimmed_for_every_new_tab_and_never_closes_it() {
    const OUTBOX: usize = 1 << 20;
    let s = Server::start_with(|c| {
        c.outbox_bytes = OUTBOX;
        c.history_max_bytes = 4 << 20;
        // The attacker here is a client the operator let publish as fast as it likes.
        let unlimited = hookbox::hub::limits::Rate {
            per_second: 1e6,
            burst: 1e6,
        };
        c.action_limits.connection_publish = unlimited;
        c.action_limits.user_publish = unlimited;
    })
    .await;
    s.web
        .channel_options(json!({"history_size": 50, "moderated": false}));
    let mut first_tab = s.connected("mallory").await;
    join(&mut first_tab, "lobby").await;
    s.web.expect("create_channel").await;
    publish_large(&mut first_tab, "lobby", 17, 63_000).await;

    let info = s
        .api_ok("get_channel_info", &[("channel_name", "lobby")])
        .await;
    let full = info["options"]["history"].as_array().unwrap().clone();
    assert_eq!(full.len(), 18, "SUBSCRIBE + 17 PUBLISH, all kept");
    assert!(
        wire_len(&json!(full)) > OUTBOX,
        "the whole history is over the outbox"
    );

    let mut tabs = vec![first_tab];
    for _ in 0..11 {
        let mut tab = s.connected("mallory").await;
        let history = subscribe_history(&tab.expect("SUBSCRIBE").await, "lobby");
        let kept = assert_newest_publications(&history, 16);
        assert!(kept > 0 && kept < 17, "trimmed, not emptied: {kept}");
        assert!(wire_len(&json!(history)) <= OUTBOX / 2);
        tabs.push(tab);
    }
    // Every tab is still open, with nothing else queued.
    for tab in &mut tabs {
        tab.assert_quiet().await;
    }
    assert_eq!(connections_of(&s, "mallory").await, 12);

    // A brand-new user joining gets a trimmed history too.
    let mut bob = s.connected("bob").await;
    let history = join_history(&mut bob, "lobby").await;
    let kept = assert_newest_publications(&history, 16);
    assert!(kept > 0 && kept < 17, "trimmed, not emptied: {kept}");
    assert!(wire_len(&json!(history)) <= OUTBOX / 2);
    bob.assert_quiet().await;
    assert_no_hooks(&s).await;
}

/// A server with a small outbox (`OUTBOX`) and no byte bound in the way, and a first tab of
/// "mallory" subscribed to h1, h2 and h3, each filled with `count` publications of `len`
/// characters (history_size `size`): most of the outbox per channel.
async fn poisoned_channels(size: usize, count: usize, len: usize) -> (Server, Client) {
    let s = Server::start_with(|c| {
        c.outbox_bytes = OUTBOX;
        c.history_max_bytes = 4 << 20;
        // The attacker here is a client the operator let publish as fast as it likes.
        let unlimited = hookbox::hub::limits::Rate {
            per_second: 1e6,
            burst: 1e6,
        };
        c.action_limits.connection_publish = unlimited;
        c.action_limits.user_publish = unlimited;
    })
    .await;
    s.web
        .channel_options(json!({"history_size": size, "moderated": false}));
    let mut first_tab = s.connected("mallory").await;
    for ch in CHANNELS {
        join(&mut first_tab, ch).await;
        s.web.expect("create_channel").await;
        publish_large(&mut first_tab, ch, count, len).await;
    }
    (s, first_tab)
}

const OUTBOX: usize = 300_000;
const CHANNELS: [&str; 3] = ["h1", "h2", "h3"];

/// Attack: the same poisoning over several channels, so that a new tab's replay of all of them
/// together is several times its outbox. Each replayed SUBSCRIBE's history takes at most half of
/// the room the earlier ones left, so the replay stays within the outbox and the tab stays open.
#[tokio::test]
async fn a_replay_of_several_poisoned_channels_fits_the_new_tab() {
    // 5 × 50 KB each.
    let (s, mut first_tab) = poisoned_channels(50, 5, 50_000).await;
    let channels = CHANNELS;

    let mut tab = s.connected("mallory").await;
    let mut seen = Vec::new();
    let mut queued = 0;
    for _ in channels {
        let args = tab.expect("SUBSCRIBE").await;
        let ch = args["channel_name"].as_str().unwrap().to_owned();
        let history = subscribe_history(&args, &ch);
        if !history.is_empty() {
            assert_newest_publications(&history, 4);
        }
        // Each history is bounded by half of the room left when it was queued: with the
        // memory engine the replay is queued in one go, so that is what the frames before it
        // left; the Redis engine queues channel by channel, the writer draining in between, so
        // at most half the outbox.
        let size = wire_len(&json!(history));
        let bound = if common::engine_is_redis() {
            OUTBOX / 2
        } else {
            (OUTBOX - queued) / 2
        };
        assert!(
            size <= bound,
            "{ch}: {size} bytes of history with {queued} already queued"
        );
        queued += wire_len(&Value::Object(args));
        seen.push(ch);
    }
    seen.sort();
    assert_eq!(seen, channels);
    if !common::engine_is_redis() {
        assert!(queued < OUTBOX, "the whole replay fits the outbox at once");
    }
    tab.assert_quiet().await;
    first_tab.assert_quiet().await;
}

/// The same replay to a new tab that speaks CSP. Its frames become base64 packets (a third
/// larger), held until acknowledged and counted against the same byte budget by the frames they
/// carry; the replay must not close the session, nor leave it too full for the next publication.
#[tokio::test]
async fn a_replay_of_several_poisoned_channels_fits_a_new_csp_tab() {
    // 60 × 5 KB each: fine-grained, so each replayed history fills its allowance.
    let (s, mut first_tab) = poisoned_channels(100, 60, 5_000).await;
    let channels = CHANNELS;

    let mut tab = Csp::handshake(&s).await;
    tab.send("CONNECT", json!({"cookie_string": "user=mallory"}))
        .await;
    s.web.expect("connect").await;
    // A look without acknowledging (the packets come again on the next comet): the replay must
    // not have been replaced by the session's close packet.
    let peek = tab.post("comet", "a=0", "").await;
    let packets = common::csp::parse_batch(peek.ok(), "", "");
    assert!(
        packets.iter().all(|p| !p.data.is_null()),
        "the replay closed the CSP session: {:.300}",
        peek.body
    );
    // A publication while the replay's packets are still unacknowledged: the replay was sized
    // for the outbox in frame bytes, and its packets count as such, so there is room for it.
    s.api_ok(
        "publish",
        &[("channel_name", "h1"), ("payload", "\"after\"")],
    )
    .await;
    assert_eq!(first_tab.expect("PUBLISH").await["payload"], "after");
    assert_eq!(tab.expect("CONNECTED").await["name"], "mallory");
    // The three own SUBSCRIBEs and the publication, which comes after h1's SUBSCRIBE (with the
    // Redis engine the replays go out channel by channel, so it may precede the others).
    let mut seen = Vec::new();
    let mut published = false;
    while seen.len() < channels.len() || !published {
        let (_, name, args) = tab.recv().await;
        if name == "PUBLISH" {
            assert_eq!(args["payload"], "after");
            assert!(
                seen.iter().any(|c| c == "h1"),
                "PUBLISH before h1's SUBSCRIBE"
            );
            assert!(!published);
            published = true;
            continue;
        }
        assert_eq!(name, "SUBSCRIBE", "{args:?}");
        let ch = args["channel_name"].as_str().unwrap().to_owned();
        let mut history = subscribe_history(&args, &ch);
        // With the Redis engine a replay built after the publication has it in its history.
        if history
            .last()
            .is_some_and(|e| e[0] == "PUBLISH" && e[1]["payload"] == "after")
        {
            assert!(!published);
            published = true;
            history.pop();
        }
        // With the Redis engine a comet may pull the first replays into (larger) packets
        // before the next is sized, leaving a later one no room for history: allowed, it only
        // has to be the newest entries.
        if !common::engine_is_redis() {
            assert!(!history.is_empty(), "{ch}");
        }
        if !history.is_empty() {
            assert_newest_publications(&history, 59);
        }
        seen.push(ch);
    }
    seen.sort();
    assert_eq!(seen, channels);
    // Still open: the next frame answers a barrier, and no close packet came.
    let id = tab.send("PING_BARRIER", json!({})).await;
    assert_eq!(tab.expect("ERROR").await["id"], id);
    assert!(!tab.closed_by_server);
    first_tab.assert_quiet().await;
}

/// Attack: the server keeps megabytes of history per channel because the web app allows a large
/// `history_size`. With `history_max_bytes` small, the kept history (as `get_channel_info` shows
/// it) is within that many bytes and is the newest entries; a new user joining sees exactly it.
#[tokio::test]
async fn history_is_bounded_in_bytes_keeping_the_newest() {
    const MAX: usize = 10_000;
    let s = Server::start_with(|c| c.history_max_bytes = MAX).await;
    s.web
        .channel_options(json!({"history_size": 50, "moderated": false}));
    let mut alice = s.connected("alice").await;
    join(&mut alice, "lobby").await;
    s.web.expect("create_channel").await;
    publish_large(&mut alice, "lobby", 30, 900).await;

    let info = s
        .api_ok("get_channel_info", &[("channel_name", "lobby")])
        .await;
    let kept = info["options"]["history"].as_array().unwrap().clone();
    let bytes: usize = kept.iter().map(wire_len).sum();
    assert!(bytes <= MAX, "{bytes} bytes of history");
    let n = assert_newest_publications(&kept, 29);
    assert!(n < 30, "bounded by bytes, not by history_size");
    // Nothing was dropped that still fitted: the next older publication would pass the bound.
    let older: Value = serde_json::from_str(&tagged(29 - n, 900)).unwrap();
    let one_more = wire_len(&json!(["PUBLISH", {
        "user": "alice",
        "datetime": kept[0][1]["datetime"],
        "payload": older,
    }]));
    assert!(bytes + one_more > MAX, "{bytes} + {one_more}");

    let mut bob = s.connected("bob").await;
    let history = join_history(&mut bob, "lobby").await;
    assert_eq!(history, kept);
    bob.assert_quiet().await;
}

/// A preset `history` of `count` publications of `len` characters, tagged 0.., as `/web`
/// options take it.
fn preset_history(count: usize, len: usize) -> String {
    let entries: Vec<Value> = (0..count)
        .map(|i| {
            let payload: Value = serde_json::from_str(&tagged(i, len)).unwrap();
            json!(["PUBLISH", {"payload": payload, "user": "ops", "datetime": "2026-01-01T00:00:00"}])
        })
        .collect();
    json!(entries).to_string()
}

/// Attack: the same poisoning through a preset `history` option (`/web/create_channel`,
/// `/web/set_channel_options`, or a create_channel webhook reply). The byte bound applies to it
/// too, keeping the newest entries; a preset within the configured bound is kept whole, at
/// creation as later.
#[tokio::test]
async fn preset_history_is_held_to_the_configured_byte_bound() {
    const MAX: usize = 1 << 20;
    let s = Server::start_with(|c| c.history_max_bytes = MAX).await;
    let kept = |info: Value| info["options"]["history"].as_array().unwrap().clone();

    // 10 × 50 KB: about half the bound, more than the 256 KiB default.
    let within = preset_history(10, 50_000);
    s.api_ok(
        "create_channel",
        &[("channel_name", "later"), ("history_size", "50")],
    )
    .await;
    s.api_ok(
        "set_channel_options",
        &[("channel_name", "later"), ("history", &within)],
    )
    .await;
    let later = kept(
        s.api_ok("get_channel_info", &[("channel_name", "later")])
            .await,
    );
    assert_eq!(assert_newest_publications(&later, 9), 10, "kept whole");

    // 30 × 50 KB: over the bound, trimmed to the newest entries within it.
    let over = preset_history(30, 50_000);
    s.api_ok(
        "set_channel_options",
        &[("channel_name", "later"), ("history", &over)],
    )
    .await;
    let trimmed = kept(
        s.api_ok("get_channel_info", &[("channel_name", "later")])
            .await,
    );
    assert!(trimmed.iter().map(wire_len).sum::<usize>() <= MAX);
    let n = assert_newest_publications(&trimmed, 29);
    assert!(n < 30, "{n}");

    // At creation, a preset within the configured bound is kept whole too.
    s.api_ok(
        "create_channel",
        &[
            ("channel_name", "at_creation"),
            ("history_size", "50"),
            ("history", &within),
        ],
    )
    .await;
    let at_creation = kept(
        s.api_ok("get_channel_info", &[("channel_name", "at_creation")])
            .await,
    );
    assert_eq!(
        assert_newest_publications(&at_creation, 9),
        10,
        "a preset within --history-max-bytes is kept whole at creation too"
    );
}

// ---------------------------------------------------------------------------------------------
// publish_multi stalls

/// Attack: `channel_names` naming the same channel over and over, each name costing a full
/// publication. Each name counts once: one PUBLISH per channel.
#[tokio::test]
async fn publish_multi_publishes_once_per_distinct_channel() {
    let s = Server::unmoderated().await;
    let mut a = s.connected("alice").await;
    for ch in ["a", "b"] {
        join(&mut a, ch).await;
        s.web.expect("create_channel").await;
    }
    s.api_ok(
        "publish_multi",
        &[("channel_names", "a,a,a,b,a,b"), ("payload", "1")],
    )
    .await;
    let mut got: Vec<String> = Vec::new();
    for _ in 0..2 {
        let args = a.expect("PUBLISH").await;
        assert_eq!(args["payload"], 1);
        got.push(args["channel_name"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, ["a", "b"], "in the order first named");
    a.assert_quiet().await;
}

/// Attack: tens of thousands of names in one call. Past `publish_multi_max_channels` distinct
/// names the call is refused before anything is published; repeated names do not count.
#[tokio::test]
async fn publish_multi_over_the_cap_is_refused_without_publishing() {
    let s = Server::start_with(|c| c.publish_multi_max_channels = 3).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut a = s.connected("alice").await;
    for ch in ["a", "b"] {
        join(&mut a, ch).await;
        s.web.expect("create_channel").await;
    }
    let (status, body) = s
        .api(
            "publish_multi",
            &[("channel_names", "a,b,c,d"), ("payload", "1")],
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!([false, {"msg": "Too many channel_names (4, at most 3)"}])
        )
    );
    a.assert_quiet().await;

    // Three distinct names, however often repeated, are within the cap.
    s.api_ok(
        "publish_multi",
        &[("channel_names", "a,b,c,a,b,c,a,b,c"), ("payload", "2")],
    )
    .await;
    for ch in ["a", "b"] {
        let args = a.expect("PUBLISH").await;
        assert_eq!(
            (&args["channel_name"], &args["payload"]),
            (&json!(ch), &json!(2))
        );
    }
    a.assert_quiet().await;
}

/// Attack: one publish_multi of a sizeable payload to a thousand channels, holding a runtime
/// worker until it has published to all of them. The call yields between channels. On a
/// single-threaded runtime (the test's), a task that counts its own turns therefore runs once per
/// channel while the call is in flight; a call that held the thread would let it run not at all.
/// This is a count of scheduler turns, not a timing: the memory engine never waits, so nothing but
/// the call's own yields lets the counter run. Over the wire, the same call publishes to the
/// channels that have a subscriber.
#[tokio::test]
async fn publish_multi_yields_to_other_tasks_between_channels() {
    use axum::extract::FromRequest;
    use hookbox::api::{handle_web, ApiRequest, ApiState};
    use hookbox::engine::{memory::MemoryEngine, Engine};
    use hookbox::hub::Hub;
    use hookbox::webhook::WebhookClient;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let limits = hookbox::webhook::ClientLimits {
        timeout: GUARD,
        max_concurrency: 8,
        error_details: false,
        queue_limit: 100,
        queue_timeout: GUARD,
    };
    let webhooks = WebhookClient::new(Default::default(), Vec::new(), limits);
    let engine: Engine = Box::new(MemoryEngine::new(256 * 1024));
    let api = Arc::new(ApiState {
        hub: Hub::new(engine, webhooks, Default::default(), shutdown.clone()),
        token: Some("secret".to_owned()).into(),
        admin_password: None.into(),
        ignore_publish_non_existing: false,
        allow_set_config_webhooks: false,
        publish_multi_max_channels: 1000,
        wrong_tokens: hookbox::api::WrongTokens::new(10, Vec::new(), Vec::new(), Vec::new()),
    });
    let call = |method: &'static str, form: Vec<(&str, String)>| {
        let api = api.clone();
        let mut form = form;
        form.push(("security_token", "secret".to_owned()));
        let body = serde_urlencoded::to_string(&form).unwrap();
        async move {
            let peer =
                hookbox::transport::PeerAddr("127.0.0.1:1".parse().unwrap(), Default::default());
            let mut req = axum::http::Request::post(format!("/web/{method}"))
                .body(axum::body::Body::from(body))
                .unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let req = ApiRequest::from_request(req, &()).await.unwrap();
            let resp = handle_web(
                axum::extract::State(api),
                axum::extract::Path(method.to_owned()),
                req,
            )
            .await;
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let names: Vec<String> = (0..1000).map(|i| format!("c{i:04}")).collect();
    for name in &names {
        let body = call("create_channel", vec![("channel_name", name.clone())]).await;
        assert_eq!(body, json!([true, {}]));
    }

    let turns = Arc::new(AtomicUsize::new(0));
    let counter = tokio::spawn({
        let turns = turns.clone();
        async move {
            loop {
                turns.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    let payload = json!(vec![0; 10_000]).to_string();
    let before = turns.load(Ordering::Relaxed);
    let body = call(
        "publish_multi",
        vec![("channel_names", names.join(",")), ("payload", payload)],
    )
    .await;
    let during = turns.load(Ordering::Relaxed) - before;
    counter.abort();
    shutdown.cancel();
    assert_eq!(body, json!([true, {}]));
    assert!(
        during >= names.len() - 1,
        "other tasks ran {during} times while publish_multi published to {} channels",
        names.len()
    );
}

/// The same call over the wire: every listed channel with a subscriber gets the payload, once.
#[tokio::test]
async fn publish_multi_to_a_thousand_channels_reaches_their_subscribers() {
    let s = Server::unmoderated().await;
    let names: Vec<String> = (0..1000).map(|i| format!("c{i:04}")).collect();
    for name in &names {
        s.api_ok("create_channel", &[("channel_name", name)]).await;
    }
    let mut sub = s.connected("sub").await;
    join(&mut sub, &names[0]).await;
    join(&mut sub, &names[999]).await;
    let payload = json!(vec![0; 10_000]).to_string();
    let all = names.join(",");
    s.api_ok(
        "publish_multi",
        &[
            ("channel_names", all.as_str()),
            ("payload", payload.as_str()),
        ],
    )
    .await;
    for name in [&names[0], &names[999]] {
        let args = sub.expect("PUBLISH").await;
        assert_eq!(args["channel_name"], *name);
        assert_eq!(args["payload"].as_array().unwrap().len(), 10_000);
    }
    sub.assert_quiet().await;
}

/// Names of channels that do not exist cost nothing: they are skipped before the payload is
/// touched, no channel is created for them, and the existing one still gets its publication.
#[tokio::test]
async fn publish_multi_skips_missing_channels_without_creating_them() {
    let s = Server::unmoderated().await;
    let mut sub = s.connected("sub").await;
    join(&mut sub, "real").await;
    s.web.expect("create_channel").await;
    let mut names: Vec<String> = (0..999).map(|i| format!("missing{i:03}")).collect();
    names.push("real".to_owned());
    let all = names.join(",");
    let payload = json!(vec![0; 10_000]).to_string();
    s.api_ok(
        "publish_multi",
        &[
            ("channel_names", all.as_str()),
            ("payload", payload.as_str()),
        ],
    )
    .await;
    let args = sub.expect("PUBLISH").await;
    assert_eq!(args["channel_name"], "real");
    sub.assert_quiet().await;
    let info = s.api_ok("get_server_info", &[]).await;
    assert_eq!(info["channels"], json!(["real"]));
    assert!(
        s.web.drain().await.is_empty(),
        "no webhook for missing channels"
    );
}
