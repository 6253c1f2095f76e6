//! A rolling restart as users see it: two nodes on one Redis, every client on node 0, which is
//! stopped (as SIGTERM does) while the web app keeps publishing through node 1. Every client
//! comes back on node 1 with its resume ticket, recovers what was published meanwhile, and ends
//! with every publication exactly once, in order; with tickets and the grace period for leaving,
//! the web app is asked nothing and told nothing about the restart.

use crate::common;
use common::cluster::Cluster;
use common::Client;
use hookbox::hub::{LeaveGrace, ResumeKey};
use serde_json::{json, Map, Value};
use std::time::Duration;

const CLIENTS: usize = 60;
/// Publications before the restart, and while the clients come back.
const BEFORE: u64 = 5;
const DURING: u64 = 30;

/// One client's view: what it received, where it is, its latest ticket.
struct Viewer {
    name: String,
    seen: Vec<u64>,
    epoch: String,
    offset: u64,
    ticket: String,
}

impl Viewer {
    /// Takes in a frame: publications in order, positions, fresh tickets.
    fn take(&mut self, name: &str, args: &Map<String, Value>) {
        match name {
            "PUBLISH" => {
                self.seen.push(args["payload"].as_u64().unwrap());
                self.offset = args["offset"].as_u64().unwrap();
            }
            "RESUME" => self.ticket = args["resume"].as_str().unwrap().to_owned(),
            _ => {}
        }
    }
}

/// Connects `name` to node 0, joins `feed`, and waits for the ticket that names it.
async fn join(c: &Cluster, name: String) -> (Client, Viewer) {
    let mut client = c.client(0).await;
    client
        .send(
            "CONNECT",
            json!({"cookie_string": format!("user={name}"), "recovery": true, "resume": true}),
        )
        .await;
    client.expect("CONNECTED").await;
    client
        .send("SUBSCRIBE", json!({"channel_name": "feed"}))
        .await;
    let own = client.expect("SUBSCRIBE").await;
    let ticket = client.expect("RESUME").await["resume"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = Viewer {
        name,
        seen: Vec::new(),
        epoch: own["epoch"].as_str().unwrap().to_owned(),
        offset: own["offset"].as_u64().unwrap(),
        ticket,
    };
    (client, viewer)
}

/// Node 0 closed `client`: once node 0 has let go of the connection (so that, without the grace
/// period, the user would be gone), come back on node 1 with the ticket and recover; then read
/// until the last publication. The new connection stays open.
async fn come_back(c: &Cluster, mut client: Client, mut v: Viewer) -> (Client, Viewer) {
    let (frames, _) = client.frames_until_close().await;
    for (_, name, args) in &frames {
        v.take(name, args);
    }
    common::wait_until(|| async { c.connections_of(1, &v.name).await == 0 }).await;
    let mut client = c.client(1).await;
    client
        .send(
            "CONNECT",
            json!({"cookie_string": format!("user={}", v.name), "recovery": true, "resume": v.ticket}),
        )
        .await;
    let connected = client.expect("CONNECTED").await;
    assert_eq!(connected["resumed"], true, "{connected:?}");
    client
        .send(
            "SUBSCRIBE",
            json!({"channel_name": "feed", "recover": {"epoch": v.epoch, "offset": v.offset}}),
        )
        .await;
    // Until the answer to the recovery, the channel's frames are dropped: the answer replays
    // every one of them (docs/protocol.md, "Recovery after a reconnect").
    loop {
        let (_, name, args) = client.recv().await;
        if name == "SUBSCRIBE" && args.contains_key("recovered") {
            assert_eq!(args["recovered"], true, "{args:?}");
            break;
        }
    }
    while v.seen.last() != Some(&(BEFORE + DURING)) {
        let (_, name, args) = client.recv().await;
        v.take(&name, &args);
    }
    (client, v)
}

#[tokio::test]
async fn a_rolling_restart_loses_nothing_repeats_nothing_and_asks_the_web_app_nothing() {
    let c = Cluster::start_with(2, |config| {
        config.resume_key = ResumeKey::from_secret("one secret for the whole cluster");
        config.leave_grace = LeaveGrace {
            period: Duration::from_secs(30),
            at_shutdown: Duration::from_secs(3),
        };
    })
    .await;
    c.web.connect_options(json!({"resume_ttl": 300}));
    c.web
        .channel_options(json!({"history_size": 200, "moderated_subscribe": true}));
    let mut joined = Vec::new();
    for i in 0..CLIENTS {
        joined.push(join(&c, format!("viewer{i}")).await);
    }
    for n in 1..=BEFORE {
        c.api_ok(
            1,
            "publish",
            &[("channel_name", "feed"), ("payload", &n.to_string())],
        )
        .await;
    }
    let before = c.web.drain().await.len();
    assert_eq!(
        before,
        2 * CLIENTS + 1,
        "a connect and a subscribe each, one create_channel"
    );

    c.stop(0);
    let c = std::sync::Arc::new(c);
    let mut back = Vec::new();
    for (client, viewer) in joined {
        let c = c.clone();
        back.push(tokio::spawn(
            async move { come_back(&c, client, viewer).await },
        ));
    }
    for n in BEFORE + 1..=BEFORE + DURING {
        c.api_ok(
            1,
            "publish",
            &[("channel_name", "feed"), ("payload", &n.to_string())],
        )
        .await;
    }
    let everything: Vec<u64> = (1..=BEFORE + DURING).collect();
    let mut open = Vec::new();
    for task in back {
        let (client, v) = task.await.unwrap();
        assert_eq!(v.seen, everything, "{} lost or repeated some", v.name);
        open.push(client);
    }
    // Node 0's close handling has run its course (its grace period cut short by shutdown).
    c.stopped(0).await;
    // The web app heard nothing of the restart: no connect, subscribe, unsubscribe or
    // disconnect webhook.
    let calls = c.web.actions().await;
    assert!(
        calls.is_empty(),
        "web app calls during the restart: {calls:?}"
    );
}
