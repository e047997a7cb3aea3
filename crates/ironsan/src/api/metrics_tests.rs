//! `/metrics`, `/v1/stats`, `/v1/trace` and `/ui` through the router
//! (`tower::ServiceExt::oneshot`), on the Unix flavour and on the TCP one
//! (bearer token).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use target::metrics::Kind;
use tower::ServiceExt;

use super::super::{router, tcp_router};
use super::format::check;
use super::OPENMETRICS;

use super::super::tests::{fixture, Fixture, HOST, IQN, TOKEN};

/// Sends one request; returns status, content type and body text.
async fn send(
    app: Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    let resp = app.oneshot(req).await.expect("response");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 4 << 20)
        .await
        .expect("body");
    (status, ctype, String::from_utf8_lossy(&bytes).to_string())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Some traffic of every kind, as the runtime would count it.
fn traffic(f: &Fixture) {
    let m = f.state.control.metrics();
    let (i, p, l) = (m.initiator(HOST), m.portal("127.0.0.1:3260"), m.lun(IQN, 0));
    m.login(HOST, "127.0.0.1:3260", "ok");
    m.login(
        "iqn.2026-11.org.ironsan.test:intruder",
        "127.0.0.1:3260",
        "authentication",
    );
    for s in [&i, &p, &l] {
        s.command(Kind::Write, 65_536, None, Duration::from_micros(300));
        s.command(Kind::Read, 4096, None, Duration::from_micros(90));
        s.command(Kind::Read, 4096, Some(0x05), Duration::from_micros(40));
        s.command(Kind::Sync, 0, None, Duration::from_millis(3));
    }
}

