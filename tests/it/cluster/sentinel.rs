//! Redis Sentinel (`--redis-sentinel`): the nodes find the master through real Sentinel, and
//! follow a failover when the master is killed. The test runs its own master, replica and
//! Sentinel (`redis-server --sentinel`), whatever the run's engine: it kills the master.

use crate::common;
use common::cluster::Cluster;
use common::redis_proc::RedisProc;
use common::{free_port, test_config, WebApp, GUARD};
use hookbox::app::App;
use hookbox::config::{EngineConfig, RedisConfig};
use serde_json::json;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const MASTER_NAME: &str = "hbtest";

fn dir_for(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookbox-sentinel-test-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Redis on `port`; `extra` arguments (e.g. `--replicaof`).
fn redis(port: u16, extra: &[&str]) -> RedisProc {
    let dir = dir_for(port);
    let port = port.to_string();
    let mut args: Vec<OsString> = [
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(dir.clone().into_os_string());
    args.extend(extra.iter().map(OsString::from));
    RedisProc::spawn(args, dir.clone())
}

/// A Sentinel on `port` watching the master on `master`; quick to call it down (one Sentinel is
/// the quorum). `extra`: more lines of its configuration.
fn sentinel(port: u16, master: u16, extra: &str) -> RedisProc {
    let dir = dir_for(port);
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 1\n\
             sentinel down-after-milliseconds {MASTER_NAME} 500\n\
             sentinel failover-timeout {MASTER_NAME} 5000\n{extra}",
            dir.display()
        ),
    )
    .unwrap();
    RedisProc::spawn([conf.as_os_str(), OsStr::new("--sentinel")], dir.clone())
}

/// `redis-cli -p port args…`'s output ("" if it fails).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Waits (within a bound) for `f` to hold; `what` names it if it never does.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD * 3;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn on_sentinel(url: &str, prefix: &str) -> EngineConfig {
    EngineConfig::Redis(RedisConfig {
        urls: vec![url.to_owned()],
        cluster: false,
        sentinel: Some(MASTER_NAME.to_owned()),
        sentinel_password: None,
        prefix: prefix.to_owned(),
        node_timeout: Duration::from_secs(2),
    })
}

fn master_port_named(sentinel: u16) -> Option<u16> {
    let out = cli(
        sentinel,
        &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
    );
    out.lines().nth(1)?.trim().parse().ok()
}

