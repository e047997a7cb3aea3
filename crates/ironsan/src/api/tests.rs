//! Handler tests against a real in-process server (no iSCSI traffic), with
//! requests sent through the router by `tower::ServiceExt::oneshot`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use target::config::Config;
use target::Server;
use tower::ServiceExt;

use super::*;

pub(super) const IQN: &str = "iqn.2026-11.org.ironsan.test:api";
pub(super) const HOST: &str = "iqn.2026-11.org.ironsan.test:host";
/// The API token of the fixture's TCP flavour.
pub(super) const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const SECRET: &str = "api-test-secret-123";

/// A real in-process server with one target, one LUN and one CHAP ACL,
/// and the API state over it; its directory goes away with it.
pub(super) struct Fixture {
    pub(super) state: AppState,
    pub(super) dir: PathBuf,
    _server: Server,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) async fn fixture() -> Fixture {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ironsan-api-unit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let text = format!(
        "data_dir = '{d}'\nportals = [\"127.0.0.1:0\"]\n[[target]]\niqn = \"{IQN}\"\n\
         [[target.lun]]\nid = 0\nfile = '{d}/lun0.img'\nsize = \"1M\"\n\
         [[target.acl]]\ninitiator = \"{HOST}\"\nchap_user = \"host\"\nchap_secret = \"{SECRET}\"\n",
        d = dir.display()
    );
    let cfg = Config::parse(&text, &dir.join("t.toml")).expect("valid");
    let server = Server::bind(&cfg).await.expect("server");
    let state = new_state(server.control(), TOKEN.into(), dir.join(SOCKET_FILE));
    Fixture {
        state,
        dir,
        _server: server,
    }
}

