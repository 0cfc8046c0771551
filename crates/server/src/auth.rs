//! Bearer tokens: every request on a front end started with a token must carry
//! `authorization: Bearer <token>` (HTTP header or gRPC metadata); others are refused
//! (HTTP 401, gRPC UNAUTHENTICATED) and counted.

use crate::error::StartError;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The token requests must carry, and how many came without it.
#[derive(Debug)]
pub struct Auth {
    token: Option<Vec<u8>>,
    refused: AtomicU64,
}

impl Auth {
    /// No token needed (local endpoints only).
    pub fn open() -> Self {
        Self { token: None, refused: AtomicU64::new(0) }
    }

    pub fn with_token(token: &str) -> Self {
        Self { token: Some(token.as_bytes().to_vec()), refused: AtomicU64::new(0) }
    }

    /// Reads the token from the first line of `path` (surrounding whitespace trimmed).
    pub fn from_file(path: &Path) -> Result<Self, StartError> {
        let bad = |problem: String| StartError::Token { path: path.display().to_string(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.len() < 16 {
            return Err(bad("the token must be at least 16 characters (e.g. `openssl rand -hex 32`)".into()));
        }
        Ok(Self::with_token(token))
    }

    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether a request with this `authorization` header value may go on; counts refusals.
    pub fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some(want) = &self.token else { return true };
        let given = authorization.and_then(|h| h.strip_prefix(b"Bearer ")).unwrap_or(b"");
        // Constant time in the token's content (its length is not secret).
        let same = given.len() == want.len() && given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        same
    }

    /// Requests refused for a missing or wrong token.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}
