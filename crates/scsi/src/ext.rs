//! Dispatch of the clustered-hypervisor commands (reservations, VAAI
//! primitives, thin provisioning, ALUA, SANITIZE).

use crate::cdb::Command;
use crate::lu::{finish, CmdResult, LogicalUnit, ScsiRequest};
use crate::sense::Sense;

impl LogicalUnit {
    pub(crate) fn dispatch_ext(
        &self,
        cmd: &Command,
        req: &ScsiRequest<'_>,
        data_in: &mut Vec<u8>,
    ) -> CmdResult {
        let expected = req.expected_len;
        match *cmd {
            Command::Reserve => self.reserve_release(req, true),
            Command::Release => self.reserve_release(req, false),
            Command::PersistentReserveIn {
                service_action,
                alloc_len,
            } => self.persistent_reserve_in(service_action, alloc_len, expected, data_in),
            Command::PersistentReserveOut {
                service_action,
                scope,
                pr_type,
                param_len,
            } => self.persistent_reserve_out(req, service_action, scope, pr_type, param_len),
            Command::CompareAndWrite {
                lba, blocks, fua, ..
            } => self.compare_and_write(lba, blocks, fua, req.data_out, expected),
            Command::OrWrite(rw) => self.orwrite(&rw, req.data_out),
            Command::WriteAtomic(rw) => self.write_atomic(&rw, req.data_out),
            Command::WriteSame(ws) => self.write_same(&ws, req.data_out, expected),
            Command::Unmap { param_len } => self.unmap(param_len, req.data_out),
            Command::GetLbaStatus { lba, alloc_len } => {
                self.get_lba_status(lba, alloc_len, expected, data_in)
            }
            Command::ExtendedCopy { param_len } => self.extended_copy(req, param_len),
            Command::ReceiveCopyResults {
                service_action,
                list_id,
                alloc_len,
            } => self.receive_copy_results(req, service_action, list_id, alloc_len, data_in),
            Command::ReportTargetPortGroups {
                extended,
                alloc_len,
            } => self.report_target_port_groups(extended, alloc_len, expected, data_in),
            Command::Sanitize {
                service_action,
                immed,
                param_len,
                ..
            } => self.sanitize(req.nexus, service_action, immed, param_len, req.data_out),
            _ => {
                // Every base command is handled by `dispatch`.
                data_in.clear();
                let _ = finish(data_in, 0, expected);
                Err(Sense::invalid_opcode())
            }
        }
    }
}