#[tokio::test]
async fn metrics_are_valid_openmetrics_with_volume_gauges() {
    let f = fixture().await;
    f.state
        .pool
        .create_volume("db", 8 << 20, 512)
        .expect("volume");
    f.state.pool.create_snapshot("db", "s1").expect("snapshot");
    traffic(&f);
    let (status, ctype, text) = send(router(f.state.clone()), "GET", "/metrics", None, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(ctype, OPENMETRICS);
    let samples = match check(&text) {
        Ok(s) => s,
        Err(e) => panic!("{e}\n{text}"),
    };
    let value = |name: &str, want: &[(&str, &str)]| -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.2)
    };
    assert_eq!(
        value("ironsan_volume_logical_bytes", &[("volume", "db")]),
        Some(8.0 * 1024.0 * 1024.0)
    );
    for g in ["used_bytes", "referenced_bytes"] {
        assert!(value(&format!("ironsan_volume_{g}"), &[("volume", "db")]).is_some());
    }
    assert_eq!(
        value("ironsan_volume_checksum_errors_total", &[("volume", "db")]),
        Some(0.0)
    );
    // Snapshots are not volumes.
    assert!(!text.contains("db@s1"), "{text}");
    let who = [("initiator", HOST)];
    assert_eq!(
        value("ironsan_initiator_write_bytes_total", &who),
        Some(65_536.0)
    );
    assert_eq!(
        value("ironsan_initiator_read_bytes_total", &who),
        Some(8192.0)
    );
    assert_eq!(
        value(
            "ironsan_initiator_commands_total",
            &[("initiator", HOST), ("kind", "read")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            "ironsan_portal_commands_total",
            &[("portal", "127.0.0.1:3260"), ("kind", "sync")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "ironsan_logins_total",
            &[("outcome", "failure"), ("reason", "authentication")]
        ),
        Some(1.0)
    );
    // Every sample's family is declared; counters' samples end in _total.
    for (name, _, _) in &samples {
        assert!(name.starts_with("ironsan_"), "{name}");
    }
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(text.matches("# EOF").count(), 1);
    // Query parameters are refused like everywhere else.
    let (status, _, _) = send(router(f.state.clone()), "GET", "/metrics?x=1", None, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stats_are_structured_json() {
    let f = fixture().await;
    f.state
        .pool
        .create_volume("db", 1 << 20, 512)
        .expect("volume");
    traffic(&f);
    let (status, _, text) = send(router(f.state.clone()), "GET", "/v1/stats", None, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v = json_of(&text);
    assert!(
        v["time_ms"].as_u64().unwrap_or(0) > 1_700_000_000_000,
        "{v}"
    );
    let host = v["initiators"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["initiator"] == HOST))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(host["read_bytes"], 8192, "{v}");
    assert_eq!(host["write_bytes"], 65_536);
    assert_eq!(
        host["commands"],
        json!({"read": 2, "write": 1, "sync": 1, "unmap": 0, "other": 0, "total": 4})
    );
    assert_eq!(host["errors"], 1);
    assert_eq!(host["errors_by_sense_key"], json!({"0x5": 1}));
    assert_eq!(host["sessions"], 1);
    assert_eq!(host["logins_succeeded"], 1);
    assert_eq!(host["read_latency"]["count"], 2);
    let p50 = host["read_latency"]["p50_us"].as_u64().unwrap_or(0);
    assert!((1..=100).contains(&p50), "{host}");
    assert!(host["write_latency"]["p99_us"].as_u64().unwrap_or(0) > 250);
    assert_eq!(v["portals"][0]["portal"], "127.0.0.1:3260");
    assert_eq!(v["portals"][0]["logins_failed"], 1);
    assert_eq!(v["luns"][0]["target"], IQN);
    assert_eq!(v["luns"][0]["lun"], 0);
    assert_eq!(v["luns"][0]["commands"]["total"], 4);
    assert!(v["events"].is_array());
    assert_eq!(v["volumes"][0]["name"], "db");
    assert_eq!(v["volumes"][0]["logical_bytes"], 1 << 20);
    assert_eq!(v["trace"], Value::Null);
}

#[tokio::test]
async fn trace_is_switched_at_run_time() {
    let f = fixture().await;
    let app = || router(f.state.clone());
    let (s, _, t) = send(app(), "GET", "/v1/trace", None, "").await;
    assert_eq!(
        (s, json_of(&t)),
        (StatusCode::OK, json!({"initiator": null}))
    );
    let body = json!({ "initiator": HOST.to_uppercase() }).to_string();
    let (s, _, t) = send(app(), "PUT", "/v1/trace", None, &body).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(json_of(&t)["initiator"], HOST);
    assert!(f.state.control.metrics().traced(HOST));
    let (_, _, t) = send(app(), "GET", "/v1/stats", None, "").await;
    assert_eq!(json_of(&t)["trace"], HOST);
    for (bad, field) in [
        (json!({"initiator": ""}), "initiator"),
        (json!({"initiator": "iqn.x y"}), "initiator"),
        (json!({"initiator": "x".repeat(300)}), "initiator"),
        (json!({"initiator": HOST, "level": 1}), "level"),
        (json!({}), "initiator"),
    ] {
        let (s, _, t) = send(app(), "PUT", "/v1/trace", None, &bad.to_string()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {t}");
        assert_eq!(json_of(&t)["field"], field, "{bad}: {t}");
    }
    // A refused change leaves the trace alone.
    assert!(f.state.control.metrics().traced(HOST));
    let (s, _, t) = send(app(), "DELETE", "/v1/trace", None, "").await;
    assert_eq!(
        (s, json_of(&t)),
        (StatusCode::OK, json!({"initiator": null}))
    );
    assert!(!f.state.control.metrics().traced(HOST));
    let audit = std::fs::read_to_string(f.dir.join("audit.log")).unwrap_or_default();
    assert!(
        audit.contains("trace_set") && audit.contains("trace_clear"),
        "{audit}"
    );
}

#[tokio::test]
async fn tcp_needs_the_token_for_data_but_not_for_the_page() {
    let f = fixture().await;
    let tcp = || tcp_router(f.state.clone());
    for (method, uri, body) in [
        ("GET", "/metrics", ""),
        ("GET", "/v1/stats", ""),
        ("GET", "/v1/trace", ""),
        ("PUT", "/v1/trace", "{\"initiator\": \"iqn.x:y\"}"),
        ("DELETE", "/v1/trace", ""),
        ("POST", "/ui", ""),
        ("GET", "/ui/other.js", ""),
        ("GET", "/ui/../v1/stats", ""),
    ] {
        let (s, _, t) = send(tcp(), method, uri, None, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}: {t}");
        let (s, _, _) = send(tcp(), method, uri, Some("wrong-token"), body).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} with a wrong token"
        );
    }
    assert!(f.state.control.metrics().trace_target().is_none());
    let (s, ctype, text) = send(tcp(), "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!((s, ctype.as_str()), (StatusCode::OK, OPENMETRICS));
    assert!(check(&text).is_ok());
    let (s, _, text) = send(tcp(), "GET", "/v1/stats", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(json_of(&text)["portals"].is_array());
    // The page and its code need no token; they carry no data.
    for (uri, want) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/chart.js", "text/javascript"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let (s, ctype, text) = send(tcp(), "GET", uri, None, "").await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        assert!(ctype.starts_with(want), "{uri}: {ctype}");
        assert!(!text.contains(TOKEN));
    }
}

#[tokio::test]
async fn the_page_is_self_contained_and_sends_the_token_in_a_header() {
    let f = fixture().await;
    let req = Request::builder()
        .uri("/ui")
        .body(Body::empty())
        .expect("request");
    let resp = router(f.state.clone())
        .oneshot(req)
        .await
        .expect("response");
    let csp = resp
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let page = super::super::ui::INDEX;
    for id in [
        "chart-portal-mbps",
        "chart-portal-iops",
        "chart-initiator-mbps",
        "chart-initiator-iops",
        "chart-sessions",
        "chart-errors",
    ] {
        assert!(
            page.contains(&format!("id=\"{id}\" data-points=\"0\"")),
            "{id}"
        );
    }
    // Nothing from elsewhere: no CDN, no inline script.
    for text in [page, super::super::ui::APP, super::super::ui::CHART] {
        assert!(!text.contains("http://") && !text.contains("https://"));
    }
    assert!(!page.contains("<script>"));
    let app = super::super::ui::APP;
    assert!(app.contains("headers.Authorization = \"Bearer \" + token"));
    assert!(app.contains("fetch(\"/v1/stats\""));
    assert!(
        !app.contains("?token"),
        "the token never goes in a query string"
    );
}

#[test]
fn openapi_documents_the_observability_endpoints() {
    let doc = super::super::OPENAPI;
    for path in ["/metrics:", "/v1/stats:", "/v1/trace:", "/ui:"] {
        assert!(
            doc.contains(&format!("\n  {path}\n")),
            "docs/openapi.yaml lacks {path}"
        );
    }
    for schema in ["Stats:", "Trace:", "Counters:"] {
        assert!(
            doc.contains(&format!("\n    {schema}\n")),
            "docs/openapi.yaml lacks {schema}"
        );
    }
}
