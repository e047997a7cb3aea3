//! The difference between two configurations, as `ironsan apply` prints and
//! executes it. Pure: no I/O, so `apply --dry-run` and the daemon compute
//! the same thing.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::config::{Acl, Config, Lun, Target};

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// A portal starts listening.
    AddPortal {
        /// Address.
        portal: String,
    },
    /// A portal stops listening.
    RemovePortal {
        /// Address.
        portal: String,
    },
    /// A new target.
    AddTarget {
        /// Target name.
        target: String,
    },
    /// A target goes away with its LUNs.
    RemoveTarget {
        /// Target name.
        target: String,
    },
    /// Target settings (alias, auth, digests) change; sessions keep running,
    /// new logins use the new settings.
    ChangeTarget {
        /// Target name.
        target: String,
        /// What changed.
        what: Vec<String>,
    },
    /// A LUN is mapped.
    MapLun {
        /// Target name.
        target: String,
        /// LUN id.
        lun: u16,
    },
    /// A LUN is unmapped.
    UnmapLun {
        /// Target name.
        target: String,
        /// LUN id.
        lun: u16,
    },
    /// A LUN's backing or attributes change: unmapped and mapped again.
    RemapLun {
        /// Target name.
        target: String,
        /// LUN id.
        lun: u16,
    },
    /// An ACL entry is added.
    AddAcl {
        /// Target name.
        target: String,
        /// Initiator name or `*`.
        initiator: String,
    },
    /// An ACL entry is removed.
    RemoveAcl {
        /// Target name.
        target: String,
        /// Initiator name or `*`.
        initiator: String,
    },
    /// An ACL entry's credentials or LUN mask change (effective at next login).
    ChangeAcl {
        /// Target name.
        target: String,
        /// Initiator name or `*`.
        initiator: String,
        /// What changed (never the secret values).
        what: Vec<String>,
    },
    /// A global section (`iscsi`, `security`, `discovery`, `api`) changes; applies to new sessions
    /// (the daemon rebinds the API's TCP listener).
    ChangeSettings {
        /// Section name.
        section: String,
    },
    /// `data_dir` cannot change on a running daemon.
    ChangeDataDir,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddPortal { portal } => write!(f, "+ portal {portal}"),
            Self::RemovePortal { portal } => write!(f, "- portal {portal}"),
            Self::AddTarget { target } => write!(f, "+ target {target}"),
            Self::RemoveTarget { target } => write!(f, "- target {target}"),
            Self::ChangeTarget { target, what } => {
                write!(f, "~ target {target} ({})", what.join(", "))
            }
            Self::MapLun { target, lun } => write!(f, "+ lun {target} {lun}"),
            Self::UnmapLun { target, lun } => write!(f, "- lun {target} {lun}"),
            Self::RemapLun { target, lun } => {
                write!(f, "~ lun {target} {lun} (backing or attributes)")
            }
            Self::AddAcl { target, initiator } => write!(f, "+ acl {target} {initiator}"),
            Self::RemoveAcl { target, initiator } => write!(f, "- acl {target} {initiator}"),
            Self::ChangeAcl {
                target,
                initiator,
                what,
            } => {
                write!(f, "~ acl {target} {initiator} ({})", what.join(", "))
            }
            Self::ChangeSettings { section } => write!(f, "~ [{section}]"),
            Self::ChangeDataDir => write!(
                f,
                "! data_dir differs: it cannot change on a running daemon"
            ),
        }
    }
}

fn by_iqn(cfg: &Config) -> BTreeMap<String, &Target> {
    cfg.targets
        .iter()
        .map(|t| (t.iqn.to_ascii_lowercase(), t))
        .collect()
}

/// The changes that turn `from` into `to`: new portals and settings first,
/// then each target in name order, removed targets and portals last.
pub fn diff(from: &Config, to: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    if from.data_dir != to.data_dir {
        out.push(Change::ChangeDataDir);
    }
    for p in to.portals.iter().filter(|p| !from.portals.contains(p)) {
        out.push(Change::AddPortal { portal: p.clone() });
    }
    for (section, changed) in [
        ("iscsi", from.iscsi != to.iscsi),
        ("security", from.security != to.security),
        ("discovery", from.discovery != to.discovery),
        ("portal_group", from.portal_groups != to.portal_groups),
        ("api", from.api != to.api),
    ] {
        if changed {
            out.push(Change::ChangeSettings {
                section: section.into(),
            });
        }
    }
    let (old, new) = (by_iqn(from), by_iqn(to));
    for (key, t) in &new {
        match old.get(key) {
            None => {
                out.push(Change::AddTarget {
                    target: t.iqn.clone(),
                });
                for l in &t.luns {
                    out.push(Change::MapLun {
                        target: t.iqn.clone(),
                        lun: l.id,
                    });
                }
                for a in &t.acls {
                    out.push(Change::AddAcl {
                        target: t.iqn.clone(),
                        initiator: a.initiator.clone(),
                    });
                }
            }
            Some(o) => target_changes(o, t, &mut out),
        }
    }
    for (key, t) in &old {
        if !new.contains_key(key) {
            out.push(Change::RemoveTarget {
                target: t.iqn.clone(),
            });
        }
    }
    for p in from.portals.iter().filter(|p| !to.portals.contains(p)) {
        out.push(Change::RemovePortal { portal: p.clone() });
    }
    out
}

