//! Reservations: SPC-4 persistent reservations (PERSISTENT RESERVE IN/OUT,
//! 5.12 / 6.15 / 6.16), SPC-2 RESERVE / RELEASE with the SPC-3 compatible
//! reservation handling exceptions, and the RESERVATION CONFLICT checks of
//! every other command.
//!
//! Registrations are keyed by I_T nexus identity: the initiator port name
//! (iSCSI TransportID `InitiatorName,i,0x<ISID>`) plus the relative target
//! port; an ALL_TG_PT registration covers every target port.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::cdb::{be, Command};
use crate::lu::{lock, CmdResult, LogicalUnit, Nexus, ScsiRequest};
use crate::pr_store::{self, PrStore};
use crate::sense::{Asc, Sense, SenseKey};

/// Persistent reservation type (SPC-4 table 171).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PrType {
    WriteExclusive = 1,
    ExclusiveAccess = 3,
    WriteExclusiveRegistrantsOnly = 5,
    ExclusiveAccessRegistrantsOnly = 6,
    WriteExclusiveAllRegistrants = 7,
    ExclusiveAccessAllRegistrants = 8,
}

impl PrType {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => PrType::WriteExclusive,
            3 => PrType::ExclusiveAccess,
            5 => PrType::WriteExclusiveRegistrantsOnly,
            6 => PrType::ExclusiveAccessRegistrantsOnly,
            7 => PrType::WriteExclusiveAllRegistrants,
            8 => PrType::ExclusiveAccessAllRegistrants,
            _ => return None,
        })
    }

    pub(crate) fn all_registrants(self) -> bool {
        matches!(
            self,
            PrType::WriteExclusiveAllRegistrants | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// Registrants-only or all-registrants: every registrant has access.
    fn registrants_have_access(self) -> bool {
        !matches!(self, PrType::WriteExclusive | PrType::ExclusiveAccess)
    }

    /// Exclusive access types also block reads by non-holders.
    fn exclusive_access(self) -> bool {
        matches!(
            self,
            PrType::ExclusiveAccess
                | PrType::ExclusiveAccessRegistrantsOnly
                | PrType::ExclusiveAccessAllRegistrants
        )
    }
}

/// One registered I_T nexus (or initiator port, with ALL_TG_PT).
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Registration {
    pub key: u64,
    /// Initiator port name (TransportID).
    pub port: String,
    pub rel_port: u16,
    pub all_tg_pt: bool,
}

impl Registration {
    pub(crate) fn matches(&self, port: &str, rel_port: u16) -> bool {
        self.port.eq_ignore_ascii_case(port) && (self.all_tg_pt || self.rel_port == rel_port)
    }

    fn same_nexus(&self, other: &Registration) -> bool {
        self.port.eq_ignore_ascii_case(&other.port)
            && self.rel_port == other.rel_port
            && self.all_tg_pt == other.all_tg_pt
    }
}

/// The persistent reservation: holder registration (index into
/// `PrState::regs`; ignored for all-registrants types) and type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Reservation {
    pub holder: usize,
    pub pr_type: PrType,
}

/// Persistent reservation state of a logical unit (what APTPL persists).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct PrState {
    pub generation: u32,
    pub regs: Vec<Registration>,
    pub res: Option<Reservation>,
    pub aptpl: bool,
}

/// Upper bound on registrations (INSUFFICIENT REGISTRATION RESOURCES).
const MAX_REGISTRATIONS: usize = 1024;

impl PrState {
    fn reg_of(&self, port: &str, rel_port: u16) -> Option<usize> {
        self.regs.iter().position(|r| r.matches(port, rel_port))
    }

    fn is_holder(&self, idx: Option<usize>) -> bool {
        match (&self.res, idx) {
            (Some(r), Some(i)) => r.pr_type.all_registrants() || r.holder == i,
            _ => false,
        }
    }

    /// Remove registration `i`, keeping the holder index valid. Returns
    /// true if the reservation was released because its holder went away.
    fn remove_reg(&mut self, i: usize) -> bool {
        self.regs.remove(i);
        let mut released = false;
        if let Some(r) = &mut self.res {
            if r.pr_type.all_registrants() {
                released = self.regs.is_empty();
            } else if r.holder == i {
                released = true;
            } else if r.holder > i {
                r.holder -= 1;
            }
        }
        if released {
            self.res = None;
        }
        released
    }
}

/// Reservation state of a logical unit.
#[derive(Default)]
pub(crate) struct PrUnit {
    state: Mutex<Inner>,
    /// Fast path: false when neither a persistent nor an SPC-2 reservation
    /// exists, so READ/WRITE skip the mutex.
    reserved: AtomicBool,
    store: Mutex<Option<Arc<dyn PrStore>>>,
}

