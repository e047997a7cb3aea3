//! Targets as the runtime serves them, and opening their logical units.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, Weak};

use scsi::{CopyPeers, FileDevice, FilePrStore, LogicalUnit, LuIdentity};
use tracing::{info, warn};

use crate::config::{parse_size, Acl, Lun, Target};
use crate::server::ServerError;

/// A target as the runtime serves it: its name, and a view (settings, LUNs,
/// ACLs) that live reconfiguration swaps as a whole.
pub struct TargetNode {
    /// Target name.
    pub iqn: String,
    view: RwLock<Arc<TargetView>>,
    /// Resolves EXTENDED COPY designators to this target's LUNs.
    peers: Arc<Peers>,
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

/// EXTENDED COPY peers: the LUNs of one target, found by NAA designator.
struct Peers(Weak<TargetNode>);

impl CopyPeers for Peers {
    fn lookup(&self, naa: &[u8]) -> Option<Arc<LogicalUnit>> {
        let node = self.0.upgrade()?;
        let view = node.view();
        view.luns
            .values()
            .find(|lu| lu.identity().naa[..] == *naa)
            .cloned()
    }
}

impl TargetNode {
    pub(crate) fn new(spec: Target, luns: BTreeMap<u64, Arc<LogicalUnit>>) -> Arc<Self> {
        let node = Arc::new_cyclic(|me| Self {
            iqn: spec.iqn.clone(),
            view: RwLock::new(Arc::new(TargetView { spec, luns })),
            peers: Arc::new(Peers(me.clone())),
            draining: AtomicBool::new(false),
            removed: Mutex::new(HashMap::new()),
        });
        node.introduce_peers();
        node
    }

    /// Lets every LUN of the view find its peers for EXTENDED COPY.
    fn introduce_peers(&self) {
        let peers: Arc<dyn CopyPeers> = self.peers.clone();
        for lu in self.view().luns.values() {
            lu.set_copy_peers(Arc::downgrade(&peers));
        }
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
        drop(cur);
        drop(removed);
        self.introduce_peers();
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
    backing: &Backing<'_>,
) -> Result<BTreeMap<u64, Arc<LogicalUnit>>, ServerError> {
    let mut luns = BTreeMap::new();
    for (l, lun) in target.luns.iter().enumerate() {
        let lu = open_lun(&format!("{key}.lun[{l}]"), &target.iqn, lun, backing)?;
        luns.insert(u64::from(lun.id), lu);
    }
    Ok(luns)
}

/// The file a stopping daemon leaves a LUN's reservations in for the next.
fn restart_file(pr_file: &Path) -> std::path::PathBuf {
    pr_file.with_extension("pr.restart")
}

/// Hands every reservation (APTPL or not) of `lu` to the next process:
/// written atomically beside its APTPL file.
pub(crate) fn save_for_restart(data_dir: &Path, lu: &LogicalUnit) -> std::io::Result<()> {
    use std::io::Write;
    let path = restart_file(
        &data_dir
            .join("pr")
            .join(format!("{}.pr", lu.identity().serial)),
    );
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&lu.pr_state())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// Where logical units find their storage.
pub(crate) struct Backing<'a> {
    /// The daemon's state directory (persistent reservations live here).
    pub data_dir: &'a Path,
    /// The volume pool.
    pub pool: &'a volume::Pool,
}

/// Opens one logical unit (creating its file or volume when missing and a
/// size is given), with its persistent reservation state under `data_dir/pr`.
pub(crate) fn open_lun(
    key: &str,
    iqn: &str,
    lun: &Lun,
    backing: &Backing<'_>,
) -> Result<Arc<LogicalUnit>, ServerError> {
    let what = match (&lun.file, &lun.volume) {
        (Some(f), _) => f.display().to_string(),
        (None, Some(v)) => format!("volume {v}"),
        (None, None) => "no backing".to_string(),
    };
    let err = |message: String| ServerError::Lun {
        key: key.to_string(),
        backing: what.clone(),
        message,
    };
    let size = lun
        .size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(err)?;
    let dev: Arc<dyn scsi::BlockDevice> = match (&lun.file, &lun.volume) {
        (Some(file), _) => {
            let create = !file.exists();
            if create && size.is_none() {
                return Err(err(
                    "the file does not exist and no size is given to create it".into(),
                ));
            }
            let dev = FileDevice::open(file, size, lun.block_size, create)
                .map_err(|e| err(e.to_string()))?;
            Arc::new(dev)
        }
        (None, Some(name)) => {
            let exists = backing.pool.info(name).is_some();
            if !exists {
                let Some(size) = size else {
                    return Err(err(
                        "the volume does not exist and no size is given to create it".into(),
                    ));
                };
                backing
                    .pool
                    .create_volume(name, size, lun.block_size)
                    .map_err(|e| err(e.to_string()))?;
            }
            backing.pool.device(name).map_err(|e| err(e.to_string()))?
        }
        (None, None) => return Err(err("needs a file or a volume".into())),
    };
    info!(target = %iqn, lun = lun.id, backing = %what, "logical unit ready");
    let ident = identity(iqn, lun);
    let pr_dir = backing.data_dir.join("pr");
    std::fs::create_dir_all(&pr_dir)
        .map_err(|e| err(format!("creating {}: {e}", pr_dir.display())))?;
    let pr_file = pr_dir.join(format!("{}.pr", ident.serial));
    let lu = LogicalUnit::new(dev, ident)
        .with_pr_store(Arc::new(FilePrStore::new(pr_file.clone())))
        .map_err(|e| {
            err(format!(
                "persistent reservations in {}: {e}",
                pr_file.display()
            ))
        })?;
    // State a stopping daemon handed over (all reservations, APTPL or not)
    // wins over the APTPL file, once: a crash leaves no such file.
    let handed = restart_file(&pr_file);
    if let Ok(bytes) = std::fs::read(&handed) {
        match lu.restore_pr_state(&bytes) {
            Ok(()) => {
                info!(target = %iqn, lun = lun.id, "reservations restored from the previous process")
            }
            Err(e) => {
                warn!(file = %handed.display(), error = %e, "ignoring damaged reservation hand-over")
            }
        }
        let _ = std::fs::remove_file(&handed);
    }
    Ok(Arc::new(lu))
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
