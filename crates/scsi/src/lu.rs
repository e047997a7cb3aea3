//! The logical unit: command dispatch, unit attentions, PREVENT ALLOW
//! MEDIUM REMOVAL state and task-management resets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cdb::{op, Command};
use crate::device::{BlockDevice, DeviceError};
use crate::inquiry::{self, InquiryCtx};
use crate::mode::{self, MediumInfo, ModeState};
use crate::sense::{Asc, Sense, SenseData, SenseKey};
use crate::spc;

/// SCSI status byte (SAM-5) as an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ScsiStatus(pub u8);

impl ScsiStatus {
    pub const GOOD: ScsiStatus = ScsiStatus(0x00);
    pub const CHECK_CONDITION: ScsiStatus = ScsiStatus(0x02);
    pub const CONDITION_MET: ScsiStatus = ScsiStatus(0x04);
    pub const BUSY: ScsiStatus = ScsiStatus(0x08);
    pub const RESERVATION_CONFLICT: ScsiStatus = ScsiStatus(0x18);
    pub const TASK_SET_FULL: ScsiStatus = ScsiStatus(0x28);
    pub const ACA_ACTIVE: ScsiStatus = ScsiStatus(0x30);
    pub const TASK_ABORTED: ScsiStatus = ScsiStatus(0x40);
}

/// Identifies the I_T nexus a command arrived on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Nexus {
    pub id: u64,
    pub relative_port: u16,
}

/// One SCSI command as handed over by the transport.
pub struct ScsiRequest<'a> {
    /// 6..=16 bytes typically (can be longer: extended CDB).
    pub cdb: &'a [u8],
    /// All data the initiator sent (Data-Out); may be shorter or longer than
    /// the CDB asks for.
    pub data_out: &'a [u8],
    /// The initiator's Expected Data Transfer Length for this command.
    pub expected_len: u32,
    pub nexus: Nexus,
    /// The initiator port name (iSCSI: `InitiatorName,i,0x<ISID hex>`), the
    /// TransportID persistent reservations are keyed by (with
    /// `nexus.relative_port`).
    pub initiator_port: &'a str,
}

/// Result of one command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ScsiOutcome {
    pub status: ScsiStatus,
    /// Encoded sense bytes (fixed or descriptor format per D_SENSE), empty
    /// when none.
    pub sense: SenseData,
    /// Bytes the command, per its CDB, transfers (data-in or data-out). The
    /// transport compares it with expected_len for iSCSI residuals. 0 on
    /// error paths where no data moves.
    pub transfer_len: u64,
}

impl ScsiOutcome {
    pub fn good(transfer_len: u64) -> Self {
        ScsiOutcome {
            status: ScsiStatus::GOOD,
            sense: SenseData::empty(),
            transfer_len,
        }
    }

    pub fn check_condition(sense: &Sense, descriptor: bool) -> Self {
        ScsiOutcome {
            status: ScsiStatus::CHECK_CONDITION,
            sense: sense.encode(descriptor),
            transfer_len: 0,
        }
    }
}

/// Identity and initial configuration of a logical unit.
#[derive(Clone, Debug)]
pub struct LuIdentity {
    /// T10 vendor identification, 8 chars (padded): "IRONSAN".
    pub vendor: String,
    /// Product identification, 16 chars.
    pub product: String,
    /// Product revision level, 4 chars.
    pub revision: String,
    /// Unit serial number (VPD 80h).
    pub serial: String,
    /// NAA IEEE Registered Extended (type 6) designator, stable across restarts.
    pub naa: [u8; 16],
    /// Target IQN, for the SCSI name string designator in VPD 83h.
    pub target_name: String,
    /// Initial WCE bit of the caching mode page.
    pub write_cache: bool,
    pub read_only: bool,
}

/// Task management reset flavours.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ResetKind {
    /// LOGICAL UNIT RESET: UA 29h/03h BUS DEVICE RESET FUNCTION OCCURRED.
    LogicalUnit,
    /// TARGET WARM RESET: UA 29h/02h SCSI BUS RESET OCCURRED.
    TargetWarm,
    /// TARGET COLD RESET: UA 29h/01h POWER ON OCCURRED.
    TargetCold,
}