#[derive(Default)]
struct Inner {
    pr: PrState,
    scsi2: Option<Nexus>,
}

impl Inner {
    fn any_reservation(&self) -> bool {
        self.pr.res.is_some() || self.scsi2.is_some()
    }
}

/// How a command is affected by a reservation it does not hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Access {
    /// Never conflicts (or handles reservations itself).
    Always,
    /// Allowed under write exclusive types.
    Read,
    Write,
}

fn access(cmd: &Command) -> Access {
    match cmd {
        Command::TestUnitReady
        | Command::RequestSense { .. }
        | Command::Inquiry { .. }
        | Command::ReportLuns { .. }
        | Command::ReportSupportedOpcodes { .. }
        | Command::ReportTargetPortGroups { .. }
        | Command::ReadCapacity10 { .. }
        | Command::ReadCapacity16 { .. }
        | Command::PersistentReserveIn { .. }
        | Command::PersistentReserveOut { .. }
        | Command::Reserve
        | Command::Release
        | Command::PreventAllowMediumRemoval { prevent: false } => Access::Always,
        Command::StartStopUnit(s) if s.start && s.power_condition == 0 && !s.loej => Access::Always,
        Command::Read(_)
        | Command::Verify { .. }
        | Command::PreFetch { .. }
        | Command::ModeSense(_)
        | Command::ReadDefectData { .. }
        | Command::GetLbaStatus { .. } => Access::Read,
        _ => Access::Write,
    }
}

/// Commands a non-holder may send while an SPC-2 reservation is held.
fn scsi2_allowed(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Inquiry { .. }
            | Command::RequestSense { .. }
            | Command::ReportLuns { .. }
            | Command::ReportSupportedOpcodes { .. }
            | Command::ReportTargetPortGroups { .. }
            | Command::Release
    )
}

/// Unit attentions to establish once the state lock is dropped.
type PendingUas = Vec<(Asc, Registration)>;

impl LogicalUnit {
    /// Attach persistent reservation storage (APTPL) and load any state
    /// saved in it. Fails if the saved state is unreadable or corrupt; the
    /// state is then never used.
    pub fn with_pr_store(self, store: Arc<dyn PrStore>) -> Result<Self, pr_store::PrStoreError> {
        let loaded = store.load()?;
        if let Some(bytes) = loaded.filter(|b| !b.is_empty()) {
            let st = pr_store::decode(&bytes)?;
            let mut inner = lock(&self.pr.state);
            inner.pr = st;
            self.pr
                .reserved
                .store(inner.any_reservation(), Ordering::Release);
        }
        *lock(&self.pr.store) = Some(store);
        Ok(self)
    }

    /// The whole persistent reservation state (registrations and
    /// reservation, APTPL or not), encoded and checksummed: a restarting
    /// daemon hands it to its successor so reservations survive restarts.
    pub fn pr_state(&self) -> Vec<u8> {
        pr_store::encode(&lock(&self.pr.state).pr)
    }

    /// Installs state saved by [`pr_state`](Self::pr_state); a corrupt
    /// encoding is refused and changes nothing.
    pub fn restore_pr_state(&self, bytes: &[u8]) -> Result<(), pr_store::PrStoreError> {
        let st = pr_store::decode(bytes)?;
        let mut inner = lock(&self.pr.state);
        inner.pr = st;
        self.pr
            .reserved
            .store(inner.any_reservation(), Ordering::Release);
        Ok(())
    }

    /// RESERVATION CONFLICT (the [`Sense::conflict`] marker) if a
    /// reservation held by another I_T nexus forbids `cmd`.
    pub(crate) fn check_conflict(&self, cmd: &Command, req: &ScsiRequest<'_>) -> Result<(), Sense> {
        if !self.pr.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        let inner = lock(&self.pr.state);
        if let Some(holder) = inner.scsi2 {
            if holder != req.nexus && !scsi2_allowed(cmd) {
                return Err(Sense::conflict());
            }
            return Ok(());
        }
        let Some(res) = &inner.pr.res else {
            return Ok(());
        };
        let idx = inner.pr.reg_of(req.initiator_port, req.nexus.relative_port);
        if inner.pr.is_holder(idx) {
            return Ok(());
        }
        let registered_access = idx.is_some() && res.pr_type.registrants_have_access();
        let ok = match access(cmd) {
            Access::Always => true,
            Access::Read => !res.pr_type.exclusive_access() || registered_access,
            Access::Write => registered_access,
        };
        if ok {
            Ok(())
        } else {
            Err(Sense::conflict())
        }
    }

