//! API errors: an HTTP status and a JSON body `{"error": "...", "field": "..."}`
//! naming the offending field or key path when there is one.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use target::control::ControlError;
use target::ServerError;
use volume::{ErrorKind, VolumeError};

/// A failed request. Nothing changed when one is returned.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: None,
        }
    }

    /// 400 naming `field`.
    pub fn bad(field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }

    pub fn conflict(error: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error)
    }

    /// Makes a key path relative to the resource the request addressed:
    /// `target[2].acl[0].chap_secret` becomes `chap_secret` for `prefix`
    /// `target[2].acl[0].`.
    pub fn relative_to(mut self, prefix: &str) -> Self {
        if let Some(f) = &self.field {
            if let Some(rest) = f.strip_prefix(prefix) {
                self.field = Some(rest.to_string());
            }
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.error });
        if let Some(f) = self.field {
            body["field"] = serde_json::Value::from(f);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let text = e.to_string();
        match e {
            ControlError::Invalid { key, problem } => Self::bad(key, problem),
            ControlError::Unsupported(_) => Self::conflict(text),
            ControlError::InUse { .. } | ControlError::DrainTimeout { .. } => Self::conflict(text),
            ControlError::Open(ServerError::Lun { key, .. }) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                error: text,
                field: Some(key),
            },
            ControlError::Open(ServerError::Bind { .. }) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                error: text,
                field: Some("portals".into()),
            },
            ControlError::Open(_) | ControlError::Persist(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, text)
            }
            ControlError::NoSession(_) => Self::not_found(text),
        }
    }
}

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        let text = e.to_string();
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists
            | ErrorKind::InUse
            | ErrorKind::HasClones
            | ErrorKind::HasSnapshots => StatusCode::CONFLICT,
            ErrorKind::InvalidName | ErrorKind::InvalidSize => StatusCode::BAD_REQUEST,
            ErrorKind::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            ErrorKind::Corrupt | ErrorKind::Io => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let field = match e.kind() {
            ErrorKind::InvalidName => Some("name".to_string()),
            ErrorKind::InvalidSize => Some("size".to_string()),
            _ => None,
        };
        Self {
            status,
            error: text,
            field,
        }
    }
}

/// A JSON body whose errors name the field: `{"error": "unknown field
/// `sise`...", "field": "sise"}`. Unknown fields are refused by the target
/// types themselves (`deny_unknown_fields`).
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON into `T`, naming the field of the first error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let field = quoted_field(&msg)
            .map(|f| {
                if path == "." {
                    f
                } else if path == f || path.ends_with(&format!(".{f}")) {
                    path.clone()
                } else {
                    format!("{path}.{f}")
                }
            })
            .unwrap_or(path);
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad("body", format!("malformed JSON: {msg}"))
        } else {
            ApiError::bad(field, msg)
        }
    })
}

/// Converts a deserialized value into `T` with the same error reporting.
pub(crate) fn from_value<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&v)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    parse_json(&bytes)
}

/// The field named in serde messages like "unknown field `sise`, expected ..."
/// or "missing field `iqn`".
pub(crate) fn quoted_field(msg: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(at) = msg.find(marker) {
            let rest = &msg[at + marker.len()..];
            let end = rest.find('`')?;
            return Some(rest[..end].to_string());
        }
    }
    None
}

/// Path parameters whose rejection is a JSON error like every other.
pub(crate) struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for PathParams<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::bad("path", e.body_text()))
    }
}
