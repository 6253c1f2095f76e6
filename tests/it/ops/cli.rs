//! The real `hookbox` binary: the startup line, option syntax (§7), `--config` and `HOOKBOX_*`
//! precedence, one-line errors with a non-zero exit, and clean exits on SIGTERM/SIGINT.
//!
//! Child output is read with bounded waits (hang guards only); a child still running when a test
//! ends is killed.

use crate::common;
use common::binary::{api_post, command, parse_listening, Running, BIN};
use common::{free_port, Client, WebApp, GUARD};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

/// Runs the binary to its exit: status, stdout, stderr.
fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let child = command(BIN, envs)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookbox");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(GUARD) {
        Ok(out) => {
            let out = out.unwrap();
            let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
            (out.status, text(out.stdout), text(out.stderr))
        }
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("hookbox {args:?} did not exit");
        }
    }
}

/// Starts the binary, checks that it listens on `127.0.0.1:<port>`, and stops it with SIGTERM,
/// expecting a clean exit.
fn assert_starts_on(args: &[&str], envs: &[(&str, &str)], port: u16) {
    let server = Running::spawn(args, envs);
    assert_eq!(server.startup_port("127.0.0.1"), port);
    assert_eq!(server.signal("TERM").code(), Some(0));
}

/// Publishes through the Web API (token `tok`) to "ghost", a channel that does not exist.
async fn publish_to_ghost(port: u16) -> Value {
    let form = [("security_token", "tok"), ("channel_name", "ghost")];
    api_post(port, "publish", &form).await
}

/// Runs the binary expecting a startup failure: a non-zero exit and one line on stderr that
/// contains every one of `names`.
fn assert_fails(args: &[&str], envs: &[(&str, &str)], names: &[&str]) {
    let (status, stdout, stderr) = run_to_exit(args, envs);
    assert!(!status.success(), "{args:?} should fail; stderr: {stderr}");
    assert!(status.code().is_some_and(|c| c != 0), "{status:?}");
    assert_eq!(stdout, "", "{args:?}");
    let text = stderr.strip_suffix('\n').unwrap_or(&stderr);
    assert!(
        !text.is_empty() && !text.contains('\n'),
        "{args:?}: not a single line: {stderr:?}"
    );
    for name in names {
        assert!(
            text.contains(name),
            "{args:?}: {text:?} does not name {name}"
        );
    }
}

#[test]
fn parse_listening_is_strict() {
    let good =
        "2026-11-27 23:28:09,648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001";
    assert_eq!(parse_listening(good, "hookbox", "127.0.0.1"), Some(8001));
    for bad in [
        "2026-11-27 23:28:09.648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001",
        "2026-11-27T23:28:09,648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001",
        "2026-11-27 23:28:09,648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001 ",
        "2026-11-27 23:28:09,648 - hookbox - INFO - Listening to hookbox on http://0.0.0.0:8001",
        "2026-13-27 23:28:09,648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001",
        "x 2026-11-27 23:28:09,648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001",
    ] {
        assert_eq!(parse_listening(bad, "hookbox", "127.0.0.1"), None, "{bad}");
    }
}