    /// Release the SPC-2 reservation (any holder when `nexus` is None).
    pub(crate) fn release_scsi2(&self, nexus: Option<Nexus>) {
        let mut inner = lock(&self.pr.state);
        if inner.scsi2.is_some() && (nexus.is_none() || inner.scsi2 == nexus) {
            inner.scsi2 = None;
            self.pr
                .reserved
                .store(inner.any_reservation(), Ordering::Release);
        }
    }

    /// RESERVE(6/10) and RELEASE(6/10) with the SPC-3 exceptions for logical
    /// units with persistent reservation registrations.
    pub(crate) fn reserve_release(&self, req: &ScsiRequest<'_>, reserve: bool) -> CmdResult {
        let mut inner = lock(&self.pr.state);
        if !inner.pr.regs.is_empty() {
            let idx = inner.pr.reg_of(req.initiator_port, req.nexus.relative_port);
            let exempt = inner.pr.is_holder(idx)
                || (idx.is_some()
                    && inner
                        .pr
                        .res
                        .as_ref()
                        .is_some_and(|r| r.pr_type.registrants_have_access()));
            return if exempt {
                Ok(0)
            } else {
                Err(Sense::conflict())
            };
        }
        match (reserve, inner.scsi2) {
            (true, Some(h)) if h != req.nexus => return Err(Sense::conflict()),
            (true, _) => inner.scsi2 = Some(req.nexus),
            (false, Some(h)) if h == req.nexus => inner.scsi2 = None,
            (false, _) => {}
        }
        self.pr
            .reserved
            .store(inner.any_reservation(), Ordering::Release);
        Ok(0)
    }

    /// A snapshot of the persistent reservation state (PRIN).
    pub(crate) fn pr_snapshot(&self) -> PrState {
        lock(&self.pr.state).pr.clone()
    }

    /// PERSISTENT RESERVE OUT (SPC-4 6.16).
    pub(crate) fn persistent_reserve_out(
        &self,
        req: &ScsiRequest<'_>,
        sa: u8,
        scope: u8,
        pr_type: u8,
        param_len: u32,
    ) -> CmdResult {
        const REGISTER_AND_MOVE: u8 = 7;
        let plen = param_len as usize;
        let len_ok = if sa == REGISTER_AND_MOVE {
            plen >= 24
        } else {
            plen == 24
        };
        if !len_ok || req.data_out.len() < plen {
            return Err(Sense::parameter_list_length_error());
        }
        let p = &req.data_out[..plen];
        let rk = be(&p[0..8]);
        let sark = be(&p[8..16]);
        let me = Registration {
            key: sark,
            port: req.initiator_port.to_string(),
            rel_port: req.nexus.relative_port,
            all_tg_pt: sa != REGISTER_AND_MOVE && p[20] & 0x04 != 0,
        };
        let needs_type = matches!(sa, 1 | 2 | 4 | 5);
        if needs_type && scope != 0 {
            return Err(Sense::invalid_field_in_cdb(2, Some(7)));
        }
        let ty = PrType::from_u8(pr_type);
        if matches!(sa, 1 | 2) && ty.is_none() {
            return Err(Sense::invalid_field_in_cdb(2, Some(3)));
        }
        let mut inner = lock(&self.pr.state);
        if inner.scsi2.is_some_and(|h| h != req.nexus) {
            return Err(Sense::conflict());
        }
        let mut st = inner.pr.clone();
        let mut uas = PendingUas::new();
        let idx = st.reg_of(req.initiator_port, req.nexus.relative_port);
        match sa {
            0 | 6 => {
                if p[20] & 0x08 != 0 {
                    // SPEC_I_PT is not supported (SIP_C=0).
                    return Err(Sense::invalid_field_in_param_list(20, Some(3)));
                }
                register(&mut st, idx, &me, rk, sark, sa == 6, &mut uas)?;
                st.aptpl = p[20] & 0x01 != 0;
            }
            1 => reserve(&mut st, idx, rk, ty)?,
            2 => release(&mut st, idx, rk, ty, &mut uas)?,
            3 => {
                let i = check_key(&st, idx, rk)?;
                for (j, r) in st.regs.iter().enumerate() {
                    if j != i {
                        uas.push((Asc::RESERVATIONS_PREEMPTED, r.clone()));
                    }
                }
                st.regs.clear();
                st.res = None;
                st.generation = st.generation.wrapping_add(1);
            }
            4 | 5 => preempt(&mut st, idx, rk, sark, ty, &mut uas)?,
            REGISTER_AND_MOVE => register_and_move(&mut st, idx, rk, sark, p)?,
            _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        }
        if st != inner.pr {
            self.persist(&inner.pr, &st)?;
            inner.pr = st;
        }
        self.pr
            .reserved
            .store(inner.any_reservation(), Ordering::Release);
        drop(inner);
        for (asc, reg) in uas {
            self.establish_ua_where(asc, req.nexus, |port, rel| reg.matches(port, rel));
        }
        Ok(u64::from(param_len))
    }

