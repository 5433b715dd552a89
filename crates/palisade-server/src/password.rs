//! Passwords: Argon2id hashes in PHC string form, computed off the async
//! runtime (one hash costs tens of milliseconds of CPU and ~19 MiB, on
//! purpose, which would stall every other request on a runtime thread).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use palisade_store::{Store, StoreError, User};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password may not be used (blank, too long).
    #[error("{0}")]
    Rejected(&'static str),
    /// The hash could not be computed (no randomness for the salt) or the
    /// blocking task died.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest password accepted, in bytes: Argon2 takes any length, but there
/// is no reason to hash megabytes for every login attempt.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Argon2id with the crate's defaults (OWASP's first recommendation:
/// m = 19 MiB, t = 2, p = 1). The parameters are stored in each hash, so
/// changing them later keeps old hashes verifiable.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    hasher()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Hashing(err.to_string()))
}

/// Hashes a password for storage.
pub async fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Rejected("the password may not be blank"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Rejected(
            "the password may not be longer than 1024 bytes",
        ));
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
        .await
        .map_err(|err| PasswordError::Hashing(err.to_string()))?
}

/// Whether `password` matches `stored` (a PHC string). With no stored hash
/// (unknown user, no password set) a fixed hash is checked instead, so the
/// answer takes as long either way and timing does not reveal which
/// usernames exist.
pub async fn verify_password(stored: Option<String>, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let (phc, real) = match &stored {
            Some(hash) => (hash.as_str(), true),
            None => (decoy_hash(), false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            tracing::warn!("a stored password hash cannot be parsed; the login is refused");
            return false;
        };
        let matches = hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        matches && real
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, made once per process.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let secret: [u8; 16] = rand::random();
        // A failure here only makes unknown-user answers faster.
        hash_blocking(&secret).unwrap_or_default()
    })
}

/// Sets a user's password (hashing it first).
pub async fn set_password(
    store: &dyn Store,
    user: &User,
    password: &str,
) -> Result<(), PasswordError> {
    let hash = hash_password(password).await?;
    store.set_password_hash(user.id, Some(&hash)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(Some(hash.clone()), "correct horse").await);
        assert!(!verify_password(Some(hash.clone()), "correct horsE").await);
        assert!(!verify_password(Some(hash), "").await);
        assert!(!verify_password(None, "anything").await);
        assert!(!verify_password(Some("not a phc string".into()), "x").await);
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ() {
        let a = hash_password("pw").await.unwrap();
        let b = hash_password("pw").await.unwrap();
        assert_ne!(a, b, "each hash has its own salt");
    }

    #[tokio::test]
    async fn blank_and_huge_passwords_are_refused() {
        assert!(matches!(
            hash_password("").await,
            Err(PasswordError::Rejected(_))
        ));
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hash_password(&huge).await,
            Err(PasswordError::Rejected(_))
        ));
        assert!(!verify_password(None, &huge).await);
    }
}