async fn send(app: Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = app.oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

async fn call(f: &Fixture, method: &str, uri: &str, body: &str) -> (StatusCode, Value, String) {
    send(router(f.state.clone()), method, uri, body).await
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let f = fixture().await;
    let before = f.state.control.config();
    let t = format!("/v1/targets/{IQN}");
    let cases: Vec<(&str, String, String, &str)> = vec![
        ("POST", "/v1/targets".into(), "{\"iqn\": ".into(), "body"),
        (
            "POST",
            "/v1/targets".into(),
            json!({"iqn": "iqn.2026-11.org.x:a", "sise": 1}).to_string(),
            "sise",
        ),
        (
            "POST",
            "/v1/targets".into(),
            json!({"iqn": "not-an-iqn"}).to_string(),
            "iqn",
        ),
        (
            "POST",
            "/v1/targets".into(),
            json!({"iqn": "iqn.2026-11.org.x:b", "lun": [
                {"id": 0, "file": "/tmp/ironsan-x0"}, {"id": 0, "file": "/tmp/ironsan-x1"}]})
            .to_string(),
            "lun[1].id",
        ),
        (
            "PUT",
            format!("{t}/acls/{HOST}"),
            json!({"chap_user": "host", "chap_secret": "short"}).to_string(),
            "chap_secret",
        ),
        (
            "PUT",
            format!("{t}/acls/{HOST}"),
            json!({"chap_user": "host", "chap_secret": SECRET, "extra": 1}).to_string(),
            "extra",
        ),
        (
            "PUT",
            format!("{t}/luns/1"),
            json!({"file": "/tmp/ironsan-y", "size": "10X"}).to_string(),
            "size",
        ),
        (
            "PUT",
            format!("{t}/luns/1"),
            json!({"id": 2, "file": "/tmp/ironsan-y", "size": "1M"}).to_string(),
            "id",
        ),
        (
            "PUT",
            format!("{t}/luns/99999"),
            json!({"file": "/tmp/ironsan-y"}).to_string(),
            "id",
        ),
        (
            "POST",
            "/v1/volumes".into(),
            json!({"name": "v", "size": "10X"}).to_string(),
            "size",
        ),
        (
            "POST",
            "/v1/portals".into(),
            json!({"address": "localhost"}).to_string(),
            "address",
        ),
        (
            "DELETE",
            format!("{t}/luns/0?mode=sometimes"),
            String::new(),
            "mode",
        ),
        (
            "DELETE",
            format!("{t}/luns/0?mode=drain&timeout=5x"),
            String::new(),
            "timeout",
        ),
        (
            "GET",
            "/v1/config?format=yaml".into(),
            String::new(),
            "format",
        ),
    ];
    for (method, uri, body, field) in cases {
        let (status, v, text) = call(&f, method, &uri, &body).await;
        assert!(
            status.is_client_error(),
            "{method} {uri} {body}: {status} {text}"
        );
        assert_eq!(v["field"], json!(field), "{method} {uri} {body}: {text}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
    }
    assert_eq!(f.state.control.config(), before, "nothing changed");
}

#[tokio::test]
async fn secrets_are_write_only_except_in_the_toml_form() {
    let f = fixture().await;
    for uri in [
        "/v1/targets".to_string(),
        format!("/v1/targets/{IQN}"),
        format!("/v1/targets/{IQN}/acls"),
        format!("/v1/targets/{IQN}/acls/{HOST}"),
        "/v1/config".to_string(),
    ] {
        let (status, _, text) = call(&f, "GET", &uri, "").await;
        assert_eq!(status, StatusCode::OK, "{uri}: {text}");
        assert!(!text.contains(SECRET), "{uri} leaks the secret: {text}");
        assert!(text.contains("\"has_secret\":true"), "{uri}: {text}");
    }
    let (status, _, text) = call(&f, "GET", "/v1/config?format=toml", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(SECRET), "the TOML form round-trips: {text}");
    let cfg = Config::parse(&text, std::path::Path::new("shown")).expect("parses");
    assert_eq!(cfg, f.state.control.config());
}

#[tokio::test]
async fn mutations_apply_through_control_and_report_changes() {
    let f = fixture().await;
    let t = format!("/v1/targets/{IQN}");
    let (s, v, text) = call(
        &f,
        "PUT",
        &format!("{t}/luns/1"),
        &json!({"file": f.dir.join("lun1.img"), "size": "1M"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{text}");
    assert_eq!(v["changes"], json!([format!("+ lun {IQN} 1")]));
    let (s, v, _) = call(&f, "DELETE", &format!("{t}/luns/1"), "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["changes"], json!([format!("- lun {IQN} 1")]));
    let (s, _, _) = call(&f, "DELETE", &format!("{t}/luns/1"), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(&f, "POST", "/v1/targets", &json!({"iqn": IQN}).to_string()).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v, _) = call(&f, "DELETE", "/v1/sessions/7", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = call(&f, "GET", "/v1/health", "").await;
    assert_eq!((s, v["status"].clone()), (StatusCode::OK, json!("ok")));
    let (s, v, _) = call(&f, "GET", "/v1/state", "").await;
    assert_eq!((s, v["targets"].clone()), (StatusCode::OK, json!(1)));
}

#[tokio::test]
async fn tcp_router_requires_the_bearer_token() {
    let f = fixture().await;
    let app = tcp_router(f.state.clone());
    let get = |auth: Option<String>| {
        let mut b = Request::builder().uri("/v1/state");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).expect("request")
    };
    let token = f.state.token.to_string();
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer wrong".to_string()), StatusCode::UNAUTHORIZED),
        (Some(token.clone()), StatusCode::UNAUTHORIZED),
        (Some(format!("Bearer {token}")), StatusCode::OK),
    ] {
        let resp = app
            .clone()
            .oneshot(get(auth.clone()))
            .await
            .expect("response");
        assert_eq!(resp.status(), want, "{auth:?}");
    }
}

#[test]
fn openapi_documents_every_route() {
    for path in [
        "/v1/state:",
        "/v1/health:",
        "/v1/sessions:",
        "/v1/sessions/{tsih}:",
        "/v1/targets:",
        "/v1/targets/{iqn}:",
        "/v1/targets/{iqn}/luns/{id}:",
        "/v1/targets/{iqn}/acls:",
        "/v1/targets/{iqn}/acls/{initiator}:",
        "/v1/portals:",
        "/v1/portals/{addr}:",
        "/v1/config:",
        "/v1/volumes:",
        "/v1/volumes/{name}:",
        "/v1/volumes/{name}/snapshots:",
        "/v1/snapshots:",
        "/v1/snapshots/{snapshot}:",
        "/v1/snapshots/{snapshot}/rollback:",
        "/v1/snapshots/{snapshot}/clone:",
        "/v1/pool:",
        "/v1/pool/scrub:",
        "/openapi.yaml:",
    ] {
        assert!(OPENAPI.contains(path), "docs/openapi.yaml lacks {path}");
    }
}

#[test]
fn query_parameters_and_durations() {
    let p = Params::parse(Some("mode=drain&timeout=2m&force")).expect("parses");
    assert_eq!(
        p.decommission().expect("mode"),
        Decommission::Drain(Duration::from_secs(120))
    );
    assert!(p.flag("force").expect("flag"));
    assert!(p.only(&["mode", "timeout"]).is_err());
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
    assert!(parse_duration("2h").is_err());
    assert_eq!(
        Params::parse(Some("a=%5B%3A%3A1%5D"))
            .expect("parses")
            .get("a"),
        Some("[::1]")
    );
}