#[tokio::test]
async fn startup_line_then_websocket_then_sigterm() {
    let server = Running::spawn(&["-i", "127.0.0.1", "-p", "0"], &[]);
    let port = server.startup_port("127.0.0.1");
    assert_ne!(port, 0, "the bound port is printed");
    common::binary::assert_engine_line(&server.next_line());
    // What is on, and what is not, said at startup.
    assert!(server
        .next_line()
        .ends_with(" - hookbox - INFO - Web API: off (start with -r TOKEN to turn it on)"));
    assert!(server.next_line().ends_with(
        " - hookbox - INFO - Admin console: off (start with -a PASSWORD to turn it on)"
    ));
    let (ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?x=1"))
        .await
        .expect("the printed port accepts a WebSocket");
    assert_eq!(resp.status().as_u16(), 101);
    drop(ws);
    let status = server.signal("TERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn the_startup_lines_say_where_the_web_api_and_the_console_are() {
    let p = free_port();
    let port = p.to_string();
    let server = Running::spawn(
        &[
            "-p",
            &port,
            "-r",
            "tok",
            "-a",
            "pw",
            "-w",
            "0",
            "-W",
            "127.0.0.1",
        ],
        &[],
    );
    assert_eq!(server.startup_port("0.0.0.0"), p);
    let api = server.next_line();
    let api_port = parse_listening(&api, "hookbox/webapi", "127.0.0.1").expect("the API line");
    common::binary::assert_engine_line(&server.next_line());
    let expect = [
        format!("Web API: on at http://127.0.0.1:{api_port}/web/<method> (token from -r)"),
        format!("Admin console: http://127.0.0.1:{p}/admin/"),
        "Listening on every interface (0.0.0.0): other machines can reach hookbox; -i 127.0.0.1 \
         keeps it to this one"
            .to_owned(),
    ];
    for text in expect {
        let line = server.next_line();
        assert!(
            line.ends_with(&format!(" - hookbox - INFO - {text}")),
            "{line}"
        );
    }
    server.signal("TERM");
}

/// The operator sees a client's message that was too large (the client gets an ERROR).
#[tokio::test]
async fn an_oversized_message_is_logged() {
    let web = WebApp::start().await;
    let cbport = web.addr.port().to_string();
    let server = Running::spawn(&["-i", "127.0.0.1", "-p", "0", "--cbport", &cbport], &[]);
    let port = server.startup_port("127.0.0.1");
    let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": "user=ann"}))
        .await;
    c.expect("CONNECTED").await;
    c.send_text(&"x".repeat(70_000)).await;
    c.expect("ERROR").await;
    let line = loop {
        let line = server.next_line();
        if line.contains("dropped a") {
            break line;
        }
    };
    assert!(
        line.ends_with(
            " - hookbox - INFO - dropped a 70000-byte message from 127.0.0.1 (--max-message-size is 65536)"
        ),
        "{line}"
    );
    server.stop("TERM").await;
}

#[tokio::test]
async fn access_and_error_log_files() {
    let dir = std::env::temp_dir().join(format!("hookbox-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (access, errors) = (dir.join("access.log"), dir.join("errors.log"));
    let server = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-A",
            access.to_str().unwrap(),
            "--log-file-errors",
            errors.to_str().unwrap(),
        ],
        &[],
    );
    let port = server.startup_port("127.0.0.1");
    // The access line is written before the upgrade is answered.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    drop(ws);
    assert_eq!(server.signal("TERM").code(), Some(0));
    let text = std::fs::read_to_string(&access).unwrap();
    let line = text.lines().next().expect("one access line");
    assert!(
        line.contains(" - access - INFO - Incoming WebSocket connection\t127.0.0.1\t127.0.0.1:"),
        "{line}"
    );
    // Only warnings and errors go to -E: the startup line is not there.
    assert!(!std::fs::read_to_string(&errors)
        .unwrap()
        .contains("Listening"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigint_exits_cleanly() {
    let server = Running::spawn(&["--interface", "127.0.0.1", "--port", "0"], &[]);
    server.startup_port("127.0.0.1");
    let status = server.signal("INT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn last_occurrence_wins_in_both_syntaxes() {
    let p = free_port();
    assert_starts_on(
        &[
            "-i",
            "0.0.0.0",
            "--interface=127.0.0.1",
            "--port",
            "0",
            &format!("--port={p}"),
        ],
        &[],
        p,
    );

    let p = free_port();
    assert_starts_on(
        &[
            "--interface",
            "127.0.0.1",
            "--port=0",
            "-p",
            "1",
            &format!("-p{p}"),
        ],
        &[],
        p,
    );
}

#[tokio::test]
async fn x_takes_a_value() {
    let server = Running::spawn(&["-i", "127.0.0.1", "-p", "0", "-r", "tok", "-x", "1"], &[]);
    let port = server.startup_port("127.0.0.1");
    let body = publish_to_ghost(port).await;
    assert_eq!(body, json!([true, {}]));
    server.signal("TERM");

    // An empty value leaves it off.
    let server = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--api-security-token=tok",
            "--ignore-publish-non-existing-channels",
            "",
        ],
        &[],
    );
    let port = server.startup_port("127.0.0.1");
    let body = publish_to_ghost(port).await;
    assert_eq!(body, json!([false, {"msg": "Channel ghost doesn't exist"}]));
    server.signal("TERM");

    // Without a value it is an error.
    assert_fails(
        &["-i", "127.0.0.1", "-p", "0", "-x"],
        &[],
        &["ignore-publish-non-existing-channels"],
    );
}

#[tokio::test]
async fn config_file_env_and_command_line_precedence() {
    let web = WebApp::start().await;
    let (file_port, env_port, api_port) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("hookbox-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("precedence.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "interface = \"0.0.0.0\"\nport = {file_port}\nweb-api-port = {api_port}\ncbhost = \"127.0.0.1\"\n\
         cbport = {}\ncbpath = \"/fromfile\"\napi-security-token = \"filetok\"",
        web.addr.port()
    )
    .unwrap();
    drop(f);

    let env_port_s = env_port.to_string();
    let server = Running::spawn(
        &[
            "--config",
            path.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "--api-security-token",
            "clitok",
        ],
        &[
            ("HOOKBOX_PORT", &env_port_s),
            ("HOOKBOX_API_SECURITY_TOKEN", "envtok"),
        ],
    );
    // port: env over file; interface: command line over file.
    assert_eq!(server.startup_port("127.0.0.1"), env_port);
    // web-api-port from the file: a separate API listener.
    let line = server.next_line();
    assert_eq!(
        parse_listening(&line, "hookbox/webapi", "127.0.0.1"),
        Some(api_port),
        "{line}"
    );

    // api-security-token: command line over env over file.
    let ok = api_post(api_port, "get_server_info", &[("security_token", "clitok")]).await;
    assert_eq!(ok, json!([true, {"channels": [], "connections": []}]));
    for stale in ["envtok", "filetok"] {
        let body = api_post(api_port, "get_server_info", &[("security_token", stale)]).await;
        assert_eq!(
            body,
            json!([false, {"msg": "Invalid Security Token"}]),
            "{stale}"
        );
    }

    // cbhost/cbport/cbpath from the file.
    let mut c = Client::open(&format!("ws://127.0.0.1:{env_port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": "user=filed"}))
        .await;
    let hook = web.expect("connect").await;
    assert_eq!(hook.path, "/fromfile/connect");
    assert_eq!(c.expect("CONNECTED").await["name"], "filed");

    assert_eq!(server.stop("TERM").await.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_file_named_by_environment() {
    let dir = std::env::temp_dir().join(format!("hookbox-cli-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("env.toml");
    let p = free_port();
    std::fs::write(&path, format!("interface = \"127.0.0.1\"\nport = {p}\n")).unwrap();
    assert_starts_on(&[], &[("HOOKBOX_CONFIG", path.to_str().unwrap())], p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_options_are_one_line_errors() {
    assert_fails(
        &["-i", "127.0.0.1", "-p", "0", "--bogus"],
        &[],
        &["--bogus"],
    );
    assert_fails(
        &["-i", "127.0.0.1", "--port", "abc"],
        &[],
        &["--port", "abc"],
    );
    assert_fails(&["-i", "127.0.0.1", "--port=70000"], &[], &["--port"]);
    assert_fails(
        &["-i", "127.0.0.1", "-p", "0", "-L", "LOUD"],
        &[],
        &["--log-level", "LOUD"],
    );
    assert_fails(
        &["-i", "127.0.0.1", "-p", "0", "--cbport", "-5"],
        &[],
        &["--cbport", "-5"],
    );
    // Mistyped command lines do not start a server that does something else than meant: a
    // value without its flag (`-r` forgotten), a flag taken as another's value.
    assert_fails(
        &["-i", "127.0.0.1", "-p", "0", "--cbport", "8000", "mytoken"],
        &[],
        &["unexpected argument 'mytoken'", "-r"],
    );
    assert_fails(
        &["--demo", "--webhook-secret", "-p", "0"],
        &[],
        &["--webhook-secret needs a value", "-p"],
    );
    assert_fails(
        &["-i", "127.0.0.1", "-p", "0", "--cb-single-url", "ftp://x/"],
        &[],
        &["--cb-single-url"],
    );
    // A bad value from the environment names the variable; a misspelt flag gets a suggestion.
    assert_fails(
        &["-i", "127.0.0.1"],
        &[("HOOKBOX_PORT", "abc")],
        &["HOOKBOX_PORT", "abc"],
    );
    assert_fails(
        &["-i", "127.0.0.1", "-p", "0"],
        &[("HOOKBOX_LOG_LEVEL", "LOUD")],
        &["HOOKBOX_LOG_LEVEL", "LOUD"],
    );
    assert_fails(
        &["-i", "127.0.0.1", "--prot", "0"],
        &[],
        &["--prot", "did you mean '--port'?"],
    );
}

#[test]
fn version_and_grouped_help() {
    let (status, out, _) = run_to_exit(&["-V"], &[]);
    assert!(status.success());
    assert_eq!(out.trim(), format!("hookbox {}", env!("CARGO_PKG_VERSION")));
    let (status, out, _) = run_to_exit(&["--help"], &[]);
    assert!(status.success());
    for heading in [
        "Listening:",
        "Webhooks:",
        "Logging:",
        "Limits:",
        "Several nodes (Redis):",
    ] {
        assert!(out.contains(heading), "{heading} in {out}");
    }
    assert!(out.contains("docs/configuration.md"), "{out}");
}

#[test]
fn bad_config_files_are_one_line_errors() {
    let dir = std::env::temp_dir().join(format!("hookbox-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    assert_fails(
        &["-p", "0", "--config", missing.to_str().unwrap()],
        &[],
        &[missing.to_str().unwrap()],
    );

    let cases: [(&str, &str, &[&str]); 5] = [
        ("syntax.toml", "port = \n", &["line 1, column 8"]),
        (
            "unknown.toml",
            "port = 0\nbogus-key = 1\n",
            &["line 2, column 1", "unknown key `bogus-key`"],
        ),
        (
            "misspelt.toml",
            "port = 0\nwebhok-timeout = 1\n",
            &["unknown key `webhok-timeout` (did you mean `webhook-timeout`?)"],
        ),
        ("type.toml", "port = \"eighty\"\n", &["line 1, column 8"]),
        (
            "bad-value.toml",
            "port = 0\ncb-single-url = \"gopher://x\"\n",
            &["cb-single-url in"],
        ),
    ];
    for (name, text, extra) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        // The file is named, with where in it and what.
        let mut names = extra.to_vec();
        names.push(p);
        assert_fails(&["-i", "127.0.0.1", "--config", p], &[], &names);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, _out, stderr) = run_to_exit(&["-i", "127.0.0.1", "-p", &port], &[]);
    assert!(status.code().is_some_and(|c| c != 0), "{status:?}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[tokio::test]
async fn option_values_may_start_with_a_dash() {
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
            "-s",
            "-dashing",
        ],
        &[],
    );
    let port = server.startup_port("127.0.0.1");
    let mut c = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    c.send("CONNECT", json!({"cookie_string": "user=dash"}))
        .await;
    assert_eq!(
        web.expect("connect").await.field("secret"),
        Some("-dashing")
    );
    c.expect("CONNECTED").await;
    assert_eq!(server.stop("TERM").await.code(), Some(0));
}

/// `--rest-secret` is 0.3.3's name for `-r`, as django-hookbox 0.3's `runhookbox` passes it; the
/// last occurrence of either name wins. The TOML key `rest-secret` and `HOOKBOX_REST_SECRET`
/// work too.
#[tokio::test]
async fn rest_secret_names_the_api_token() {
    let info = |port: u16, token: &'static str| async move {
        let form = [("security_token", token)];
        api_post(port, "get_server_info", &form).await[0].clone()
    };
    let server = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-r",
            "old",
            "--rest-secret",
            "tok",
        ],
        &[],
    );
    let port = server.startup_port("127.0.0.1");
    assert_eq!(info(port, "tok").await, json!(true));
    assert_eq!(info(port, "old").await, json!(false));
    // The 0.3.3 dialect takes the same token in `secret`.
    let resp = common::http_client()
        .post(format!("http://127.0.0.1:{port}/rest/get_channel_info"))
        .form(&[("secret", "tok"), ("channel_name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        r#"[false, {"msg": "Channel x doesn't exist"}]"#
    );
    assert_eq!(server.signal("TERM").code(), Some(0));

    let dir = std::env::temp_dir().join(format!("hookbox-rest-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rest.toml");
    std::fs::write(&path, "rest-secret = \"filetok\"\n").unwrap();
    let server = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--config",
            path.to_str().unwrap(),
        ],
        &[],
    );
    let port = server.startup_port("127.0.0.1");
    assert_eq!(info(port, "filetok").await, json!(true));
    assert_eq!(server.signal("TERM").code(), Some(0));

    // The environment beats the file.
    let server = Running::spawn(
        &[
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "--config",
            path.to_str().unwrap(),
        ],
        &[("HOOKBOX_REST_SECRET", "envtok")],
    );
    let port = server.startup_port("127.0.0.1");
    assert_eq!(info(port, "envtok").await, json!(true));
    assert_eq!(info(port, "filetok").await, json!(false));
    assert_eq!(server.signal("TERM").code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The console's log view shows the lines stderr shows, as stderr shows them: the startup line
/// and an access line (formatted once for both).
#[tokio::test]
async fn the_consoles_log_view_shows_what_stderr_shows() {
    let server = Running::spawn(&["-i", "127.0.0.1", "-p", "0", "-a", "pw-for-the-log"], &[]);
    let port = server.startup_port("127.0.0.1");
    let _ws = Client::open(&format!("ws://127.0.0.1:{port}/ws")).await;
    let access = loop {
        let line = server.next_line();
        if line.contains("Incoming WebSocket connection") {
            break line;
        }
    };
    let http = common::http_client();
    let login = http
        .post(format!("http://127.0.0.1:{port}/admin/api/login"))
        .header("X-Hookbox-Admin", "1")
        .header("content-type", "application/json")
        .body(json!({"password": "pw-for-the-log"}).to_string())
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let log = http
        .get(format!("http://127.0.0.1:{port}/admin/api/log"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let log: Value = serde_json::from_str(&log).unwrap();
    let lines: Vec<&str> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" - hookbox - INFO - Listening to hookbox on http://127.0.0.1:")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&access.as_str()),
        "{access:?} not in {lines:?}"
    );
    server.stop("TERM").await;
}
