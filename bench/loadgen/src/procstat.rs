//! Reading a process's CPU time and memory from /proc.

use std::time::Instant;

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// (utime, stime) of the whole process (all threads), in nanoseconds.
pub fn cpu_split_ns(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let hz = clk_tck();
    Some((utime * 1_000_000_000 / hz, stime * 1_000_000_000 / hz))
}

/// A `/proc/<pid>/status` field in kB (VmRSS, VmHWM, Threads …).
pub fn status_field(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    for line in s.lines() {
        if let Some(v) = line.strip_prefix(key).and_then(|v| v.strip_prefix(':')) {
            return v.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

pub fn rss_kb(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS")
}

/// Summed (utime, stime) of several processes, in nanoseconds; a gone process counts 0.
fn cpu_split_sum(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .filter_map(|&p| cpu_split_ns(p))
        .fold((0, 0), |(u, s), (u1, s1)| (u + u1, s + s1))
}

/// Summed VmRSS of several processes and their descendants, in kB.
pub fn rss_sum_kb(pids: &[u32]) -> u64 {
    with_descendants(pids)
        .iter()
        .filter_map(|&p| rss_kb(p))
        .sum()
}

/// CPU of a set of processes (the server's, or ourselves) between two points in time. A
/// server may be several processes: hookbox nodes plus the redis-server they share.
#[derive(Clone, Debug)]
pub struct CpuMark {
    pids: Vec<u32>,
    cpu: u64,
    sys: u64,
    at: Instant,
}

/// `pids` and all their descendants (a server may be a tree: Pushpin's runner starts condure,
/// pushpin-proxy and pushpin-handler; its script starts zurl).
pub fn with_descendants(pids: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Field 4 (ppid) is the second after the command name's closing ')'.
            let ppid = s
                .rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent_of.push((pid, pp));
            }
        }
    }
    let mut out = pids.to_vec();
    // Bounded: each pass adds only processes not yet in `out`; at most one pass per level.
    loop {
        let before = out.len();
        for &(pid, pp) in &parent_of {
            if out.contains(&pp) && !out.contains(&pid) {
                out.push(pid);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

impl CpuMark {
    /// Marks the CPU of `pids` and their descendants (as they are now).
    pub fn now(pids: &[u32]) -> Self {
        let pids = with_descendants(pids);
        let (u, s) = cpu_split_sum(&pids);
        CpuMark {
            pids,
            cpu: u + s,
            sys: s,
            at: Instant::now(),
        }
    }

    /// Kernel (stime) share of the CPU used since `self`, in percent.
    pub fn sys_share_pct(&self) -> f64 {
        let (u, s) = cpu_split_sum(&self.pids);
        let cpu = (u + s).saturating_sub(self.cpu);
        s.saturating_sub(self.sys) as f64 * 100.0 / cpu.max(1) as f64
    }

    /// (CPU ns used since `self`, wall ns since `self`).
    pub fn since(&self) -> (u64, u64) {
        let (u, s) = cpu_split_sum(&self.pids);
        (
            (u + s).saturating_sub(self.cpu),
            self.at.elapsed().as_nanos() as u64,
        )
    }
}

pub fn self_pid() -> u32 {
    std::process::id()
}

/// Raise the soft open-files limit to the hard limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain libc calls on a stack struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
            return r.rlim_cur;
        }
    }
    0
}

/// Busy CPU time of the whole machine (all CPUs, everything but idle and iowait), in ns.
pub fn machine_busy_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle) * 1_000_000_000 / clk_tck())
}

/// Machine-wide busy time, to tell how much CPU went to anything but server and loadgen.
#[derive(Clone, Copy, Debug)]
pub struct MachineMark {
    busy: u64,
    at: Instant,
}

impl MachineMark {
    pub fn now() -> Self {
        MachineMark {
            busy: machine_busy_ns().unwrap_or(0),
            at: Instant::now(),
        }
    }

    /// Percent of one core used outside `srv_ns` + `lg_ns` since `self` (other processes and
    /// kernel work not charged to a process, such as some loopback softirq).
    pub fn other_pct(&self, srv_ns: u64, lg_ns: u64) -> f64 {
        let busy = machine_busy_ns().unwrap_or(0).saturating_sub(self.busy);
        let wall = self.at.elapsed().as_nanos().max(1) as f64;
        (busy as f64 - srv_ns as f64 - lg_ns as f64).max(0.0) * 100.0 / wall
    }
}
