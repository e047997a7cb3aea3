//! Validation of a configuration: every rule the TOML schema cannot express.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::*;

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        cfg.validate()
            .map_err(|(key, problem)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                problem,
            })?;
        Ok(cfg)
    }

    /// The portal addresses, parsed.
    pub fn portal_addrs(&self) -> Vec<SocketAddr> {
        self.portals.iter().filter_map(|p| p.parse().ok()).collect()
    }

    /// Checks every rule a TOML schema cannot express. Errors are (key, problem).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(("data_dir".into(), "must not be empty".into()));
        }
        if self.portals.is_empty() {
            return Err((
                "portals".into(),
                "at least one listen address is required".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, p) in self.portals.iter().enumerate() {
            let addr: SocketAddr = p.parse().map_err(|_| {
                (
                    format!("portals[{i}]"),
                    format!("{p:?} is not an address:port (IPv6 as \"[::1]:3260\")"),
                )
            })?;
            if !seen.insert(addr) {
                return Err((format!("portals[{i}]"), format!("{p} is listed twice")));
            }
        }
        let mut group_ids = HashSet::new();
        let mut grouped = HashSet::new();
        for (g, group) in self.portal_groups.iter().enumerate() {
            let key = format!("portal_group[{g}]");
            if group.id == 0 || !group_ids.insert(group.id) {
                return Err((
                    format!("{key}.id"),
                    format!("{} must be unique and at least 1", group.id),
                ));
            }
            for (i, p) in group.portals.iter().enumerate() {
                if !self.portals.contains(p) {
                    return Err((
                        format!("{key}.portals[{i}]"),
                        format!("{p} is not listed in portals"),
                    ));
                }
                if !grouped.insert(p.clone()) {
                    return Err((
                        format!("{key}.portals[{i}]"),
                        format!("{p} is already in another group"),
                    ));
                }
            }
        }
        self.iscsi.validate()?;
        self.security.validate()?;
        self.api.validate()?;
        let min_secret = self.security.min_chap_secret_len;
        self.discovery.validate(min_secret)?;
        let mut iqns = HashSet::new();
        for (t, target) in self.targets.iter().enumerate() {
            let key = format!("target[{t}]");
            target.validate(&key, min_secret)?;
            if !iqns.insert(target.iqn.to_ascii_lowercase()) {
                return Err((
                    format!("{key}.iqn"),
                    format!("{} is defined twice", target.iqn),
                ));
            }
        }
        Ok(())
    }
}

impl IscsiSettings {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, p: &str| Err((format!("iscsi.{k}"), p.to_string()));
        if !(512..=16_777_215).contains(&self.max_recv_data_segment_length) {
            return err(
                "max_recv_data_segment_length",
                "must be between 512 and 16777215",
            );
        }
        if !(512..=16_777_215).contains(&self.max_burst_length) {
            return err("max_burst_length", "must be between 512 and 16777215");
        }
        if !(512..=16_777_215).contains(&self.first_burst_length) {
            return err("first_burst_length", "must be between 512 and 16777215");
        }
        if self.first_burst_length > self.max_burst_length {
            return err("first_burst_length", "must not exceed max_burst_length");
        }
        if self.max_outstanding_r2t == 0 {
            return err("max_outstanding_r2t", "must be at least 1");
        }
        if !(1..=4096).contains(&self.queue_depth) {
            return err("queue_depth", "must be between 1 and 4096");
        }
        match parse_size(&self.io_memory) {
            Ok(n) if n >= 64 << 20 => {}
            Ok(_) => return err("io_memory", "must be at least 64M"),
            Err(p) => return Err(("iscsi.io_memory".into(), p)),
        }
        if self.login_timeout == 0 {
            return err("login_timeout", "must be at least 1 second");
        }
        if self.nop_in_interval > 0 && self.nop_in_timeout == 0 {
            return err(
                "nop_in_timeout",
                "must be at least 1 second when nop_in_interval is set",
            );
        }
        Ok(())
    }
}

impl Discovery {
    fn validate(&self, min_secret: usize) -> Result<(), (String, String)> {
        if self.auth == DiscoveryAuth::Chap {
            match (&self.chap_user, &self.chap_secret) {
                (Some(u), Some(s)) => {
                    check_chap_user(u).map_err(|p| ("discovery.chap_user".to_string(), p))?;
                    check_secret(s, min_secret)
                        .map_err(|p| ("discovery.chap_secret".to_string(), p))?;
                }
                _ => {
                    return Err((
                        "discovery".into(),
                        "auth = \"chap\" needs chap_user and chap_secret".into(),
                    ))
                }
            }
        }
        Ok(())
    }
}

