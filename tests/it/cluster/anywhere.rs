//! Without sticky sessions: each request of one CSP session may land on any node. The node that
//! has the session answers; another relays the request to it through Redis.

use crate::common;
use common::cluster::Cluster;
use common::csp::Csp;
use serde_json::json;

#[tokio::test]
async fn a_csp_session_works_whichever_node_each_request_lands_on() {
    let c = Cluster::start(3).await;
    c.web
        .channel_options(json!({"moderated": false, "presenceful": true}));
    let base = |i: usize| format!("http://{}/csp", c.nodes[i]);
    // The session lives on node 0; its requests go round the nodes.
    let mut csp = Csp::handshake_at(base(0)).await;
    csp.base = base(1);
    csp.send("CONNECT", json!({"cookie_string": "user=carol"}))
        .await;
    csp.base = base(2);
    assert_eq!(csp.expect("CONNECTED").await["name"], "carol");
    csp.base = base(1);
    csp.send("SUBSCRIBE", json!({"channel_name": "room"})).await;
    csp.base = base(2);
    assert_eq!(csp.expect("SUBSCRIBE").await["channel_name"], "room");

    // Publications from anywhere reach it, through whichever node its comet lands on.
    let mut dave = c.connected(2, "dave").await;
    dave.send("SUBSCRIBE", json!({"channel_name": "room"}))
        .await;
    dave.expect("SUBSCRIBE").await;
    csp.base = base(1);
    assert_eq!(csp.expect("SUBSCRIBE").await["user"], "dave");
    c.api_ok(2, "publish", &[("channel_name", "room"), ("payload", "1")])
        .await;
    assert_eq!(csp.expect("PUBLISH").await["payload"], 1);
    csp.send("PUBLISH", json!({"channel_name": "room", "payload": "2"}))
        .await;
    assert_eq!(dave.expect("PUBLISH").await["payload"], 1);
    assert_eq!(dave.expect("PUBLISH").await["payload"], 2);
    csp.base = base(0);
    assert_eq!(csp.expect("PUBLISH").await["payload"], 2);

    // Closed through node 2.
    csp.base = base(2);
    assert_eq!(csp.post("close", "", Vec::new()).await.ok(), "(\"OK\")");
    assert_eq!(dave.expect("UNSUBSCRIBE").await["user"], "carol");
    // Its last comet, through another node, gets the close packet.
    csp.base = base(1);
    while !csp.closed_by_server {
        csp.comet().await;
    }
    // A key that names no live node is not found either (at once: nobody listens).
    let mut stray = Csp::at(
        base(1),
        "0123456789abcdef-00000000000000000000000000000000".into(),
    );
    stray.base = base(1);
    stray
        .post("comet", "", Vec::new())
        .await
        .assert_error(404, "'Session not found'");
    // Nor is one whose node part is not a node id (nothing is asked of Redis for it).
    let odd = Csp::at(base(2), "not-a-node".into());
    odd.post("send", "", "[]")
        .await
        .assert_error(404, "'Session not found'");
}