fn target_changes(old: &Target, new: &Target, out: &mut Vec<Change>) {
    let iqn = &new.iqn;
    let mut what = Vec::new();
    if old.alias != new.alias {
        what.push("alias".to_string());
    }
    if old.auth != new.auth {
        what.push(format!("auth {:?} -> {:?}", old.auth, new.auth).to_lowercase());
    }
    if old.digests != new.digests {
        what.push(format!("digests {:?} -> {:?}", old.digests, new.digests).to_lowercase());
    }
    if !what.is_empty() {
        out.push(Change::ChangeTarget {
            target: iqn.clone(),
            what,
        });
    }
    let luns = |t: &Target| {
        t.luns
            .iter()
            .map(|l| (l.id, l.clone()))
            .collect::<BTreeMap<u16, Lun>>()
    };
    let (ol, nl) = (luns(old), luns(new));
    for (id, l) in &nl {
        match ol.get(id) {
            None => out.push(Change::MapLun {
                target: iqn.clone(),
                lun: *id,
            }),
            Some(o) if o != l => out.push(Change::RemapLun {
                target: iqn.clone(),
                lun: *id,
            }),
            Some(_) => {}
        }
    }
    let acls = |t: &Target| {
        t.acls
            .iter()
            .map(|a| (a.initiator.to_ascii_lowercase(), a.clone()))
            .collect::<BTreeMap<String, Acl>>()
    };
    let (oa, na) = (acls(old), acls(new));
    for (key, a) in &na {
        match oa.get(key) {
            None => out.push(Change::AddAcl {
                target: iqn.clone(),
                initiator: a.initiator.clone(),
            }),
            Some(o) if o != a => out.push(Change::ChangeAcl {
                target: iqn.clone(),
                initiator: a.initiator.clone(),
                what: acl_changes(o, a),
            }),
            Some(_) => {}
        }
    }
    for (key, a) in &oa {
        if !na.contains_key(key) {
            out.push(Change::RemoveAcl {
                target: iqn.clone(),
                initiator: a.initiator.clone(),
            });
        }
    }
    for id in ol.keys().filter(|id| !nl.contains_key(id)) {
        out.push(Change::UnmapLun {
            target: iqn.clone(),
            lun: *id,
        });
    }
}

/// Names what differs between two ACL entries without revealing secrets.
fn acl_changes(old: &Acl, new: &Acl) -> Vec<String> {
    let mut what = Vec::new();
    if old.chap_user != new.chap_user {
        what.push("chap_user".into());
    }
    if old.chap_secret != new.chap_secret {
        what.push("chap_secret".into());
    }
    if old.mutual_user != new.mutual_user {
        what.push("mutual_user".into());
    }
    if old.mutual_secret != new.mutual_secret {
        what.push("mutual_secret".into());
    }
    if old.luns != new.luns {
        what.push("luns".into());
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
data_dir = "/var/lib/ironsan"
portals = ["127.0.0.1:3260"]
[[target]]
iqn = "iqn.2026-11.org.example:a"
[[target.lun]]
id = 0
file = "/srv/a0.img"
[[target.acl]]
initiator = "iqn.2026-11.org.example:h1"
chap_user = "h1"
chap_secret = "secret-of-h1!"
"#;

    fn cfg(text: &str) -> Config {
        Config::parse(text, Path::new("t.toml")).expect("valid")
    }

    #[test]
    fn identical_configs_have_no_changes() {
        assert!(diff(&cfg(BASE), &cfg(BASE)).is_empty());
    }

    #[test]
    fn additions_changes_and_removals_in_order() {
        let to = BASE
            .replace("127.0.0.1:3260", "127.0.0.1:3261")
            .replace("secret-of-h1!", "new-secret-of-h1")
            .replace("/srv/a0.img", "/srv/a0-new.img")
            + "[[target.lun]]\nid = 1\nfile = \"/srv/a1.img\"\n[[target]]\niqn = \"iqn.2026-11.org.example:b\"\n";
        let changes: Vec<String> = diff(&cfg(BASE), &cfg(&to))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            vec![
                "+ portal 127.0.0.1:3261",
                "~ lun iqn.2026-11.org.example:a 0 (backing or attributes)",
                "+ lun iqn.2026-11.org.example:a 1",
                "~ acl iqn.2026-11.org.example:a iqn.2026-11.org.example:h1 (chap_secret)",
                "+ target iqn.2026-11.org.example:b",
                "- portal 127.0.0.1:3260",
            ]
        );
        assert!(!changes.iter().any(|c| c.contains("new-secret")));
        let back: Vec<String> = diff(&cfg(&to), &cfg(BASE))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(back.contains(&"- target iqn.2026-11.org.example:b".to_string()));
        assert!(back.contains(&"- lun iqn.2026-11.org.example:a 1".to_string()));
    }
}
