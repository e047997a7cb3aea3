//! `ironsan serve --demo`: a working target with no configuration to write.
//!
//! The first run writes `DATA_DIR/ironsan.toml` (mode 0600: it holds the
//! generated CHAP secret) with one 1 GiB sparse LUN; later runs reuse it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use target::config::{Acl, AuthMode, Config, Lun, Target};

const DEMO_IQN: &str = "iqn.2026-11.org.ironsan:demo";
const DEMO_USER: &str = "demo";

/// Creates the demo configuration unless it exists; returns its path with a
/// banner that tells how to connect.
pub(crate) fn prepare(data_dir: &Path, portal: &str) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    let path = data_dir.join("ironsan.toml");
    let cfg = if path.exists() {
        Config::load(&path)?
    } else {
        let cfg = Config {
            data_dir: data_dir.clone(),
            portals: vec![portal.to_string()],
            portal_groups: Vec::new(),
            iscsi: Default::default(),
            discovery: Default::default(),
            security: Default::default(),
            api: Default::default(),
            targets: vec![Target {
                iqn: DEMO_IQN.into(),
                alias: Some("ironsan demo".into()),
                auth: AuthMode::Chap,
                digests: Default::default(),
                luns: vec![Lun {
                    id: 0,
                    file: None,
                    volume: Some("demo".into()),
                    size: Some("1G".into()),
                    block_size: 512,
                    write_cache: true,
                    read_only: false,
                    serial: None,
                }],
                acls: vec![Acl {
                    initiator: "*".into(),
                    chap_user: Some(DEMO_USER.into()),
                    chap_secret: Some(random_secret()?),
                    mutual_user: None,
                    mutual_secret: None,
                    luns: None,
                }],
            }],
        };
        cfg.validate()
            .map_err(|(k, p)| anyhow::anyhow!("demo config: {k}: {p}"))?;
        let text = toml::to_string(&cfg).context("encoding the demo config")?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        cfg
    };
    let target = cfg
        .targets
        .first()
        .context("the demo config has no target")?;
    let acl = target.acls.first().context("the demo config has no ACL")?;
    let secret = acl.chap_secret.as_deref().unwrap_or_default();
    let user = acl.chap_user.as_deref().unwrap_or_default();
    let portal = cfg.portals.first().map(String::as_str).unwrap_or(portal);
    let banner = format!(
        "ironsan demo target is up\n  config:  {}\n  target:  {}\n  CHAP:    user {user}, secret {secret}\n  URL:     iscsi://{user}%{secret}@{portal}/{}/0\n  try:     iscsi-inq iscsi://{user}%{secret}@{portal}/{}/0\n  manage:  ironsan --api {} target list",
        path.display(),
        target.iqn,
        target.iqn,
        target.iqn,
        cfg.data_dir.join("api.sock").display(),
    );
    Ok((path, banner))
}

/// 24 random characters from [A-Za-z0-9] (about 143 bits), safe in URLs.
fn random_secret() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b)
            .map_err(|e| anyhow::anyhow!("reading the system random generator: {e}"))?;
        // Rejection sampling keeps the distribution uniform.
        for x in b.into_iter().filter(|&x| x < 248) {
            if out.len() < 24 {
                out.push(char::from(ALPHABET[usize::from(x % 62)]));
            }
        }
    }
    Ok(out)
}
