//! A redis-server process of one test (a test that kills or restarts its Redis cannot share the
//! run's): killed, and its directory removed, when dropped.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct RedisProc {
    child: Child,
    dir: PathBuf,
}

impl RedisProc {
    /// `redis-server args…`, working in `dir`.
    pub fn spawn<I, S>(args: I, dir: PathBuf) -> RedisProc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (the test command installs it)");
        RedisProc { child, dir }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
