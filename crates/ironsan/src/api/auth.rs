//! The bearer token of the TCP listener: 32 random bytes, hex, generated on
//! first start into `data_dir/api.token` (mode 0600), compared in constant
//! time. The Unix socket needs no token: its mode (0600) is the check.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The token file in `data_dir`.
pub(crate) const TOKEN_FILE: &str = "api.token";

/// Reads the token, creating it on first start.
pub(crate) fn load_or_create_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 32 {
                bail!(
                    "{}: the API token must be at least 32 characters (delete the file to generate a new one)",
                    path.display()
                );
            }
            if let Ok(meta) = std::fs::metadata(&path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(file = %path.display(), "the API token is readable by others; run chmod 600");
                }
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes)
                .map_err(|e| anyhow::anyhow!("reading the system random generator: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(f, "{token}")?;
            f.sync_all()?;
            tracing::info!(file = %path.display(), "generated the API token");
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Whether `presented` equals `token`, in time independent of where they differ.
pub(crate) fn token_matches(token: &str, presented: &str) -> bool {
    bool::from(token.as_bytes().ct_eq(presented.as_bytes()))
}

/// Middleware of the TCP listener: `Authorization: Bearer <token>` or 401.
pub(crate) async fn require_token(
    State(token): State<Arc<String>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if token_matches(&token, p) => next.run(req).await,
        _ => {
            let mut resp = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (see data_dir/api.token)",
            )
            .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("ironsan-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let a = load_or_create_token(&dir).expect("create");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(dir.join(TOKEN_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&dir).expect("reload"), a);
        assert!(token_matches(&a, &a));
        assert!(!token_matches(&a, &a[1..]));
        assert!(!token_matches(&a, ""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
