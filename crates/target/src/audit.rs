//! The audit trail: one JSON line per security-relevant event (logins,
//! logouts, lockouts, denied access), appended to `data_dir/audit.log`
//! (mode 0600) and mirrored to the `audit` tracing target. Secrets never
//! appear in it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::{info, warn};

/// Where audit events go.
pub struct Audit {
    file: Option<Mutex<File>>,
}

impl Audit {
    /// Opens (creating) `dir/audit.log`; without it events only reach the log.
    pub fn open(dir: &Path) -> Self {
        let path = dir.join("audit.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path);
        match file {
            Ok(f) => Self {
                file: Some(Mutex::new(f)),
            },
            Err(e) => {
                warn!(path = %path.display(), error = %e, "audit log unavailable; events go to the log only");
                Self { file: None }
            }
        }
    }

    /// An audit sink that only logs (tests).
    pub fn disabled() -> Self {
        Self { file: None }
    }

    /// Records `event` with its fields.
    pub fn record(&self, event: &str, fields: &[(&str, &str)]) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut obj = Map::new();
        obj.insert("ts".into(), Value::from((ts * 1000.0).round() / 1000.0));
        obj.insert("event".into(), Value::from(event));
        for (k, v) in fields {
            obj.insert((*k).into(), Value::from(*v));
        }
        let line = Value::Object(obj).to_string();
        info!(target: "audit", "{line}");
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{line}");
        }
    }
}

/// One row of the access matrix: an initiator that may log into a target,
/// how it authenticates and which LUNs it reaches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Access {
    /// Target name.
    pub target: String,
    /// Initiator name, or `*` for any name.
    pub initiator: String,
    /// `chap`, `mutual-chap` or `none`.
    pub auth: &'static str,
    /// The CHAP user the initiator must present (never the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chap_user: Option<String>,
    /// Whether a login needs CRC32C digests.
    pub digests_required: bool,
    /// LUN ids the initiator reaches.
    pub luns: Vec<u16>,
}

/// The access matrix of a configuration: who reaches which LUN, and how.
pub fn access_matrix(cfg: &crate::config::Config) -> Vec<Access> {
    use crate::config::{AuthMode, DigestMode};
    let mut rows = Vec::new();
    for t in &cfg.targets {
        for acl in &t.acls {
            let auth = match (t.auth, &acl.mutual_user) {
                (AuthMode::None, _) => "none",
                (AuthMode::Chap, None) => "chap",
                (AuthMode::Chap, Some(_)) => "mutual-chap",
            };
            let mut luns: Vec<u16> = t
                .luns
                .iter()
                .map(|l| l.id)
                .filter(|&id| acl.sees(u64::from(id)))
                .collect();
            luns.sort_unstable();
            rows.push(Access {
                target: t.iqn.clone(),
                initiator: acl.initiator.clone(),
                auth,
                chap_user: (t.auth == AuthMode::Chap)
                    .then(|| acl.chap_user.clone())
                    .flatten(),
                digests_required: t.digests == DigestMode::Required,
                luns,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn matrix_follows_acls_masks_and_auth() {
        let cfg = Config::parse(
            r#"
data_dir = "/tmp/x"
portals = ["127.0.0.1:3260"]
[[target]]
iqn = "iqn.2026-11.org.example:a"
digests = "required"
[[target.lun]]
id = 0
file = "/tmp/a0"
[[target.lun]]
id = 1
file = "/tmp/a1"
[[target.acl]]
initiator = "iqn.2026-11.org.example:h1"
chap_user = "h1"
chap_secret = "secret-for-h1!"
luns = [1]
[[target.acl]]
initiator = "iqn.2026-11.org.example:h2"
chap_user = "h2"
chap_secret = "secret-for-h2!"
mutual_user = "t"
mutual_secret = "target-secret!"
[[target]]
iqn = "iqn.2026-11.org.example:b"
auth = "none"
[[target.lun]]
id = 0
file = "/tmp/b0"
[[target.acl]]
initiator = "*"
"#,
            Path::new("t.toml"),
        )
        .expect("valid");
        let m = access_matrix(&cfg);
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].auth, m[0].luns.clone(), m[0].digests_required),
            ("chap", vec![1], true)
        );
        assert_eq!((m[1].auth, m[1].luns.clone()), ("mutual-chap", vec![0, 1]));
        assert_eq!(
            (m[2].auth, m[2].chap_user.clone(), m[2].initiator.as_str()),
            ("none", None, "*")
        );
        let json = serde_json::to_string(&m).expect("json");
        assert!(!json.contains("secret"), "secrets never appear: {json}");
    }
}
