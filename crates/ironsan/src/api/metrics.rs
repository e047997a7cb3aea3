//! Observability endpoints: `GET /metrics` (OpenMetrics text for
//! Prometheus), `GET /v1/stats` (the same counters as JSON, for `ironsan
//! stats`, `ironsan top` and the dashboard) and the per-initiator command
//! trace (`GET`/`PUT`/`DELETE /v1/trace`).

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use target::metrics::MetricsSnapshot;
use volume::{ObjectKind, VolumeInfo};

use super::error::{ApiError, JsonBody};
use super::{AppState, Params};

/// The content type of `GET /metrics`.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest initiator name (RFC 7143: 223 bytes).
const MAX_NAME: usize = 223;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The per-volume gauges of the pool, as OpenMetrics families.
pub(crate) fn render_volumes(out: &mut String, infos: &[VolumeInfo]) {
    let vols: Vec<&VolumeInfo> = infos
        .iter()
        .filter(|v| v.kind == ObjectKind::Volume)
        .collect();
    type Get = fn(&VolumeInfo) -> u64;
    let gauges: [(&str, &str, Get); 3] = [
        (
            "logical_bytes",
            "Size of the volume seen by initiators",
            |v| v.logical_bytes,
        ),
        (
            "used_bytes",
            "Pool space freed if the volume and its snapshots were deleted",
            |v| v.used_bytes,
        ),
        ("referenced_bytes", "Data visible through the volume", |v| {
            v.referenced_bytes
        }),
    ];
    for (name, help, f) in gauges {
        let _ = writeln!(
            out,
            "# TYPE ironsan_volume_{name} gauge\n# UNIT ironsan_volume_{name} bytes\n# HELP ironsan_volume_{name} {help}."
        );
        for v in &vols {
            let _ = writeln!(
                out,
                "ironsan_volume_{name}{{volume=\"{}\"}} {}",
                esc(&v.name),
                f(v)
            );
        }
    }
    let _ = writeln!(
        out,
        "# TYPE ironsan_volume_checksum_errors counter\n# HELP ironsan_volume_checksum_errors Checksum errors seen since the volume was opened."
    );
    for v in &vols {
        let _ = writeln!(
            out,
            "ironsan_volume_checksum_errors_total{{volume=\"{}\"}} {}",
            esc(&v.name),
            v.checksum_errors
        );
    }
}

/// The whole exposition: the runtime's counters, the pool's gauges, `# EOF`.
pub(crate) fn exposition(s: &AppState) -> String {
    let mut out = s.control.metrics().render();
    render_volumes(&mut out, &s.pool.list());
    out.push_str("# EOF\n");
    out
}

/// `GET /metrics`
pub(crate) async fn metrics(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    Params::parse(q.as_deref())?.only(&[])?;
    let text = tokio::task::spawn_blocking(move || exposition(&s))
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, OPENMETRICS),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    ))
}

/// A volume's space and health, in `/v1/stats`.
#[derive(Serialize)]
pub(crate) struct VolumeStats {
    name: String,
    logical_bytes: u64,
    used_bytes: u64,
    referenced_bytes: u64,
    checksum_errors: u64,
}

/// The answer of `GET /v1/stats`.
#[derive(Serialize)]
pub(crate) struct Stats {
    /// When the sample was taken: Unix milliseconds (rates divide by its
    /// difference between two samples).
    time_ms: u64,
    uptime_secs: u64,
    #[serde(flatten)]
    metrics: MetricsSnapshot,
    volumes: Vec<VolumeStats>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `GET /v1/stats`
pub(crate) async fn stats(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    Params::parse(q.as_deref())?.only(&[])?;
    let body = tokio::task::spawn_blocking(move || {
        let volumes = s
            .pool
            .list()
            .into_iter()
            .filter(|v| v.kind == ObjectKind::Volume)
            .map(|v| VolumeStats {
                name: v.name,
                logical_bytes: v.logical_bytes,
                used_bytes: v.used_bytes,
                referenced_bytes: v.referenced_bytes,
                checksum_errors: v.checksum_errors,
            })
            .collect();
        Stats {
            time_ms: now_ms(),
            uptime_secs: s.started.elapsed().as_secs(),
            metrics: s.control.metrics().snapshot(),
            volumes,
        }
    })
    .await
    .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)))
}

/// The body of `PUT /v1/trace`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TraceRequest {
    initiator: String,
}

fn trace_view(s: &AppState) -> Json<Value> {
    Json(json!({ "initiator": s.control.metrics().trace_target() }))
}

/// `GET /v1/trace`: the traced initiator (`null` when off).
pub(crate) async fn show_trace(State(s): State<AppState>) -> Json<Value> {
    trace_view(&s)
}

/// `PUT /v1/trace` `{"initiator": "iqn..."}`: log every command of that
/// initiator (tracing target `trace`), replacing any previous choice.
pub(crate) async fn set_trace(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<TraceRequest>,
) -> Result<Json<Value>, ApiError> {
    let name = req.initiator.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::bad(
            "initiator",
            format!("an initiator name has 1 to {MAX_NAME} bytes"),
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::bad(
            "initiator",
            "an initiator name has no spaces or control characters",
        ));
    }
    s.control.metrics().set_trace(Some(name.to_string()));
    s.control.audit("trace_set", &[("initiator", name)]);
    Ok(trace_view(&s))
}

/// `DELETE /v1/trace`: stop tracing.
pub(crate) async fn clear_trace(State(s): State<AppState>) -> Json<Value> {
    let m = s.control.metrics();
    if let Some(old) = m.trace_target() {
        m.set_trace(None);
        s.control.audit("trace_clear", &[("initiator", &old)]);
    }
    trace_view(&s)
}