    /// Save `new` if APTPL is (or was) in effect: the state when set, an
    /// empty record when APTPL is cleared.
    fn persist(&self, old: &PrState, new: &PrState) -> Result<(), Sense> {
        if !old.aptpl && !new.aptpl {
            return Ok(());
        }
        let Some(store) = lock(&self.pr.store).clone() else {
            return Ok(());
        };
        let bytes = if new.aptpl {
            pr_store::encode(new)
        } else {
            Vec::new()
        };
        store.save(&bytes).map_err(|e| {
            tracing::error!(error = %e, "saving persistent reservations failed");
            Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::INSUFFICIENT_REGISTRATION_RESOURCES,
            )
        })
    }
}

/// The registration index of the nexus if registered with key `rk`,
/// RESERVATION CONFLICT otherwise.
fn check_key(st: &PrState, idx: Option<usize>, rk: u64) -> Result<usize, Sense> {
    match idx {
        Some(i) if st.regs[i].key == rk => Ok(i),
        _ => Err(Sense::conflict()),
    }
}

fn register(
    st: &mut PrState,
    idx: Option<usize>,
    me: &Registration,
    rk: u64,
    sark: u64,
    ignore_key: bool,
    uas: &mut PendingUas,
) -> Result<(), Sense> {
    match idx {
        None => {
            if !ignore_key && rk != 0 {
                return Err(Sense::conflict());
            }
            if sark == 0 {
                return Ok(());
            }
            if st.regs.len() >= MAX_REGISTRATIONS {
                return Err(Sense::new(
                    SenseKey::ILLEGAL_REQUEST,
                    Asc::INSUFFICIENT_REGISTRATION_RESOURCES,
                ));
            }
            st.regs.push(me.clone());
        }
        Some(i) => {
            if !ignore_key && st.regs[i].key != rk {
                return Err(Sense::conflict());
            }
            if sark == 0 {
                unregister(st, i, uas);
            } else {
                st.regs[i].key = sark;
            }
        }
    }
    st.generation = st.generation.wrapping_add(1);
    Ok(())
}

/// Remove registration `i`; releasing a registrants-only reservation held
/// by it tells the other registrants (RESERVATIONS RELEASED).
fn unregister(st: &mut PrState, i: usize, uas: &mut PendingUas) {
    let ro = st.res.as_ref().is_some_and(|r| {
        r.holder == i
            && matches!(
                r.pr_type,
                PrType::WriteExclusiveRegistrantsOnly | PrType::ExclusiveAccessRegistrantsOnly
            )
    });
    if st.remove_reg(i) && ro {
        for r in &st.regs {
            uas.push((Asc::RESERVATIONS_RELEASED, r.clone()));
        }
    }
}

fn reserve(st: &mut PrState, idx: Option<usize>, rk: u64, ty: Option<PrType>) -> Result<(), Sense> {
    let i = check_key(st, idx, rk)?;
    let Some(ty) = ty else {
        return Err(Sense::invalid_field_in_cdb(2, Some(3)));
    };
    match &st.res {
        None => {
            st.res = Some(Reservation {
                holder: i,
                pr_type: ty,
            });
            Ok(())
        }
        Some(r) if st.is_holder(Some(i)) && r.pr_type == ty => Ok(()),
        Some(_) => Err(Sense::conflict()),
    }
}

fn release(
    st: &mut PrState,
    idx: Option<usize>,
    rk: u64,
    ty: Option<PrType>,
    uas: &mut PendingUas,
) -> Result<(), Sense> {
    let i = check_key(st, idx, rk)?;
    let Some(res) = st.res.clone() else {
        return Ok(());
    };
    if !st.is_holder(Some(i)) {
        return Ok(());
    }
    if Some(res.pr_type) != ty {
        return Err(Sense::illegal(
            Asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
        ));
    }
    st.res = None;
    if res.pr_type.registrants_have_access() {
        for (j, r) in st.regs.iter().enumerate() {
            if j != i {
                uas.push((Asc::RESERVATIONS_RELEASED, r.clone()));
            }
        }
    }
    Ok(())
}