#[tokio::test]
async fn the_nodes_follow_a_failover_and_deliver_nothing_twice() {
    let (m, r, s) = (free_port(), free_port(), free_port());
    let mut master = redis(m, &[]);
    let replica = redis(r, &["--replicaof", "127.0.0.1", &m.to_string()]);
    until("the replica is in sync", || {
        cli(r, &["INFO", "replication"]).contains("master_link_status:up")
    })
    .await;
    let sentinel = sentinel(s, m, "");
    until("Sentinel knows the replica", || {
        cli(s, &["SENTINEL", "replicas", MASTER_NAME]).contains(&r.to_string())
    })
    .await;
    assert_eq!(master_port_named(s), Some(m));

    let url = format!("redis://127.0.0.1:{s}");
    let prefix = format!("sentinel{:016x}", rand::random::<u64>());
    let c = Cluster::start_with(2, |config| config.engine = on_sentinel(&url, &prefix)).await;
    c.web.channel_options(json!({"moderated": false}));
    let (mut alice, mut bob) = c.alice_and_bob_in("room").await;
    for n in ["1", "2"] {
        c.api_ok(0, "publish", &[("channel_name", "room"), ("payload", n)])
            .await;
    }
    for cl in [&mut alice, &mut bob] {
        assert_eq!(cl.expect("PUBLISH").await["payload"], 1);
        assert_eq!(cl.expect("PUBLISH").await["payload"], 2);
    }
    // The replica has everything the master accepted (the failover itself loses nothing).
    assert_eq!(cli(m, &["WAIT", "1", "5000"]).trim(), "1");

    master.kill();
    until("Sentinel promotes the replica", || {
        master_port_named(s) == Some(r)
    })
    .await;
    // Each node follows: its readiness (a PING to the master) comes back.
    let http = common::http_client();
    for node in &c.nodes {
        let deadline = tokio::time::Instant::now() + GUARD * 3;
        loop {
            let resp = http.get(format!("http://{node}/readyz")).send().await;
            if resp.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{node} never followed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Publishing works again, through either node; each subscriber gets each publication once:
    // nothing from before the failover comes again (frames arrive in channel order, so a
    // repeat would come before 3).
    c.api_ok(1, "publish", &[("channel_name", "room"), ("payload", "3")])
        .await;
    c.api_ok(0, "publish", &[("channel_name", "room"), ("payload", "4")])
        .await;
    for cl in [&mut alice, &mut bob] {
        assert_eq!(cl.expect("PUBLISH").await["payload"], 3);
        assert_eq!(cl.expect("PUBLISH").await["payload"], 4);
    }
    // The channel and its members are on the new master.
    assert_eq!(cli(r, &["ROLE"]).lines().next(), Some("master"));
    let info = c
        .api_ok(1, "get_channel_info", &[("channel_name", "room")])
        .await;
    assert_eq!(info["subscribers"], json!(["alice", "bob"]));
    drop((replica, sentinel));
}

/// A Sentinel that names `port` as the master whatever the truth, as one that lags behind a
/// failover (or was cut off from the others) does. It speaks just enough RESP: each command is
/// an array of bulk strings; `SENTINEL …` gets the address, anything else `+OK`.
async fn stale_sentinel(port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(head)) = lines.next_line().await {
                    let n: usize = head.trim_start_matches('*').parse().unwrap_or(0);
                    let mut words = Vec::new();
                    for _ in 0..n {
                        let _len = lines.next_line().await;
                        words.push(lines.next_line().await.ok().flatten().unwrap_or_default());
                    }
                    let port = port.to_string();
                    let reply = match words.first() {
                        Some(w) if w.eq_ignore_ascii_case("SENTINEL") => {
                            format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{port}\r\n", port.len())
                        }
                        _ => "+OK\r\n".to_owned(),
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    own
}

/// Starts a node on the master the Sentinels at `ports` name.
async fn start_on(web: &WebApp, ports: &[u16]) -> Result<App, String> {
    let urls = ports.iter().map(|p| format!("redis://127.0.0.1:{p}"));
    start_with(web, urls.collect(), None).await
}

/// Starts a node on the master the Sentinels at `urls` name, giving them `password`.
async fn start_with(
    web: &WebApp,
    urls: Vec<String>,
    password: Option<&str>,
) -> Result<App, String> {
    let mut config = test_config(web);
    config.engine = EngineConfig::Redis(RedisConfig {
        urls,
        cluster: false,
        sentinel: Some(MASTER_NAME.to_owned()),
        sentinel_password: password.map(str::to_owned),
        prefix: "stale".to_owned(),
        node_timeout: Duration::from_secs(2),
    });
    App::bind(config, Default::default())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_node_does_not_take_a_replica_for_the_master() {
    let (m, r, acl) = (free_port(), free_port(), free_port());
    let _master = redis(m, &[]);
    let _replica = redis(r, &["--replicaof", "127.0.0.1", &m.to_string()]);
    // A master whose only user may not run ROLE.
    let _locked = redis(
        acl,
        &[
            "--user", "default", "on", "nopass", "~*", "&*", "+@all", "-role",
        ],
    );
    until("the replica is up", || {
        cli(r, &["ROLE"]).lines().next() == Some("slave")
    })
    .await;
    until("the locked master is up", || {
        cli(acl, &["ROLE"]).contains("NOPERM")
    })
    .await;
    let web = WebApp::start().await;
    let (stale, honest, locked) = (
        stale_sentinel(r).await,
        stale_sentinel(m).await,
        stale_sentinel(acl).await,
    );
    // Only a replica named: the node refuses to start.
    let err = start_on(&web, &[stale])
        .await
        .err()
        .expect("a startup error");
    assert!(
        err.contains(&format!(
            "the Redis Sentinel names 127.0.0.1:{r} as the master, but it is not one"
        )),
        "{err}"
    );
    // A stale Sentinel listed first, an honest one after: the node takes the master.
    if let Err(e) = start_on(&web, &[stale, honest]).await {
        panic!("not started on the master: {e}");
    }
    // A master that may not say what it is: the Sentinels' word stands.
    if let Err(e) = start_on(&web, &[locked]).await {
        panic!("not started on the locked master: {e}");
    }
}

/// Sentinels that ask for a password (`requirepass`) get
/// `--redis-sentinel-password`; the master gets the password of the URL.
#[tokio::test]
async fn a_node_gives_sentinels_that_ask_for_one_their_password() {
    let (m, s) = (free_port(), free_port());
    let _master = redis(m, &["--requirepass", "master-pw"]);
    let _sentinel = sentinel(
        s,
        m,
        &format!("requirepass \"sentinel%41pw\"\nsentinel auth-pass {MASTER_NAME} master-pw\n"),
    );
    until("the Sentinel answers with its password", || {
        let named = cli(
            s,
            &[
                "-a",
                "sentinel%41pw",
                "--no-auth-warning",
                "SENTINEL",
                "get-master-addr-by-name",
                MASTER_NAME,
            ],
        );
        named.lines().nth(1).map(str::trim) == Some(&*m.to_string())
    })
    .await;
    let web = WebApp::start().await;
    let urls = vec![format!("redis://:master-pw@127.0.0.1:{s}")];
    // Without the Sentinels' password: not started, and told why.
    let err = start_with(&web, urls.clone(), None)
        .await
        .err()
        .expect("a startup error");
    assert!(err.contains("no Sentinel named the master"), "{err}");
    assert!(err.contains("NOAUTH"), "{err}");
    assert!(!err.contains("master-pw"), "a password in an error: {err}");
    // With it (as given, `%41` and all): started on the master, which took the URL's password.
    if let Err(e) = start_with(&web, urls, Some("sentinel%41pw")).await {
        panic!("not started through the Sentinel: {e}");
    }
}
