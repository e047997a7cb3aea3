//! Targets as the runtime serves them, and opening their logical units.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use scsi::{FileDevice, LogicalUnit, LuIdentity};
use tracing::info;

use crate::config::{parse_size, Acl, Lun, Target};
use crate::server::ServerError;

/// A target as the runtime serves it: its name, and a view (settings, LUNs,
/// ACLs) that live reconfiguration swaps as a whole.
pub struct TargetNode {
    /// Target name.
    pub iqn: String,
    view: RwLock<Arc<TargetView>>,
    /// Set while a drain removes storage: new logins are told to retry later.
    pub(crate) draining: AtomicBool,
    /// LUNs removed by force, with the nexuses already told so: their first
    /// command gets a unit attention, later ones LOGICAL UNIT NOT SUPPORTED.
    removed: Mutex<HashMap<u64, HashSet<u64>>>,
}

/// One consistent state of a target.
pub struct TargetView {
    /// The target's configuration.
    pub spec: Target,
    /// LUN number to logical unit.
    pub luns: BTreeMap<u64, Arc<LogicalUnit>>,
}

impl TargetView {
    /// The ACL entry that admits `initiator`: an exact match first, then `*`.
    pub fn acl_for(&self, initiator: &str) -> Option<&Acl> {
        let acls = &self.spec.acls;
        acls.iter()
            .find(|a| a.initiator.eq_ignore_ascii_case(initiator))
            .or_else(|| acls.iter().find(|a| a.initiator == "*"))
    }
}

/// What a LUN number resolves to for one nexus.
pub(crate) enum LunRef {
    /// A mapped logical unit.
    Mapped(Arc<LogicalUnit>),
    /// Removed by force, and this nexus has not been told yet.
    JustRemoved,
    /// Nothing (never mapped, masked, or removed and already reported).
    None,
}

impl TargetNode {
    pub(crate) fn new(spec: Target, luns: BTreeMap<u64, Arc<LogicalUnit>>) -> Arc<Self> {
        Arc::new(Self {
            iqn: spec.iqn.clone(),
            view: RwLock::new(Arc::new(TargetView { spec, luns })),
            draining: AtomicBool::new(false),
            removed: Mutex::new(HashMap::new()),
        })
    }

    /// The current view.
    pub fn view(&self) -> Arc<TargetView> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Swaps in a new view; LUNs that disappear are remembered as removed.
    pub(crate) fn replace(&self, view: TargetView) {
        let mut cur = self.view.write().unwrap_or_else(|p| p.into_inner());
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        for id in cur.luns.keys().filter(|id| !view.luns.contains_key(id)) {
            removed.insert(*id, HashSet::new());
        }
        for id in view.luns.keys() {
            removed.remove(id);
        }
        *cur = Arc::new(view);
    }

    /// Resolves LUN `id` for `nexus`.
    pub(crate) fn resolve(&self, id: u64, nexus: u64) -> LunRef {
        if let Some(lu) = self.view().luns.get(&id) {
            return LunRef::Mapped(lu.clone());
        }
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        match removed.get_mut(&id).map(|told| told.insert(nexus)) {
            Some(true) => LunRef::JustRemoved,
            _ => LunRef::None,
        }
    }
}

/// Opens the logical units of `target`; `key` names it in errors.
pub(crate) fn open_luns(
    key: &str,
    target: &Target,
) -> Result<BTreeMap<u64, Arc<LogicalUnit>>, ServerError> {
    let mut luns = BTreeMap::new();
    for (l, lun) in target.luns.iter().enumerate() {
        luns.insert(
            u64::from(lun.id),
            open_lun(&format!("{key}.lun[{l}]"), &target.iqn, lun)?,
        );
    }
    Ok(luns)
}

/// Opens one logical unit (creating its file when missing).
pub(crate) fn open_lun(key: &str, iqn: &str, lun: &Lun) -> Result<Arc<LogicalUnit>, ServerError> {
    let err = |message: String| ServerError::Lun {
        key: key.to_string(),
        path: lun.file.clone(),
        message,
    };
    let size = lun
        .size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(err)?;
    let create = !lun.file.exists();
    if create && size.is_none() {
        return Err(err(
            "the file does not exist and no size is given to create it".into(),
        ));
    }
    let dev = FileDevice::open(&lun.file, size, lun.block_size, create)
        .map_err(|e| err(e.to_string()))?;
    info!(target = %iqn, lun = lun.id, file = %lun.file.display(), created = create, "logical unit ready");
    Ok(Arc::new(LogicalUnit::new(
        Arc::new(dev),
        identity(iqn, lun),
    )))
}

/// FNV-1a, used to derive identifiers that stay the same across restarts and
/// releases (std's hashers promise neither).
fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn identity(iqn: &str, lun: &crate::config::Lun) -> LuIdentity {
    let id = lun.id.to_be_bytes();
    let name = iqn.to_ascii_lowercase();
    let parts: [&[u8]; 2] = [name.as_bytes(), &id];
    let a = fnv1a(1, &parts);
    let b = fnv1a(2, &parts);
    // NAA 6 (IEEE Registered Extended) layout with a locally derived body.
    let mut naa = [0u8; 16];
    naa[..8].copy_from_slice(&a.to_be_bytes());
    naa[8..].copy_from_slice(&b.to_be_bytes());
    naa[0] = 0x60 | (naa[0] & 0x0f);
    LuIdentity {
        vendor: "IRONSAN".into(),
        product: "ironsan LUN".into(),
        revision: "0001".into(),
        serial: lun.serial.clone().unwrap_or_else(|| format!("{a:016x}")),
        naa,
        target_name: iqn.to_string(),
        write_cache: lun.write_cache,
        read_only: lun.read_only,
    }
}
