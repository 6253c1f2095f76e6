//! What returning clients get: the key resume tickets are signed with (`--resume-secret`) and
//! the grace period for leaving (`--leave-grace`).

use super::{invalid, ConfigError};
use crate::hub::{LeaveGrace, ResumeKey};
use std::time::Duration;

/// Shortest `--resume-secret`: whoever guesses it can mint tickets for any user.
const MIN_SECRET: usize = 16;

/// The key of `secret`, or a random one of this process when none is given.
pub(super) fn resume_key(secret: Option<&str>) -> Result<ResumeKey, ConfigError> {
    match secret {
        None => Ok(ResumeKey::random()),
        Some(s) if s.chars().count() < MIN_SECRET => Err(invalid(
            "--resume-secret",
            format!("must be at least {MIN_SECRET} characters"),
        )),
        Some(s) => Ok(ResumeKey::from_secret(s)),
    }
}

/// Longest `--leave-grace`: a user who really left must not look present for long.
const MAX_LEAVE_GRACE: f64 = 300.0;

/// The grace period of `--leave-grace` (`None`: none); at shutdown it is cut to half of
/// `shutdown_timeout`, so that the cascades after it still run before the process exits.
pub(super) fn leave_grace(
    seconds: Option<f64>,
    shutdown_timeout: Duration,
) -> Result<LeaveGrace, ConfigError> {
    let period = match seconds {
        None => Duration::ZERO,
        Some(s) if s.is_finite() && (0.0..=MAX_LEAVE_GRACE).contains(&s) => {
            Duration::from_secs_f64(s)
        }
        Some(s) => {
            return Err(invalid(
                "--leave-grace",
                format!("{s} (must be ≥ 0 and ≤ {MAX_LEAVE_GRACE} seconds)"),
            ))
        }
    };
    Ok(LeaveGrace {
        period,
        at_shutdown: shutdown_timeout / 2,
    })
}
