//! The per-user and per-connection bounds on what a connected client may make the server do:
//! channels per user (`--max-channels-per-user`) and publishes per second per connection and
//! per user (`--publish-rate`/`--publish-burst`, `--user-publish-rate`/`--user-publish-burst`).
//! The rates in these tests refill so slowly (one token per ~11 days) that only the burst counts,
//! whatever the machine's speed.

use crate::common;
use common::*;
use hookbox::hub::limits::Rate;
use serde_json::json;

const NO_REFILL: f64 = 1e-6;

fn burst(n: f64) -> Rate {
    Rate {
        per_second: NO_REFILL,
        burst: n,
    }
}

#[tokio::test]
async fn a_connection_past_its_publish_burst_gets_an_error_and_no_webhook() {
    let s = Server::start_with(|c| c.action_limits.connection_publish = burst(3.0)).await;
    s.web
        .channel_options(json!({"moderated": false, "history_size": 10}));
    let mut c = s.connected("ann").await;
    join(&mut c, "room").await;
    s.web.expect("create_channel").await;
    for i in 0..3 {
        publish(&mut c, "room", &i.to_string()).await;
        assert_eq!(c.expect("PUBLISH").await["payload"], i);
    }
    let id = c
        .send("PUBLISH", json!({"channel_name": "room", "payload": "3"}))
        .await;
    assert_eq!(
        c.expect_error("Publishing too fast (at most 0.000001 per second per connection)")
            .await,
        id
    );
    // MESSAGE spends the same bucket.
    let id = c
        .send("MESSAGE", json!({"name": "ann", "payload": "\"hi\""}))
        .await;
    assert_eq!(
        c.expect_error("Publishing too fast (at most 0.000001 per second per connection)")
            .await,
        id
    );
    // Other frames still work, and the refused publications reached nobody.
    join(&mut c, "other").await;
    s.web.expect("create_channel").await;
    let mut d = s.connected("bob").await;
    let history = join_history(&mut d, "room").await;
    let published: Vec<_> = history.iter().filter(|e| e[0] == "PUBLISH").collect();
    assert_eq!(published.len(), 3, "{history:?}");
    // Another connection has its own bucket.
    publish(&mut d, "room", "\"bob\"").await;
    assert_eq!(d.expect("PUBLISH").await["payload"], "bob");
    assert_no_hooks(&s).await;
}

#[tokio::test]
async fn a_users_connections_share_the_user_publish_burst() {
    let s = Server::start_with(|c| {
        c.action_limits.connection_publish = burst(10.0);
        c.action_limits.user_publish = burst(3.0);
    })
    .await;
    s.web.channel_options(json!({"moderated": false}));
    let mut a = s.connected("ann").await;
    let mut b = s.connected("ann").await;
    join(&mut a, "room").await;
    s.web.expect("create_channel").await;
    // Every connection of the user is subscribed, and told so.
    assert_eq!(b.expect("SUBSCRIBE").await["channel_name"], "room");
    publish(&mut a, "room", "1").await;
    publish(&mut b, "room", "2").await;
    publish(&mut a, "room", "3").await;
    for c in [&mut a, &mut b] {
        for p in [1, 2, 3] {
            assert_eq!(c.expect("PUBLISH").await["payload"], p);
        }
    }
    let id = b
        .send("PUBLISH", json!({"channel_name": "room", "payload": "4"}))
        .await;
    assert_eq!(
        b.expect_error("Publishing too fast (at most 0.000001 per second per user)")
            .await,
        id
    );
    // Another user is not held back by ann's bucket.
    let mut c = s.connected("cid").await;
    join(&mut c, "room").await;
    publish(&mut c, "room", "5").await;
    assert_eq!(c.expect("PUBLISH").await["payload"], 5);
    // The Web API is the web app's own voice: not rate limited.
    for _ in 0..5 {
        s.api_ok("publish", &[("channel_name", "room"), ("payload", "6")])
            .await;
    }
    for _ in 0..5 {
        assert_eq!(c.expect("PUBLISH").await["payload"], 6);
    }
}

#[tokio::test]
async fn a_user_at_the_channel_limit_cannot_subscribe_to_more_from_any_side() {
    let s = Server::start_with(|c| c.action_limits.max_channels_per_user = 2).await;
    s.web.channel_options(json!({"moderated": false}));
    let mut c = s.connected("ann").await;
    for ch in ["a", "b"] {
        join(&mut c, ch).await;
        s.web.expect("create_channel").await;
    }
    let id = c.send("SUBSCRIBE", json!({"channel_name": "c"})).await;
    assert_eq!(
        c.expect_error("Too many channels for one user (at most 2)")
            .await,
        id
    );
    // Refused before the channel was created: no webhook, no channel.
    assert_no_hooks(&s).await;
    assert_eq!(
        s.api_err("get_channel_info", &[("channel_name", "c")])
            .await,
        "Channel c doesn't exist"
    );
    // The Web API meets the same bound.
    s.api_ok("create_channel", &[("channel_name", "d")]).await;
    assert_eq!(
        s.api_err("subscribe", &[("name", "ann"), ("channel_name", "d")])
            .await,
        "Too many channels for one user (at most 2)"
    );
    // A subscription the user already has is not a new one.
    c.send("SUBSCRIBE", json!({"channel_name": "a"})).await;
    // Leaving one makes room for another.
    c.send("UNSUBSCRIBE", json!({"channel_name": "a"})).await;
    assert_eq!(c.expect("UNSUBSCRIBE").await["channel_name"], "a");
    s.web.expect("destroy_channel").await;
    // "d" was made by the Web API with the default options: moderated.
    join(&mut c, "d").await;
    s.web.expect("subscribe").await;
    assert_no_hooks(&s).await;
}