impl Target {
    fn validate(&self, key: &str, min_secret: usize) -> Result<(), (String, String)> {
        check_iscsi_name(&self.iqn).map_err(|p| (format!("{key}.iqn"), p))?;
        let mut ids = HashSet::new();
        for (l, lun) in self.luns.iter().enumerate() {
            let lkey = format!("{key}.lun[{l}]");
            if lun.id >= 16384 {
                return Err((format!("{lkey}.id"), "must be below 16384".into()));
            }
            if !ids.insert(lun.id) {
                return Err((
                    format!("{lkey}.id"),
                    format!("LUN {} is defined twice", lun.id),
                ));
            }
            match (&lun.file, &lun.volume) {
                (Some(f), None) if f.as_os_str().is_empty() => {
                    return Err((format!("{lkey}.file"), "must not be empty".into()));
                }
                (Some(_), None) => {}
                (None, Some(v)) => {
                    check_volume_name(v).map_err(|p| (format!("{lkey}.volume"), p))?
                }
                (Some(_), Some(_)) => {
                    return Err((lkey, "give either file or volume, not both".into()));
                }
                (None, None) => {
                    return Err((
                        lkey,
                        "needs a backing: file = \"PATH\" or volume = \"NAME\"".into(),
                    ));
                }
            }
            if lun.block_size != 512 && lun.block_size != 4096 {
                return Err((format!("{lkey}.block_size"), "must be 512 or 4096".into()));
            }
            if let Some(size) = &lun.size {
                let bytes = parse_size(size).map_err(|p| (format!("{lkey}.size"), p))?;
                if bytes == 0 || bytes % u64::from(lun.block_size) != 0 {
                    return Err((
                        format!("{lkey}.size"),
                        format!(
                            "{size} is not a positive multiple of the {}-byte block size",
                            lun.block_size
                        ),
                    ));
                }
            }
        }
        let mut initiators = HashSet::new();
        for (a, acl) in self.acls.iter().enumerate() {
            let akey = format!("{key}.acl[{a}]");
            if acl.initiator != "*" {
                check_iscsi_name(&acl.initiator).map_err(|p| (format!("{akey}.initiator"), p))?;
            }
            if !initiators.insert(acl.initiator.to_ascii_lowercase()) {
                return Err((
                    format!("{akey}.initiator"),
                    format!("{} is listed twice", acl.initiator),
                ));
            }
            acl.validate(&akey, self.auth, min_secret)?;
            if let Some(luns) = &acl.luns {
                for (i, id) in luns.iter().enumerate() {
                    if !ids.contains(id) {
                        return Err((
                            format!("{akey}.luns[{i}]"),
                            format!("LUN {id} is not defined in this target"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Acl {
    fn validate(
        &self,
        key: &str,
        auth: AuthMode,
        min_secret: usize,
    ) -> Result<(), (String, String)> {
        match (&self.chap_user, &self.chap_secret) {
            (Some(u), Some(s)) => {
                check_chap_user(u).map_err(|p| (format!("{key}.chap_user"), p))?;
                check_secret(s, min_secret).map_err(|p| (format!("{key}.chap_secret"), p))?;
            }
            (None, None) if auth == AuthMode::None => {}
            (None, None) => return Err((
                format!("{key}.chap_user"),
                "the target uses auth = \"chap\": every ACL entry needs chap_user and chap_secret \
                     (an initiator name alone is not a credential)"
                    .into(),
            )),
            (Some(_), None) => {
                return Err((
                    format!("{key}.chap_secret"),
                    "is required with chap_user".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    format!("{key}.chap_user"),
                    "is required with chap_secret".into(),
                ))
            }
        }
        match (&self.mutual_user, &self.mutual_secret) {
            (None, None) => {}
            (Some(u), Some(s)) => {
                if self.chap_secret.is_none() {
                    return Err((
                        format!("{key}.mutual_user"),
                        "mutual CHAP needs chap_user and chap_secret too".into(),
                    ));
                }
                check_chap_user(u).map_err(|p| (format!("{key}.mutual_user"), p))?;
                check_secret(s, min_secret).map_err(|p| (format!("{key}.mutual_secret"), p))?;
                if Some(s) == self.chap_secret.as_ref() {
                    return Err((
                        format!("{key}.mutual_secret"),
                        "must differ from chap_secret (a shared secret allows reflection attacks)"
                            .into(),
                    ));
                }
            }
            (Some(_), None) => {
                return Err((
                    format!("{key}.mutual_secret"),
                    "is required with mutual_user".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    format!("{key}.mutual_user"),
                    "is required with mutual_secret".into(),
                ))
            }
        }
        Ok(())
    }
}

fn check_chap_user(user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > 255 {
        return Err("must be 1 to 255 characters".into());
    }
    if user.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn check_secret(secret: &str, min_len: usize) -> Result<(), String> {
    if secret.len() < min_len {
        return Err(format!("must be at least {min_len} bytes long"));
    }
    if secret.len() > 255 {
        return Err("must be at most 255 bytes long".into());
    }
    Ok(())
}

/// Checks a volume name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a volume name (1-64 of A-Z a-z 0-9 . _ -)"
        ))
    }
}

/// Checks an iSCSI name against RFC 7143 section 4.2.7: `iqn.` names with a
/// date and a reversed domain, `eui.` with 16 hex digits, `naa.` with 16 or 32.
pub fn check_iscsi_name(name: &str) -> Result<(), String> {
    if name.len() > 223 {
        return Err(format!("{name:?} is longer than 223 bytes"));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("iqn.") {
        let bytes = rest.as_bytes();
        let date_ok = bytes.len() > 8
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'-'
            && bytes[5..7].iter().all(u8::is_ascii_digit)
            && bytes[7] == b'.';
        if !date_ok {
            return Err(format!(
                "{name:?} is not iqn.YYYY-MM.reversed.domain[:identifier]"
            ));
        }
        let month = (bytes[5] - b'0') * 10 + (bytes[6] - b'0');
        if !(1..=12).contains(&month) {
            return Err(format!("{name:?} has an invalid month"));
        }
        let ok = rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !ok {
            return Err(format!(
                "{name:?} may contain only a-z, 0-9, '.', '-' and ':'"
            ));
        }
        return Ok(());
    }
    for (prefix, lens) in [("eui.", &[16usize][..]), ("naa.", &[16, 32][..])] {
        if let Some(hex) = lower.strip_prefix(prefix) {
            if lens.contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Ok(());
            }
            return Err(format!(
                "{name:?} needs {lens:?} hex digits after {prefix:?}"
            ));
        }
    }
    Err(format!(
        "{name:?} is not an iSCSI name (iqn., eui. or naa.)"
    ))
}

/// Parses a size such as `10G`, `512MiB`, `1t` or `4096` (bytes). Suffixes are
/// binary: K = 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 10G, 512M, 1T, 1048576)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (use K, M, G, T or P)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}