/// Pending unit attentions kept per I_T nexus (oldest first).
const MAX_PENDING_UA: usize = 4;

#[derive(Default, Debug)]
pub(crate) struct NexusState {
    prevent: bool,
    ua: Vec<Asc>,
    /// Initiator port name of the nexus, recorded on its first command.
    pub(crate) port: Box<str>,
}

impl NexusState {
    fn push_ua(&mut self, asc: Asc) {
        if !self.ua.contains(&asc) && self.ua.len() < MAX_PENDING_UA {
            self.ua.push(asc);
        }
    }
}

const SHARDS: usize = 16;

/// A SCSI logical unit backed by a [`BlockDevice`]. `Send + Sync`; share it
/// with an `Arc`. The READ/WRITE path takes no LU-wide lock: mode
/// parameters are atomics and per-nexus state is sharded by nexus.
pub struct LogicalUnit {
    pub(crate) dev: Arc<dyn BlockDevice>,
    pub(crate) ident: LuIdentity,
    pub(crate) mode: ModeState,
    pub(crate) removable: bool,
    pub(crate) medium_present: AtomicBool,
    nexuses: [Mutex<HashMap<Nexus, NexusState>>; SHARDS],
    /// Persistent and SPC-2 reservations.
    pub(crate) pr: crate::pr::PrUnit,
    /// Writers take a stripe shared; COMPARE AND WRITE and friends take all
    /// stripes exclusively.
    pub(crate) io_locks: crate::caw::IoLocks,
    /// EXTENDED COPY results and the peer resolver.
    pub(crate) xcopy: crate::xcopy::CopyState,
    /// ALUA target port groups.
    pub(crate) alua: crate::alua::AluaTable,
    /// SANITIZE operation state (background OVERWRITE).
    pub(crate) sanitize: crate::sanitize::SanitizeState,
}

