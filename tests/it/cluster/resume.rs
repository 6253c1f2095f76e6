//! Resume tickets across nodes: every node given the same `--resume-secret` accepts the
//! others' tickets, a node with another secret does not, and a revocation on one node holds on
//! every node.

use crate::common;
use common::cluster::Cluster;
use common::{Client, Reply};
use hookbox::hub::ResumeKey;
use serde_json::{json, Map, Value};

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
