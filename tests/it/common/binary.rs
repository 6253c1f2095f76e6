//! The real `hookbox` binary as a child process: started through `sh` so that its stdout and
//! stderr are one stream in output order, read line by line with bounded waits (hang guards only),
//! stopped with a signal, and killed if still running when the test ends.

use super::{http_client, GUARD};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_hookbox");

/// A command for `program` that inherits no `HOOKBOX_*` variable and sets `envs`.
pub fn command(program: &str, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("HOOKBOX_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(envs.iter().copied());
    cmd
}

/// A running server whose stdout and stderr are one stream, read line by line.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    exited: bool,
}

/// The engine arguments of this run (`HOOKBOX_TEST_ENGINE`): none for the memory engine, else the
/// test Redis (or Redis Cluster, or Sentinel) under a key prefix of the binary's own.
fn engine_args() -> Vec<String> {
    let prefix = format!("bin{:016x}", rand::random::<u64>());
    match std::env::var("HOOKBOX_TEST_ENGINE").as_deref() {
        Ok("redis") => vec![
            "--engine".into(),
            "redis".into(),
            "--redis-url".into(),
            std::env::var("HOOKBOX_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
            "--redis-prefix".into(),
            prefix,
        ],
        Ok("redis-cluster") => vec![
            "--engine".into(),
            "redis".into(),
            "--redis-cluster".into(),
            "--redis-url".into(),
            super::redis_cluster_urls()
                .expect("HOOKBOX_TEST_REDIS_CLUSTER")
                .join(","),
            "--redis-prefix".into(),
            prefix,
        ],
        Ok("redis-sentinel") => vec![
            "--engine".into(),
            "redis".into(),
            "--redis-sentinel".into(),
            super::TEST_SENTINEL_MASTER.into(),
            "--redis-url".into(),
            super::redis_sentinel_url().expect("HOOKBOX_TEST_REDIS_SENTINEL"),
            "--redis-prefix".into(),
            prefix,
        ],
        _ => Vec::new(),
    }
}

/// Checks the startup's engine line names the engine this run tests.
pub fn assert_engine_line(line: &str) {
    let expected = match std::env::var("HOOKBOX_TEST_ENGINE").as_deref() {
        Ok("redis") => " - hookbox - INFO - Engine: Redis at ",
        Ok("redis-cluster") => " - hookbox - INFO - Engine: Redis Cluster at ",
        Ok("redis-sentinel") => {
            " - hookbox - INFO - Engine: Redis (master hookbox-test named by Sentinel) at "
        }
        _ => " - hookbox - INFO - Engine: memory",
    };
    assert!(line.contains(expected), "not the engine line: {line:?}");
}

impl Running {
    /// Starts the binary with `args` (plus the run's engine, unless `args` choose one) and
    /// `envs`.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Running {
        let engine = if args.contains(&"--engine") {
            Vec::new()
        } else {
            engine_args()
        };
        // `exec` keeps the pid the server's own, and `2>&1` merges the streams in output order.
        let mut child = command("sh", envs)
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&1")
            .arg(BIN)
            .args(args)
            .args(engine)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn hookbox");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            exited: false,
        }
    }

    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(GUARD)
            .expect("timed out waiting for a line of output")
    }

    /// The startup line's port, checking the line's exact shape.
    pub fn startup_port(&self, host: &str) -> u16 {
        let line = self.next_line();
        parse_listening(&line, "hookbox", host)
            .unwrap_or_else(|| panic!("bad startup line: {line:?}"))
    }

    /// `signal` from async code: the wait runs on a blocking thread, so that the test's own
    /// tasks (its web app answering the shutdown's webhooks) keep running meanwhile.
    pub async fn stop(self, signal: &'static str) -> ExitStatus {
        tokio::task::spawn_blocking(move || self.signal(signal))
            .await
            .expect("the wait did not panic")
    }

    /// Sends `signal` and waits for the exit (output closes when the process ends).
    pub fn signal(mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            match self.lines.recv_timeout(GUARD) {
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("hookbox did not exit after SIG{signal}")
                }
            }
        }
        self.exited = true;
        self.child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks `<YYYY-MM-DD HH:MM:SS,mmm> - hookbox - INFO - Listening to <what> on http://<host>:<port>`
/// and returns the port.
pub fn parse_listening(line: &str, what: &str, host: &str) -> Option<u16> {
    let shape = "dddd-dd-dd dd:dd:dd,ddd";
    if line.len() < shape.len() || !line.is_char_boundary(shape.len()) {
        return None;
    }
    let (stamp, rest) = line.split_at(shape.len());
    let stamp_ok =
        stamp
            .chars()
            .zip(shape.chars())
            .all(|(c, s)| if s == 'd' { c.is_ascii_digit() } else { c == s });
    if !stamp_ok
        || chrono::NaiveDateTime::parse_from_str(&stamp[..19], "%Y-%m-%d %H:%M:%S").is_err()
    {
        return None;
    }
    let port = rest.strip_prefix(&format!(
        " - hookbox - INFO - Listening to {what} on http://{host}:"
    ))?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// POSTs a urlencoded form to `/web/<method>` on `127.0.0.1:<port>`, as djhookbox does; asserts a
/// 200 and returns the JSON body.
pub async fn api_post(port: u16, method: &str, form: &[(&str, &str)]) -> Value {
    let resp = http_client()
        .post(format!("http://127.0.0.1:{port}/web/{method}"))
        .form(form)
        .send()
        .await
        .expect("web api request");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("undecodable body {text:?}"))
}