fn preempt(
    st: &mut PrState,
    idx: Option<usize>,
    rk: u64,
    sark: u64,
    ty: Option<PrType>,
    uas: &mut PendingUas,
) -> Result<(), Sense> {
    let i = check_key(st, idx, rk)?;
    let me = st.regs[i].clone();
    let res = st.res.clone();
    let preempts_reservation = match &res {
        Some(r) if r.pr_type.all_registrants() => sark == 0,
        Some(r) => st.regs.get(r.holder).is_some_and(|h| h.key == sark),
        None => false,
    };
    if !preempts_reservation {
        // Remove the registrations with SARK; the reservation is unchanged.
        if sark == 0 {
            return Err(Sense::invalid_field_in_param_list(8, None));
        }
        if !st.regs.iter().any(|r| r.key == sark) {
            return Err(Sense::conflict());
        }
        remove_matching(
            st,
            &me,
            |r| r.key == sark,
            Asc::REGISTRATIONS_PREEMPTED,
            uas,
        );
        st.generation = st.generation.wrapping_add(1);
        return Ok(());
    }
    let Some(ty) = ty else {
        return Err(Sense::invalid_field_in_cdb(2, Some(3)));
    };
    let all = sark == 0;
    remove_matching(
        st,
        &me,
        |r| all || r.key == sark,
        Asc::REGISTRATIONS_PREEMPTED,
        uas,
    );
    let holder = st
        .regs
        .iter()
        .position(|r| r.same_nexus(&me))
        .unwrap_or_default();
    st.res = Some(Reservation {
        holder,
        pr_type: ty,
    });
    if res.is_some_and(|r| r.pr_type != ty) {
        for r in &st.regs {
            if !r.same_nexus(&me) {
                uas.push((Asc::RESERVATIONS_RELEASED, r.clone()));
            }
        }
    }
    st.generation = st.generation.wrapping_add(1);
    Ok(())
}

/// Remove every registration (other than `me`) matching `pred`, queueing
/// `asc` for its nexuses. The reservation is dropped with its holder.
fn remove_matching(
    st: &mut PrState,
    me: &Registration,
    pred: impl Fn(&Registration) -> bool,
    asc: Asc,
    uas: &mut PendingUas,
) {
    let mut j = 0;
    while j < st.regs.len() {
        if pred(&st.regs[j]) && !st.regs[j].same_nexus(me) {
            uas.push((asc, st.regs[j].clone()));
            st.remove_reg(j);
        } else {
            j += 1;
        }
    }
}

fn register_and_move(
    st: &mut PrState,
    idx: Option<usize>,
    rk: u64,
    sark: u64,
    p: &[u8],
) -> Result<(), Sense> {
    let i = check_key(st, idx, rk)?;
    let Some(res) = st.res.clone() else {
        return Err(Sense::conflict());
    };
    if res.pr_type.all_registrants() || res.holder != i {
        return Err(Sense::conflict());
    }
    if sark == 0 {
        return Err(Sense::invalid_field_in_param_list(8, None));
    }
    let unreg = p[17] & 0x02 != 0;
    let aptpl = p[17] & 0x01 != 0;
    let rel_port = be(&p[18..20]) as u16;
    let tid_len = be(&p[20..24]) as usize;
    let tid = p
        .get(24..24usize.saturating_add(tid_len))
        .ok_or_else(Sense::parameter_list_length_error)?;
    let port = crate::pr_in::parse_transport_id(tid)
        .ok_or_else(|| Sense::invalid_field_in_param_list(24, None))?;
    let dest = Registration {
        key: sark,
        port,
        rel_port,
        all_tg_pt: false,
    };
    if st.regs[i].matches(&dest.port, dest.rel_port) {
        return Err(Sense::invalid_field_in_param_list(18, None));
    }
    let d = match st.reg_of(&dest.port, dest.rel_port) {
        Some(d) => {
            st.regs[d].key = sark;
            d
        }
        None => {
            if st.regs.len() >= MAX_REGISTRATIONS {
                return Err(Sense::illegal(Asc::INSUFFICIENT_REGISTRATION_RESOURCES));
            }
            st.regs.push(dest);
            st.regs.len() - 1
        }
    };
    st.res = Some(Reservation {
        holder: d,
        pr_type: res.pr_type,
    });
    if unreg {
        st.remove_reg(i);
    }
    st.aptpl = aptpl;
    st.generation = st.generation.wrapping_add(1);
    Ok(())
}
