//! The key resume tickets are signed with (`--resume-secret`).

use super::{invalid, ConfigError};
use crate::hub::ResumeKey;

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
