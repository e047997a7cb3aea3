//! The dashboard: `GET /ui` (plain HTML), its script, chart library and
//! style sheet, all compiled into the binary. The page polls `/v1/stats`
//! with the bearer token it takes from the URL fragment (`/ui#token=...`),
//! so on TCP these static files are the only paths served without the
//! token: they hold nothing but code.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

pub(crate) const INDEX: &str = include_str!("../ui/index.html");
pub(crate) const APP: &str = include_str!("../ui/app.js");
pub(crate) const CHART: &str = include_str!("../ui/chart.js");
const STYLE: &str = include_str!("../ui/style.css");

/// Scripts and styles only from this origin; fetches only to it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The paths served without the token on TCP.
const PUBLIC: [&str; 5] = ["/ui", "/ui/", "/ui/app.js", "/ui/chart.js", "/ui/style.css"];

fn asset(ctype: &'static str, body: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, ctype)], body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn app() -> Response {
    asset("text/javascript; charset=utf-8", APP)
}

async fn chart() -> Response {
    asset("text/javascript; charset=utf-8", CHART)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The dashboard's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app))
        .route("/ui/chart.js", get(chart))
        .route("/ui/style.css", get(style))
}

/// The TCP listener's check: the dashboard's static files pass (a browser
/// cannot send a header when it opens a page), everything else needs the
/// bearer token, including the data the page fetches.
pub(crate) async fn token_unless_static(
    State(token): State<Arc<String>>,
    req: Request,
    next: Next,
) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if read && PUBLIC.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    super::auth::require_token(State(token), req, next).await
}
