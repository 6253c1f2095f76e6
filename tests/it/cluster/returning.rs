//! Returning users across nodes. Resume tickets: every node given the same `--resume-secret`
//! accepts the others' tickets, a node with another secret does not, and a revocation on one
//! node holds on every node. The grace period for leaving: a user who leaves one node and comes
//! back on another in time never left; one who does not come back leaves once.

use crate::common;
use common::cluster::Cluster;
use common::{Client, Reply};
use hookbox::hub::{LeaveGrace, ResumeKey};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// CONNECT to node `i` as alice, presenting `resume`.
async fn connect(c: &Cluster, i: usize, resume: Value) -> (Client, Map<String, Value>) {
    let mut client = c.client(i).await;
    client
        .send(
            "CONNECT",
            json!({"cookie_string": "user=alice", "resume": resume}),
        )
        .await;
    let connected = client.expect("CONNECTED").await;
    (client, connected)
}

fn ticket_of(args: &Map<String, Value>) -> Value {
    assert!(args["resume"].is_string(), "no ticket in {args:?}");
    args["resume"].clone()
}

/// alice's connection closes; her disconnect webhook is awaited.
async fn leave(c: &Cluster, client: Client) {
    client.close().await;
    while c.web.next().await.action() != "disconnect" {}
}

#[tokio::test]
async fn nodes_with_one_secret_share_tickets_and_their_revocations() {
    let c = Cluster::start_each(3, |i, config| {
        let secret = if i < 2 {
            "one secret for all"
        } else {
            "another node's own"
        };
        config.resume_key = ResumeKey::from_secret(secret);
    })
    .await;
    c.web.set(
        "connect",
        Reply::ok(json!({"name": "alice", "resume_ttl": 60})),
    );

    let (alice, connected) = connect(&c, 0, json!(true)).await;
    c.web.expect("connect").await;
    let ticket = ticket_of(&connected);
    leave(&c, alice).await;

    // Node 1 shares the secret: no webhook.
    let (alice, connected) = connect(&c, 1, ticket.clone()).await;
    assert_eq!(connected["resumed"], true);
    assert_eq!(connected["name"], "alice");
    let renewed = ticket_of(&connected);
    leave(&c, alice).await;

    // Node 2 has its own secret: the webhook path.
    let (alice, connected) = connect(&c, 2, renewed.clone()).await;
    assert!(connected.get("resumed").is_none());
    c.web.expect("connect").await;
    leave(&c, alice).await;

    // Revoked through node 0's Web API while alice is on node 1: no node lets her ticket in.
    let (mut alice, connected) = connect(&c, 1, renewed).await;
    assert_eq!(connected["resumed"], true);
    let latest = ticket_of(&connected);
    c.api_ok(0, "disconnect", &[("name", "alice")]).await;
    alice.expect_close().await;
    while c.web.next().await.action() != "disconnect" {}
    let mut open = Vec::new();
    for node in [1, 0] {
        let (alice, connected) = connect(&c, node, latest.clone()).await;
        assert!(connected.get("resumed").is_none(), "node {node}");
        c.web.expect("connect").await;
        open.push(alice);
    }
}

#[tokio::test]
async fn a_user_back_on_another_node_in_time_never_left_and_one_not_back_leaves_once() {
    // Node 0 waits long, node 1 briefly: the return is in time, the last departure is not.
    let c = Cluster::start_each(2, |i, config| {
        config.leave_grace = LeaveGrace {
            period: Duration::from_secs_f64(if i == 0 { 60.0 } else { 0.2 }),
            at_shutdown: Duration::from_secs(1),
        };
    })
    .await;
    c.web.channel_options(json!({"presenceful": true}));
    let mut bob = c.connected(1, "bob").await;
    bob.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    bob.expect("SUBSCRIBE").await;
    let mut alice = c.connected(0, "alice").await;
    alice.send("SUBSCRIBE", json!({"channel_name": "r"})).await;
    alice.expect("SUBSCRIBE").await;
    assert_eq!(bob.expect("SUBSCRIBE").await["user"], "alice");
    alice.close().await;
    common::wait_until(|| async { c.connections_of(1, "alice").await == 0 }).await;

    let mut alice = c.connected(1, "alice").await;
    assert_eq!(alice.expect("SUBSCRIBE").await["channel_name"], "r");
    bob.assert_quiet().await;
    let hooks = c.web.actions().await;
    assert!(
        !hooks
            .iter()
            .any(|h| h == "unsubscribe" || h == "disconnect"),
        "{hooks:?}"
    );

    // Gone from node 1 for good: one UNSUBSCRIBE for bob, one unsubscribe and one disconnect
    // webhook for the web app.
    alice.close().await;
    assert_eq!(bob.expect("UNSUBSCRIBE").await["user"], "alice");
    let unsubscribe = c.web.expect("unsubscribe").await;
    assert_eq!(unsubscribe.field("user"), Some("alice"));
    assert_eq!(
        c.web.expect("disconnect").await.field("name"),
        Some("alice")
    );
    bob.assert_quiet().await;
    common::assert_no_hooks_in(&c.web).await;
}
