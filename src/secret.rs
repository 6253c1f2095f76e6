//! Comparing secrets (the API token, the admin password) without telling an attacker, through
//! the time a comparison takes, how much of a guess was right: both sides are hashed, and the
//! digests compared in constant time. Lengths leak nothing either (digests are fixed-size).

use sha2::{Digest, Sha256};

/// A secret's SHA-256 digest, to keep or compare instead of the secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality of two digests.
pub fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `given` is `secret`, in time that does not depend on where they differ.
pub fn equal(given: &str, secret: &str) -> bool {
    same(&digest(given), &digest(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_for_the_same_text() {
        assert!(equal("s3cret", "s3cret"));
        assert!(!equal("s3cres", "s3cret"));
        assert!(!equal("s3cret ", "s3cret"));
        assert!(!equal("", "s3cret"));
    }
}
