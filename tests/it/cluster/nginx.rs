//! The nginx configuration of `docs/clustering.md`, run as written (only its ports changed) by a
//! real nginx in front of three nodes on one Redis: WebSocket and CSP clients through nginx,
//! the Web API through nginx, and clients of the nodes themselves share one channel.

use crate::common;
use common::cluster::Cluster;
use common::csp::Csp;
use common::sse::Sse;
use common::{free_port, http_client, Client, GUARD};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The ```nginx block of docs/clustering.md.
fn documented_config() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/clustering.md"))
        .unwrap();
    let start = doc
        .find("```nginx\n")
        .expect("an nginx block in docs/clustering.md")
        + 9;
    let len = doc[start..].find("```").unwrap();
    doc[start..start + len].to_owned()
}

/// nginx in the foreground, one process, everything under a private directory.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn start(cluster: &Cluster) -> Nginx {
        let mut site = documented_config();
        let port = free_port();
        assert!(site.contains("listen 80;"), "{site}");
        site = site.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        for (i, node) in cluster.nodes.iter().enumerate() {
            let documented = format!("server 127.0.0.1:{};", 8001 + i);
            assert!(site.contains(&documented), "{documented} in {site}");
            site = site.replace(&documented, &format!("server {node};"));
        }
        let dir = std::env::temp_dir().join(format!("hookbox-nginx-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, dir, port };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&self) {
        let deadline = std::time::Instant::now() + GUARD;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> &'static str {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("this test needs nginx (Debian package `nginx`; ./scripts/test.sh installs it)");
}

#[tokio::test]
async fn three_nodes_behind_the_documented_nginx_act_as_one_server() {
    let c = Cluster::start(3).await;
    c.web
        .channel_options(json!({"moderated": false, "presenceful": true}));
    let nginx = Nginx::start(&c);
    let front = format!("127.0.0.1:{}", nginx.port);

    // A WebSocket client through nginx: its cookie reaches the connect webhook.
    let mut ws = Client::open(&format!("ws://{front}/ws")).await;
    ws.send("CONNECT", json!({"cookie_string": "user=alice"}))
        .await;
    let hook = c.web.expect("connect").await;
    assert_eq!(hook.header("cookie"), Some("user=alice"));
    assert_eq!(ws.expect("CONNECTED").await["name"], "alice");
    ws.send("SUBSCRIBE", json!({"channel_name": "hall"})).await;
    assert_eq!(ws.expect("SUBSCRIBE").await["user"], "alice");

    // A CSP client through nginx (a long-polling browser without WebSocket).
    let mut csp = Csp::handshake_at(format!("http://{front}/csp")).await;
    csp.send("CONNECT", json!({"cookie_string": "user=bob"}))
        .await;
    assert_eq!(csp.expect("CONNECTED").await["name"], "bob");
    csp.send("SUBSCRIBE", json!({"channel_name": "hall"})).await;
    let own = csp.expect("SUBSCRIBE").await;
    assert_eq!(own["presence"], json!(["alice", "bob"]));
    assert_eq!(ws.expect("SUBSCRIBE").await["user"], "bob");

    // Clients of each node directly, as other balancers would place them.
    let mut direct: Vec<Client> = Vec::new();
    for (i, name) in ["carol", "dave", "erin"].into_iter().enumerate() {
        let mut d = c.connected(i, name).await;
        d.send("SUBSCRIBE", json!({"channel_name": "hall"})).await;
        assert_eq!(d.expect("SUBSCRIBE").await["user"], name);
        assert_eq!(ws.expect("SUBSCRIBE").await["user"], name);
        assert_eq!(csp.expect("SUBSCRIBE").await["user"], name);
        for earlier in direct.iter_mut() {
            assert_eq!(earlier.expect("SUBSCRIBE").await["user"], name);
        }
        direct.push(d);
    }

    // A publish from the CSP client and one through the Web API behind nginx reach everybody.
    csp.send(
        "PUBLISH",
        json!({"channel_name": "hall", "payload": "\"from bob\""}),
    )
    .await;
    let resp = http_client()
        .post(format!("http://{front}/web/publish"))
        .form(&[
            ("security_token", "secret"),
            ("channel_name", "hall"),
            ("payload", "\"from the app\""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "[true, {}]");
    // One order per channel for everybody: the one alice saw.
    let order = [
        ws.expect("PUBLISH").await["payload"].clone(),
        ws.expect("PUBLISH").await["payload"].clone(),
    ];
    let mut sorted = order.clone();
    sorted.sort_by_key(|v| v.to_string());
    assert_eq!(sorted, [json!("from bob"), json!("from the app")]);
    for d in direct.iter_mut() {
        assert_eq!(d.expect("PUBLISH").await["payload"], order[0]);
        assert_eq!(d.expect("PUBLISH").await["payload"], order[1]);
    }
    // bob's own publication comes back to bob (channels are reflective by default).
    assert_eq!(csp.expect("PUBLISH").await["payload"], order[0]);
    assert_eq!(csp.expect("PUBLISH").await["payload"], order[1]);

    // get_channel_info through nginx sees every node's subscribers.
    let info: serde_json::Value = serde_json::from_str(
        &http_client()
            .post(format!("http://{front}/web/get_channel_info"))
            .form(&[("security_token", "secret"), ("channel_name", "hall")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let mut subscribers: Vec<String> =
        serde_json::from_value(info[1]["subscribers"].clone()).unwrap();
    subscribers.sort();
    assert_eq!(subscribers, ["alice", "bob", "carol", "dave", "erin"]);
}

/// An SSE stream through the documented nginx (round robin: no stickiness): the browser's
/// reconnect with `Last-Event-ID` may reach another node, which recovers exactly what the
/// stream missed from the shared history.
#[tokio::test]
async fn an_sse_reconnect_through_nginx_recovers_on_whichever_node_it_reaches() {
    let c = Cluster::start(3).await;
    c.web
        .channel_options(json!({"moderated": false, "history_size": 10}));
    // The channel outlives its last subscriber, so that there is something to recover.
    c.web.set("destroy_channel", common::Reply::deny(json!({})));
    let nginx = Nginx::start(&c);
    let front = format!("http://127.0.0.1:{}", nginx.port);
    let mut sse = Sse::open_proxied(&front, "channel=feed", &[("cookie", "user=ann")]).await;
    sse.expect("CONNECTED").await;
    sse.expect("SUBSCRIBE").await;
    c.api_ok(0, "publish", &[("channel_name", "feed"), ("payload", "1")])
        .await;
    assert_eq!(sse.expect("PUBLISH").await["payload"], 1);
    let last = sse.last_id.clone().expect("an id");
    drop(sse);
    for (node, n) in [(1, "2"), (2, "3")] {
        c.api_ok(node, "publish", &[("channel_name", "feed"), ("payload", n)])
            .await;
    }
    // Three reconnects, one per node under round robin: each recovers 2 and 3, once.
    for _ in 0..3 {
        let mut sse = Sse::open_proxied(
            &front,
            "channel=feed",
            &[("cookie", "user=ann"), ("last-event-id", &last)],
        )
        .await;
        sse.expect("CONNECTED").await;
        let answer = sse.expect("SUBSCRIBE").await;
        assert_eq!(answer["recovered"], true, "{answer:?}");
        assert_eq!(sse.expect("PUBLISH").await["payload"], 2);
        assert_eq!(sse.expect("PUBLISH").await["payload"], 3);
    }
}
