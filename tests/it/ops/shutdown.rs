//! SIGTERM with clients connected (the real binary): every client is told (WebSocket close 1001,
//! the CSP close packet), every user's close handling runs (unsubscribe, destroy_channel and
//! disconnect webhooks, each once), and the process exits 0.

use crate::common;
use common::binary::Running;
use common::csp::Csp;
use common::{Client, WebApp, GUARD};
use serde_json::json;
use std::collections::HashMap;

const WS_USERS: usize = 200;
const CSP_USERS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_client_and_fires_every_webhook() {
    let web = WebApp::start().await;
    let cbport = web.addr.port().to_string();
    let server = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--cbport",
            &cbport,
            "--shutdown-timeout",
            "30",
        ],
        &[],
    );
    let port = server.startup_port("127.0.0.1");

    let mut ws = Vec::new();
    for i in 0..WS_USERS {
        let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
        c.send("CONNECT", json!({"cookie_string": format!("user=ws{i}")}))
            .await;
        c.expect("CONNECTED").await;
        c.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
        c.expect("SUBSCRIBE").await;
        ws.push(c);
    }
    let mut csp = Vec::new();
    for i in 0..CSP_USERS {
        let mut c = Csp::handshake_at(format!("http://127.0.0.1:{port}/csp")).await;
        c.send("CONNECT", json!({"cookie_string": format!("user=csp{i}")}))
            .await;
        c.expect("CONNECTED").await;
        c.send("SUBSCRIBE", json!({"channel_name": format!("csp{i}")}))
            .await;
        c.expect("SUBSCRIBE").await;
        csp.push(c);
    }
    let before = web.drain().await;
    let users = WS_USERS + CSP_USERS;
    assert_eq!(count(&before, "connect"), users);

    // Each CSP client has a long-poll waiting, as the original client always does. Its sticky
    // `rp` shows when the server is handling it: `send` answers then carry the prefix.
    let mut polls = Vec::new();
    for c in &csp {
        let url = c.url("comet", &format!("a={}&rp=cbW", c.acked));
        polls.push(tokio::spawn(common::csp::fetch(c.http.post(url))));
        while c.post("send", "", "[]").await.ok() != "cbW(\"OK\")" {}
    }

    // Every WebSocket client waits for its close while the server goes down.
    let closes: Vec<_> = ws
        .into_iter()
        .map(|mut c| tokio::spawn(async move { c.frames_until_close().await.1 }))
        .collect();
    let stopping = tokio::spawn(server.stop("TERM"));
    for close in closes {
        let close = tokio::time::timeout(GUARD, close).await.unwrap().unwrap();
        assert_eq!(
            close,
            Some((1001, "server shutting down".to_owned())),
            "every WebSocket client gets close 1001"
        );
    }
    // Every CSP client's waiting long-poll returns with the close packet.
    for poll in polls {
        let r = tokio::time::timeout(GUARD, poll).await.unwrap().unwrap();
        let packets = common::csp::parse_batch(r.ok(), "", "");
        assert!(
            packets.last().is_some_and(|p| p.data.is_null()),
            "the close packet: {}",
            r.body
        );
    }
    let status = stopping.await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");

    // The process has exited: every webhook of the close handling was made before it did.
    let after = web.drain().await;
    let per_user = |action: &str| {
        let mut n: HashMap<String, usize> = HashMap::new();
        for h in after.iter().filter(|h| h.action() == action) {
            let who = h.field("name").or(h.field("user")).unwrap().to_owned();
            *n.entry(who).or_default() += 1;
        }
        n
    };
    let disconnects = per_user("disconnect");
    assert_eq!(disconnects.len(), users, "a disconnect webhook per user");
    assert!(disconnects.values().all(|n| *n == 1), "each once");
    let unsubscribes = per_user("unsubscribe");
    assert_eq!(unsubscribes.len(), users, "an unsubscribe webhook per user");
    assert!(unsubscribes.values().all(|n| *n == 1), "each once");
    // room lost its last subscriber, and each CSP user's own channel too.
    assert_eq!(count(&after, "destroy_channel"), 1 + CSP_USERS);
}

fn count(hooks: &[common::HookRecord], action: &str) -> usize {
    hooks.iter().filter(|h| h.action() == action).count()
}