#[cfg(test)]
pub(crate) mod format {
    //! A checker of the OpenMetrics text format, strict enough to catch
    //! what Prometheus would refuse.

    use std::collections::{BTreeMap, BTreeSet};

    /// The suffixes a sample of a family of `kind` may carry.
    fn suffixes(kind: &str) -> &'static [&'static str] {
        match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "summary" => &["", "_count", "_sum", "_created"],
            "info" => &["_info"],
            _ => &[""],
        }
    }

    fn valid_name(n: &str) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// Parses `{a="x",b="y"}`; returns the labels.
    fn labels(text: &str) -> Result<BTreeMap<String, String>, String> {
        let inner = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| format!("bad label set {text:?}"))?;
        let mut out = BTreeMap::new();
        let mut rest = inner;
        while !rest.is_empty() {
            let (name, after) = rest
                .split_once("=\"")
                .ok_or_else(|| format!("bad label in {text:?}"))?;
            if !valid_name(name) {
                return Err(format!("bad label name {name:?}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, e @ ('\\' | '"'))) => value.push(e),
                        _ => return Err(format!("bad escape in {text:?}")),
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("unterminated value in {text:?}"))?;
            if out.insert(name.to_string(), value).is_some() {
                return Err(format!("label {name} repeated in {text:?}"));
            }
            rest = &after[end + 1..];
            rest = match rest.strip_prefix(',') {
                Some(r) if !r.is_empty() => r,
                Some(_) => return Err(format!("trailing comma in {text:?}")),
                None if rest.is_empty() => rest,
                None => return Err(format!("junk after a label in {text:?}")),
            };
        }
        Ok(out)
    }

    /// Checks `text`; returns the samples as (name, labels, value).
    #[allow(clippy::type_complexity)]
    pub(crate) fn check(
        text: &str,
    ) -> Result<Vec<(String, BTreeMap<String, String>, f64)>, String> {
        let body = text
            .strip_suffix("# EOF\n")
            .ok_or("the text does not end with \"# EOF\\n\"")?;
        let mut declared = BTreeSet::new();
        let mut current: Option<(String, String)> = None;
        let mut samples = Vec::new();
        for (no, line) in body.lines().enumerate() {
            let at = |m: String| format!("line {}: {m}: {line:?}", no + 1);
            if let Some(meta) = line.strip_prefix("# ") {
                let mut parts = meta.splitn(3, ' ');
                let (what, family) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                match what {
                    "TYPE" => {
                        let kind = parts.next().unwrap_or("");
                        if !matches!(
                            kind,
                            "counter"
                                | "gauge"
                                | "histogram"
                                | "summary"
                                | "info"
                                | "stateset"
                                | "gaugehistogram"
                                | "unknown"
                        ) {
                            return Err(at(format!("unknown type {kind:?}")));
                        }
                        if !valid_name(family) || !declared.insert(family.to_string()) {
                            return Err(at("bad or repeated family".into()));
                        }
                        current = Some((family.to_string(), kind.to_string()));
                    }
                    "HELP" | "UNIT" => {
                        if current.as_ref().map(|c| c.0.as_str()) != Some(family) {
                            return Err(at("metadata of a family other than the current".into()));
                        }
                        if what == "UNIT" {
                            let unit = parts.next().unwrap_or("");
                            if !family.ends_with(&format!("_{unit}")) {
                                return Err(at("family name does not end with its unit".into()));
                            }
                        }
                    }
                    "EOF" => return Err(at("# EOF before the end".into())),
                    _ => return Err(at("unknown comment".into())),
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                return Err(at("empty line or bad comment".into()));
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..name_end];
            let (label_text, value_text) = if line[name_end..].starts_with('{') {
                let close = line
                    .rfind('}')
                    .ok_or_else(|| at("unclosed labels".into()))?;
                (&line[name_end..=close], line[close + 1..].trim_start())
            } else {
                ("{}", line[name_end..].trim_start())
            };
            let (family, kind) = current
                .as_ref()
                .ok_or_else(|| at("sample before any # TYPE".into()))?;
            let suffix = name
                .strip_prefix(family.as_str())
                .ok_or_else(|| at(format!("sample outside its family {family}")))?;
            if !suffixes(kind).contains(&suffix) {
                return Err(at(format!("suffix {suffix:?} not allowed for a {kind}")));
            }
            let labels = labels(label_text).map_err(at)?;
            let mut value_parts = value_text.split(' ');
            let value: f64 = match value_parts.next().unwrap_or("") {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| at(format!("bad value {v:?}")))?,
            };
            if kind == "counter" && (value < 0.0 || value.is_nan()) {
                return Err(at("negative counter".into()));
            }
            if suffix == "_bucket" && !labels.contains_key("le") {
                return Err(at("bucket without le".into()));
            }
            samples.push((name.to_string(), labels, value));
        }
        Ok(samples)
    }

    #[test]
    fn the_checker_refuses_what_it_should() {
        let ok = "# TYPE a counter\na_total{x=\"1\"} 3\n# TYPE b gauge\nb 1.5\n# EOF\n";
        assert_eq!(check(ok).map(|s| s.len()), Ok(2));
        for bad in [
            "# TYPE a counter\na_total 1\n",
            "# TYPE a counter\na 1\n# EOF\n",
            "b 1\n# EOF\n",
            "# TYPE a counter\na_total 1\n# TYPE b gauge\na_total 2\n# EOF\n",
            "# TYPE a gauge\na{x=\"1\",} 1\n# EOF\n",
            "# TYPE a gauge\na{x=\"1} 1\n# EOF\n",
            "# TYPE a gauge\n# TYPE a gauge\n# EOF\n",
            "# TYPE a_bytes gauge\n# UNIT a_bytes seconds\n# EOF\n",
            "# TYPE a counter\na_total -1\n# EOF\n",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