pub(crate) type CmdResult = Result<u64, Sense>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogicalUnit {
    pub fn new(dev: Arc<dyn BlockDevice>, ident: LuIdentity) -> Self {
        LogicalUnit {
            dev,
            mode: ModeState::new(ident.write_cache),
            ident,
            removable: false,
            medium_present: AtomicBool::new(true),
            nexuses: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            pr: crate::pr::PrUnit::default(),
            io_locks: crate::caw::IoLocks::default(),
            xcopy: crate::xcopy::CopyState::default(),
            alua: crate::alua::AluaTable::default(),
            sanitize: crate::sanitize::SanitizeState::default(),
        }
    }

    /// Report the medium as removable (INQUIRY RMB=1): START STOP UNIT with
    /// LOEJ then ejects / loads it, and medium access commands fail with
    /// NOT READY / MEDIUM NOT PRESENT while it is ejected. Default: fixed.
    pub fn with_removable(mut self, removable: bool) -> Self {
        self.removable = removable;
        self
    }

    pub fn identity(&self) -> &LuIdentity {
        &self.ident
    }

    pub fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.dev
    }

    /// Current WCE bit of the caching mode page.
    pub fn write_cache_enabled(&self) -> bool {
        self.mode.wce()
    }

    /// Flush the device (used at shutdown).
    pub fn flush(&self) -> Result<(), DeviceError> {
        self.dev.flush()
    }

    fn shard(&self, nexus: &Nexus) -> &Mutex<HashMap<Nexus, NexusState>> {
        let mix =
            (nexus.id ^ (u64::from(nexus.relative_port) << 48)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.nexuses[(mix >> 60) as usize % SHARDS]
    }

    /// Register the nexus; unless `exempt`, take its oldest unit attention.
    fn take_ua(&self, nexus: Nexus, port: &str, exempt: bool) -> Option<Asc> {
        let mut map = lock(self.shard(&nexus));
        let st = map.entry(nexus).or_default();
        if st.port.is_empty() && !port.is_empty() {
            st.port = port.into();
        }
        if exempt || st.ua.is_empty() {
            None
        } else {
            Some(st.ua.remove(0))
        }
    }

    /// Take the oldest unit attention of a nexus (REQUEST SENSE).
    pub(crate) fn pop_ua(&self, nexus: Nexus) -> Option<Asc> {
        let mut map = lock(self.shard(&nexus));
        map.get_mut(&nexus)
            .and_then(|st| (!st.ua.is_empty()).then(|| st.ua.remove(0)))
    }

    pub(crate) fn for_each_nexus(&self, mut f: impl FnMut(&Nexus, &mut NexusState)) {
        for shard in &self.nexuses {
            for (n, st) in lock(shard).iter_mut() {
                f(n, st);
            }
        }
    }

    /// Establish a unit attention for every known nexus matching `pred`
    /// (initiator port name, relative port) except `except`.
    pub(crate) fn establish_ua_where(
        &self,
        asc: Asc,
        except: Nexus,
        pred: impl Fn(&str, u16) -> bool,
    ) {
        self.for_each_nexus(|n, st| {
            if *n != except && pred(&st.port, n.relative_port) {
                st.push_ua(asc);
            }
        });
    }

    /// Establish a unit attention for every known nexus except `except`.
    pub(crate) fn establish_ua(&self, asc: Asc, except: Option<Nexus>) {
        self.for_each_nexus(|n, st| {
            if Some(*n) != except {
                st.push_ua(asc);
            }
        });
    }

    /// The target's LUN inventory changed: every nexus that has used this
    /// unit gets REPORTED LUNS DATA HAS CHANGED (3Fh/0Eh).
    pub fn report_luns_changed(&self) {
        self.establish_ua(Asc::REPORTED_LUNS_DATA_HAS_CHANGED, None);
    }

    pub(crate) fn set_prevent(&self, nexus: Nexus, prevent: bool) {
        lock(self.shard(&nexus)).entry(nexus).or_default().prevent = prevent;
    }

    /// Medium removal is prevented if any nexus holds a PREVENT.
    pub(crate) fn removal_prevented(&self) -> bool {
        let mut any = false;
        self.for_each_nexus(|_, st| any |= st.prevent);
        any
    }

    /// LOGICAL UNIT RESET / TARGET RESET: clear PREVENT state, release an
    /// SPC-2 reservation and establish a reset unit attention for every
    /// known nexus, the requesting one (`by`) included (SAM-5 6.3.3;
    /// libiscsi's MultipathIO.Reset expects it on every path). Pending unit
    /// attentions are superseded. A cold reset (power on) also restores the
    /// default mode parameters; LU and warm resets keep them, since
    /// initiators do not re-read the caching page after a reset and silently
    /// re-enabling a write cache the host turned off would risk data loss.
    /// Persistent reservations survive every reset, and so does a sanitize
    /// operation in progress (SBC-4 4.11.2); commands waiting for it are
    /// aborted (see [`LogicalUnit::abort_waiting`]).
    pub fn reset(&self, by: Option<Nexus>, kind: ResetKind) {
        self.abort_waiting(None);
        let asc = match kind {
            ResetKind::LogicalUnit => Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED,
            ResetKind::TargetWarm => Asc::SCSI_BUS_RESET_OCCURRED,
            ResetKind::TargetCold => Asc::POWER_ON_OCCURRED,
        };
        if kind == ResetKind::TargetCold {
            self.mode.reset();
        }
        self.for_each_nexus(|_, st| {
            st.prevent = false;
            st.ua.clear();
            st.ua.push(asc);
        });
        // Resets release SPC-2 reservations; persistent ones survive.
        self.release_scsi2(None);
        tracing::debug!(?kind, ?by, "logical unit reset");
    }

    /// The I_T nexus is gone (session closed / logged out): drop its state.
    /// A sanitize operation it started continues.
    pub fn nexus_lost(&self, nexus: Nexus) {
        self.abort_waiting(Some(nexus));
        lock(self.shard(&nexus)).remove(&nexus);
        self.release_scsi2(Some(nexus));
        self.xcopy.nexus_lost(nexus);
    }

    /// True if writes must fail with DATA PROTECT (read-only LU or SWP).
    pub(crate) fn write_protect_sense(&self) -> Option<Sense> {
        if self.ident.read_only {
            Some(Sense::new(SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED))
        } else if self.mode.swp() {
            Some(Sense::new(
                SenseKey::DATA_PROTECT,
                Asc::SOFTWARE_WRITE_PROTECTED,
            ))
        } else {
            None
        }
    }

    pub(crate) fn medium_present(&self) -> bool {
        !self.removable || self.medium_present.load(Ordering::Acquire)
    }

    /// Execute one command. `data_in` is cleared and filled with at most
    /// min(transfer_len, expected_len) bytes. Never panics on any input.
    pub fn execute(&self, req: &ScsiRequest<'_>, data_in: &mut Vec<u8>) -> ScsiOutcome {
        data_in.clear();
        let d_sense = self.mode.d_sense();
        let opcode = req.cdb.first().copied().unwrap_or(0xFF);
        let exempt = matches!(opcode, op::INQUIRY | op::REPORT_LUNS | op::REQUEST_SENSE);
        if let Some(asc) = self.take_ua(req.nexus, req.initiator_port, exempt) {
            return ScsiOutcome::check_condition(
                &Sense::new(SenseKey::UNIT_ATTENTION, asc),
                d_sense,
            );
        }
        let result = Command::parse(req.cdb).and_then(|cmd| {
            self.sanitize_gate(&cmd)?;
            self.alua_check(&cmd, req.nexus)?;
            self.check_conflict(&cmd, req)?;
            self.dispatch(&cmd, req, data_in)
        });
        match result {
            Err(sense) if sense.is_conflict() => {
                data_in.clear();
                ScsiOutcome {
                    status: ScsiStatus::RESERVATION_CONFLICT,
                    sense: SenseData::empty(),
                    transfer_len: 0,
                }
            }
            Err(sense) if sense.is_task_aborted() => {
                data_in.clear();
                ScsiOutcome {
                    status: ScsiStatus::TASK_ABORTED,
                    sense: SenseData::empty(),
                    transfer_len: 0,
                }
            }
            Ok(transfer_len) => {
                let cap = transfer_len.min(u64::from(req.expected_len));
                if data_in.len() as u64 > cap {
                    data_in.truncate(cap as usize);
                }
                ScsiOutcome::good(transfer_len)
            }
            Err(sense) => {
                data_in.clear();
                // D_SENSE may have changed during this command (MODE SELECT).
                ScsiOutcome::check_condition(&sense, self.mode.d_sense())
            }
        }
    }

    fn dispatch(&self, cmd: &Command, req: &ScsiRequest<'_>, data_in: &mut Vec<u8>) -> CmdResult {
        if cmd.needs_medium() && !self.medium_present() {
            return Err(Sense::new(
                SenseKey::NOT_READY,
                Asc::MEDIUM_NOT_PRESENT_TRAY_OPEN,
            ));
        }
        let expected = req.expected_len;
        match *cmd {
            Command::TestUnitReady => Ok(0),
            Command::RequestSense { desc, alloc_len } => {
                let sense = match self.pop_ua(req.nexus) {
                    Some(asc) => Sense::new(SenseKey::UNIT_ATTENTION, asc),
                    None => match self.sanitize_sense() {
                        Some(s) => s,
                        None if !self.medium_present() => {
                            Sense::new(SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT_TRAY_OPEN)
                        }
                        None => Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL_SENSE),
                    },
                };
                data_in.extend_from_slice(sense.encode(desc).as_bytes());
                Ok(finish(data_in, alloc_len, expected))
            }
            Command::Inquiry {
                evpd,
                page_code,
                alloc_len,
            } => {
                let ctx = InquiryCtx {
                    ident: &self.ident,
                    removable: self.removable,
                    block_size: self.dev.block_size(),
                    nexus: req.nexus,
                    thin: self.dev.is_thin(),
                    port_group: self.alua.group_of(req.nexus.relative_port),
                };
                inquiry::inquiry(&ctx, evpd, page_code, data_in)?;
                Ok(finish(data_in, alloc_len, expected))
            }
            Command::ModeSense(ms) => {
                let medium = MediumInfo {
                    block_size: self.dev.block_size(),
                    num_blocks: self.dev.num_blocks(),
                    write_protected: self.write_protect_sense().is_some(),
                };
                mode::mode_sense(&self.mode, &ms, &medium, data_in)?;
                Ok(finish(data_in, ms.alloc_len, expected))
            }
            Command::ModeSelect {
                ten,
                pf: _,
                sp,
                param_len,
            } => {
                let changed = mode::mode_select(
                    &self.mode,
                    ten,
                    sp,
                    param_len,
                    req.data_out,
                    self.dev.block_size(),
                )?;
                if changed {
                    self.establish_ua(Asc::MODE_PARAMETERS_CHANGED, Some(req.nexus));
                }
                Ok(u64::from(param_len))
            }
            Command::StartStopUnit(ssu) => self.start_stop_unit(&ssu),
            Command::PreventAllowMediumRemoval { prevent } => {
                self.set_prevent(req.nexus, prevent);
                Ok(0)
            }
            Command::ReadCapacity10 { .. } => {
                self.read_capacity_10(data_in);
                Ok(finish(data_in, 8, expected))
            }
            Command::ReadCapacity16 { alloc_len, .. } => {
                self.read_capacity_16(data_in);
                Ok(finish(data_in, alloc_len, expected))
            }
            Command::Read(rw) => self.read(&rw, expected, data_in),
            Command::Write(rw) => self.write(&rw, req.data_out, false),
            Command::WriteAndVerify { rw, bytchk: _ } => self.write(&rw, req.data_out, true),
            Command::Verify { rw, bytchk } => self.verify(&rw, bytchk, req.data_out, data_in),
            Command::PreFetch { lba, blocks, .. } => {
                self.check_range_to_end(lba, blocks)?;
                Ok(0)
            }
            Command::SynchronizeCache { lba, blocks, .. } => {
                self.check_range_to_end(lba, blocks)?;
                self.dev.flush().map_err(|e| self.device_error(&e))?;
                Ok(0)
            }
            Command::ReadDefectData {
                twelve,
                req_plist,
                req_glist,
                format,
                alloc_len,
            } => {
                spc::read_defect_data(twelve, req_plist, req_glist, format, data_in);
                Ok(finish(data_in, alloc_len, expected))
            }
            Command::ReportLuns { .. } => {
                // The transport owns the LUN map and should answer REPORT LUNS
                // itself (see [`crate::report_luns`]); fall back to an empty list.
                tracing::warn!(
                    "REPORT LUNS reached the logical unit; answering with an empty list"
                );
                let out = spc::report_luns(&[], req, data_in);
                if out.status == ScsiStatus::GOOD {
                    Ok(out.transfer_len)
                } else {
                    Err(Sense::invalid_field_in_cdb(2, None))
                }
            }
            Command::ReportSupportedOpcodes {
                rctd,
                options,
                opcode,
                service_action,
                alloc_len,
            } => {
                spc::report_supported_opcodes(rctd, options, opcode, service_action, data_in)?;
                Ok(finish(data_in, alloc_len, expected))
            }
            _ => self.dispatch_ext(cmd, req, data_in),
        }
    }

    pub(crate) fn device_error(&self, e: &DeviceError) -> Sense {
        tracing::warn!(error = %e, "device error");
        e.sense()
    }
}

/// Finish a data-in command: the CDB transfers min(allocation length,
/// available) bytes; at most min(that, expected_len) stay in `data_in`.
pub(crate) fn finish(data_in: &mut Vec<u8>, alloc_len: u32, expected_len: u32) -> u64 {
    let transfer = (data_in.len() as u64).min(u64::from(alloc_len));
    let keep = transfer.min(u64::from(expected_len)) as usize;
    data_in.truncate(keep);
    transfer
}
