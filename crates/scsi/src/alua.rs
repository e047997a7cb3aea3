//! Asymmetric logical unit access (SPC-4 5.16) with implicit ALUA only:
//! the runtime supplies the target port groups, REPORT TARGET PORT GROUPS
//! reports them, and commands arriving through a standby or unavailable
//! port are refused except those SPC-4 allows in that state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::cdb::Command;
use crate::lu::{finish, CmdResult, LogicalUnit, Nexus};
use crate::sense::{Asc, Sense, SenseKey};

/// Asymmetric access state of a target port group.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AluaState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
}

impl AluaState {
    fn code(self) -> u8 {
        match self {
            AluaState::ActiveOptimized => 0x0,
            AluaState::ActiveNonOptimized => 0x1,
            AluaState::Standby => 0x2,
            AluaState::Unavailable => 0x3,
        }
    }
}

/// One target port group: its identifier, state and relative target ports.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AluaGroup {
    pub id: u16,
    pub state: AluaState,
    pub relative_ports: Vec<u16>,
}

/// The port group table of a logical unit (swappable while running).
pub(crate) struct AluaTable {
    groups: RwLock<Arc<[AluaGroup]>>,
    /// Fast path for READ / WRITE: no group is standby or unavailable.
    all_active: AtomicBool,
}

impl Default for AluaTable {
    fn default() -> Self {
        AluaTable {
            groups: RwLock::new(Arc::from(vec![AluaGroup {
                id: 1,
                state: AluaState::ActiveOptimized,
                relative_ports: vec![1],
            }])),
            all_active: AtomicBool::new(true),
        }
    }
}

impl AluaTable {
    fn get(&self) -> Arc<[AluaGroup]> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// (group id, state) of the group holding `rel_port`; ports in no group
    /// count as active/optimized in group 0.
    pub(crate) fn group_of(&self, rel_port: u16) -> (u16, AluaState) {
        self.get()
            .iter()
            .find(|g| g.relative_ports.contains(&rel_port))
            .map_or((0, AluaState::ActiveOptimized), |g| (g.id, g.state))
    }
}

/// Commands SPC-4 5.16.2.4.4 / 5.16.2.4.5 allow in the standby /
/// unavailable states.
fn allowed(cmd: &Command, state: AluaState) -> bool {
    let always = matches!(
        cmd,
        Command::Inquiry { .. }
            | Command::ReportLuns { .. }
            | Command::ReportTargetPortGroups { .. }
            | Command::RequestSense { .. }
            | Command::ReportSupportedOpcodes { .. }
    );
    always
        || (state == AluaState::Standby
            && matches!(
                cmd,
                Command::ModeSense(_)
                    | Command::ModeSelect { .. }
                    | Command::PersistentReserveIn { .. }
                    | Command::PersistentReserveOut { .. }
            ))
}

impl LogicalUnit {
    /// Replace the target port groups (takes effect for the next command).
    pub fn set_alua(&self, groups: Arc<[AluaGroup]>) {
        let active = groups.iter().all(|g| {
            matches!(
                g.state,
                AluaState::ActiveOptimized | AluaState::ActiveNonOptimized
            )
        });
        let mut cur = self.alua.groups.write().unwrap_or_else(|e| e.into_inner());
        *cur = groups;
        self.alua.all_active.store(active, Ordering::Release);
    }

    /// NOT READY if the command arrived through a standby or unavailable
    /// target port and is not allowed there.
    pub(crate) fn alua_check(&self, cmd: &Command, nexus: Nexus) -> Result<(), Sense> {
        if self.alua.all_active.load(Ordering::Acquire) {
            return Ok(());
        }
        let (_, state) = self.alua.group_of(nexus.relative_port);
        let asc = match state {
            AluaState::ActiveOptimized | AluaState::ActiveNonOptimized => return Ok(()),
            AluaState::Standby => Asc::NOT_READY_TARGET_PORT_STANDBY,
            AluaState::Unavailable => Asc::NOT_READY_TARGET_PORT_UNAVAILABLE,
        };
        if allowed(cmd, state) {
            Ok(())
        } else {
            Err(Sense::new(SenseKey::NOT_READY, asc))
        }
    }

    /// REPORT TARGET PORT GROUPS (SPC-4 6.36), length-only or extended
    /// header format.
    pub(crate) fn report_target_port_groups(
        &self,
        extended: bool,
        alloc_len: u32,
        expected: u32,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        out.extend_from_slice(&[0; 4]);
        if extended {
            // FORMAT TYPE 001b, IMPLICIT TRANSITION TIME 0.
            out.extend_from_slice(&[0x10, 0, 0, 0]);
        }
        for g in self.alua.get().iter() {
            // PREF 0; supported states: T_SUP? no; U_SUP, S_SUP, AN_SUP, AO_SUP.
            out.push(g.state.code());
            out.push(0x08 | 0x04 | 0x02 | 0x01);
            out.extend_from_slice(&g.id.to_be_bytes());
            out.push(0);
            out.push(0); // status: none available
            out.push(0);
            let ports = &g.relative_ports[..g.relative_ports.len().min(255)];
            out.push(ports.len() as u8);
            for p in ports {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(finish(out, alloc_len, expected))
    }
}
