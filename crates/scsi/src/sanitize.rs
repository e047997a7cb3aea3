//! SANITIZE (SBC-4 4.11, 5.30): OVERWRITE as a background operation and
//! BLOCK ERASE (deallocate everything). CRYPTOGRAPHIC ERASE and EXIT
//! FAILURE MODE are not offered (INVALID FIELD IN CDB from the parser).
//!
//! While a sanitize operation is in progress every command except the few
//! in [`allowed_during_sanitize`] ends with NOT READY / LOGICAL UNIT NOT
//! READY, SANITIZE IN PROGRESS (04h/1Bh) and a progress indication, from
//! every I_T nexus; REQUEST SENSE reports the same. The operation runs on
//! its own thread and survives task management (ABORT TASK, ABORT TASK
//! SET, LOGICAL UNIT RESET, target resets) and I_T nexus loss, as SBC-4
//! 4.11.2 requires. A SANITIZE with IMMED=0 returns status when the
//! operation ends, unless the task is aborted first (see
//! [`LogicalUnit::abort_waiting`]); the operation then continues.
//!
//! If an operation fails (device error) the logical unit enters sanitize
//! failure mode: medium access commands end with MEDIUM ERROR / MEDIUM
//! FORMAT CORRUPTED and REQUEST SENSE reports SANITIZE COMMAND FAILED,
//! until another sanitize operation completes without error (the
//! restricted completion mode; EXIT FAILURE MODE is not offered).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cdb::{be, Command};
use crate::device::{BlockDevice, DeviceError};
use crate::lu::{lock, CmdResult, LogicalUnit, Nexus};
use crate::sense::{Asc, Sense, SenseKey};

/// Default bandwidth of a background OVERWRITE, in bytes per second.
///
/// A sanitize operation is background housekeeping: unthrottled it would
/// saturate the backing store and starve the I/O of every other logical
/// unit sharing it (an in-memory or page-cached 256 MiB volume would be
/// rewritten in well under a second; a multi-TiB one would hog the disks
/// for minutes). 32 MiB/s keeps it a modest share of a single SSD while a
/// 1 GiB volume is still sanitized within a minute per pass. It also gives
/// initiators a realistic window to observe SANITIZE IN PROGRESS (libiscsi's
/// Sanitize.Reset expects a 256 MiB overwrite to run for more than ~5 s).
pub(crate) const DEFAULT_OVERWRITE_RATE: u64 = 32 * 1024 * 1024;

/// SANITIZE service action OVERWRITE.
pub(crate) const SA_OVERWRITE: u8 = 0x01;
/// SANITIZE service action BLOCK ERASE.
pub(crate) const SA_BLOCK_ERASE: u8 = 0x02;

/// Bytes written per device call by OVERWRITE.
const CHUNK: usize = 1024 * 1024;
/// How long an IMMED=0 SANITIZE sleeps between checks of its state (it is
/// also woken on every state change).
const WAIT_TICK: Duration = Duration::from_millis(500);

/// Per logical unit sanitize state.
pub(crate) struct SanitizeState {
    shared: Arc<Shared>,
    /// OVERWRITE bandwidth in bytes per second; 0: unlimited.
    rate: AtomicU64,
}

impl Default for SanitizeState {
    fn default() -> Self {
        SanitizeState {
            shared: Arc::new(Shared::default()),
            rate: AtomicU64::new(DEFAULT_OVERWRITE_RATE),
        }
    }
}

/// State shared with the background thread.
#[derive(Default)]
struct Shared {
    /// A sanitize operation is in progress (lock-free gate for every command).
    active: AtomicBool,
    /// The last sanitize operation failed: sanitize failure mode.
    failed: AtomicBool,
    /// Fraction of the operation done, as a numerator of 65536.
    progress: AtomicU32,
    inner: Mutex<Inner>,
    changed: Condvar,
}

#[derive(Default)]
struct Inner {
    /// Number of operations started so far (the current one's number).
    started: u64,
    /// Number of the last operation that ended, and whether it succeeded.
    ended: u64,
    ended_ok: bool,
    /// Commands waiting for the operation to end (IMMED=0).
    waiters: Vec<Waiter>,
    next_waiter: u64,
}

struct Waiter {
    id: u64,
    nexus: Nexus,
    aborted: bool,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Start an operation unless one is in progress; returns its number
    /// and, if `waiter` names the nexus of an IMMED=0 command, the id of
    /// that command's registration (made atomically with the start, so an
    /// abort can never miss it).
    fn begin(&self, waiter: Option<Nexus>) -> Option<(u64, Option<u64>)> {
        let mut inner = self.inner();
        if self.active.load(Ordering::Acquire) {
            return None;
        }
        inner.started += 1;
        let wid = waiter.map(|nexus| {
            let id = inner.next_waiter;
            inner.next_waiter += 1;
            inner.waiters.push(Waiter {
                id,
                nexus,
                aborted: false,
            });
            id
        });
        self.progress.store(0, Ordering::Release);
        self.active.store(true, Ordering::Release);
        Some((inner.started, wid))
    }

    /// The operation numbered `id` ended; `ok: None` if it never touched
    /// the medium (the failure mode state then stays as it was).
    fn end(&self, id: u64, ok: Option<bool>) {
        let mut inner = self.inner();
        if inner.started != id || !self.active.load(Ordering::Acquire) {
            return;
        }
        inner.ended = id;
        inner.ended_ok = ok == Some(true);
        if let Some(ok) = ok {
            self.failed.store(!ok, Ordering::Release);
        }
        self.active.store(false, Ordering::Release);
        drop(inner);
        self.changed.notify_all();
    }

    fn set_progress(&self, done: u64, total: u64) {
        let p = if total == 0 {
            0
        } else {
            (u128::from(done) * 65536 / u128::from(total)).min(0xFFFF) as u32
        };
        self.progress.store(p, Ordering::Release);
    }
}

/// Ends the operation when dropped: with the result the worker recorded,
/// as failed if the worker unwound, or as never started if it did not run.
struct EndGuard {
    shared: Arc<Shared>,
    id: u64,
    /// The medium may have been modified.
    started: bool,
    ok: bool,
}

impl EndGuard {
    fn new(shared: &Arc<Shared>, id: u64) -> Self {
        EndGuard {
            shared: shared.clone(),
            id,
            started: false,
            ok: false,
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.shared.end(self.id, self.started.then_some(self.ok));
    }
}

/// A validated OVERWRITE parameter list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overwrite {
    /// OVERWRITE COUNT (1..=15).
    pub(crate) passes: u8,
    /// INVERT: invert the pattern between consecutive passes.
    pub(crate) invert: bool,
    /// The initialization pattern repeated to fill one logical block.
    pub(crate) block: Vec<u8>,
}

/// Validate a SANITIZE OVERWRITE parameter list (SBC-4 5.30.3). The
/// PARAMETER LIST LENGTH must be greater than 4 and less than the block
/// size + 5 (else INVALID FIELD IN CDB); the INITIALIZATION PATTERN LENGTH
/// must be 1..=block size and fit in the list, the OVERWRITE COUNT
/// non-zero, TEST 00b (no vendor test modes) and the reserved bits zero
/// (else INVALID FIELD IN PARAMETER LIST with a field pointer).
pub(crate) fn parse_overwrite(
    param_len: u16,
    data_out: &[u8],
    block_size: usize,
) -> Result<Overwrite, Sense> {
    let plen = usize::from(param_len);
    if plen < 5 || plen > block_size + 4 {
        return Err(Sense::invalid_field_in_cdb(7, None));
    }
    let Some(p) = data_out.get(..plen) else {
        return Err(Sense::parameter_list_length_error());
    };
    if p[0] & 0x40 != 0 {
        return Err(Sense::invalid_field_in_param_list(0, Some(6)));
    }
    if p[0] & 0x30 != 0 {
        return Err(Sense::invalid_field_in_param_list(0, Some(5)));
    }
    let passes = p[0] & 0x0F;
    if passes == 0 {
        return Err(Sense::invalid_field_in_param_list(0, Some(3)));
    }
    if p[1] != 0 {
        return Err(Sense::invalid_field_in_param_list(1, None));
    }
    let ipl = be(&p[2..4]) as usize;
    if ipl == 0 || ipl > block_size || ipl + 4 > plen {
        return Err(Sense::invalid_field_in_param_list(2, None));
    }
    let block = p[4..4 + ipl]
        .iter()
        .copied()
        .cycle()
        .take(block_size)
        .collect();
    Ok(Overwrite {
        passes,
        invert: p[0] & 0x80 != 0,
        block,
    })
}

/// Whether pass `pass` (0-based) of `passes` writes the inverted pattern:
/// with INVERT the pattern alternates so that the last pass writes it as
/// given (SBC-4 5.30.3.2: the first pass is inverted when the count is
/// even).
pub(crate) fn pass_inverted(invert: bool, pass: u8, passes: u8) -> bool {
    invert && (passes - 1 - pass) % 2 == 1
}

/// Commands processed while a sanitize operation is in progress (SBC-4
/// 4.11.2): the ones that report on the logical unit without touching the
/// medium. Everything else ends with SANITIZE IN PROGRESS.
pub(crate) fn allowed_during_sanitize(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Inquiry { .. }
            | Command::ReportLuns { .. }
            | Command::RequestSense { .. }
            | Command::ReportSupportedOpcodes { .. }
            | Command::ReportTargetPortGroups { .. }
    )
}

impl Sense {
    /// NOT READY / LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS with the
    /// progress indication (SKSV=1, fraction done of 65536).
    pub const fn sanitize_in_progress(progress: u16) -> Self {
        let [hi, lo] = progress.to_be_bytes();
        Sense {
            key: SenseKey::NOT_READY,
            asc: Asc::SANITIZE_IN_PROGRESS,
            information: None,
            sks: Some([0x80, hi, lo]),
        }
    }
}

impl LogicalUnit {
    /// Set the OVERWRITE bandwidth (bytes per second, 0: unlimited).
    #[cfg(test)]
    pub(crate) fn set_sanitize_rate(&self, bytes_per_sec: u64) {
        self.sanitize.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// True while a sanitize operation is in progress.
    pub fn sanitize_in_progress(&self) -> bool {
        self.sanitize.shared.active.load(Ordering::Acquire)
    }

    /// Task management is aborting the tasks of `nexus` (ABORT TASK, ABORT
    /// TASK SET, CLEAR TASK SET, I_T nexus loss) or of every nexus (`None`:
    /// LOGICAL UNIT RESET, target reset). Commands of those nexuses that
    /// are waiting inside the logical unit for a background operation to
    /// end (a SANITIZE with IMMED=0) return at once with TASK ABORTED
    /// status; the operation itself continues (SBC-4 4.11.2). A transport
    /// that waits for running commands before answering a task management
    /// function should call this first.
    pub fn abort_waiting(&self, nexus: Option<Nexus>) {
        let shared = &self.sanitize.shared;
        let mut inner = shared.inner();
        let mut any = false;
        for w in &mut inner.waiters {
            if nexus.is_none_or(|n| n == w.nexus) {
                w.aborted = true;
                any = true;
            }
        }
        drop(inner);
        if any {
            shared.changed.notify_all();
        }
    }

    /// The sense a command not in [`allowed_during_sanitize`] ends with
    /// while a sanitize operation is in progress or has failed, if any.
    pub(crate) fn sanitize_gate(&self, cmd: &Command) -> Result<(), Sense> {
        let shared = &self.sanitize.shared;
        let active = shared.active.load(Ordering::Acquire);
        if !active && !shared.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        if allowed_during_sanitize(cmd) {
            return Ok(());
        }
        if active {
            return Err(self.sanitize_progress_sense());
        }
        // Failure mode: only a new sanitize operation can leave it.
        if matches!(cmd, Command::Sanitize { .. }) {
            return Ok(());
        }
        Err(Sense::new(
            SenseKey::MEDIUM_ERROR,
            Asc::MEDIUM_FORMAT_CORRUPTED,
        ))
    }

    fn sanitize_progress_sense(&self) -> Sense {
        let p = self.sanitize.shared.progress.load(Ordering::Acquire);
        Sense::sanitize_in_progress(p.min(0xFFFF) as u16)
    }

    /// What REQUEST SENSE reports about sanitize when no unit attention is
    /// pending: the progress while one is in progress, SANITIZE COMMAND
    /// FAILED in failure mode.
    pub(crate) fn sanitize_sense(&self) -> Option<Sense> {
        let shared = &self.sanitize.shared;
        if shared.active.load(Ordering::Acquire) {
            Some(self.sanitize_progress_sense())
        } else if shared.failed.load(Ordering::Acquire) {
            Some(Sense::new(
                SenseKey::MEDIUM_ERROR,
                Asc::SANITIZE_COMMAND_FAILED,
            ))
        } else {
            None
        }
    }

    /// SANITIZE: the parser let only OVERWRITE and BLOCK ERASE through.
    pub(crate) fn sanitize(
        &self,
        nexus: Nexus,
        service_action: u8,
        immed: bool,
        param_len: u16,
        data_out: &[u8],
    ) -> CmdResult {
        match service_action {
            SA_OVERWRITE => self.sanitize_overwrite(nexus, immed, param_len, data_out),
            SA_BLOCK_ERASE => self.sanitize_block_erase(),
            _ => Err(Sense::invalid_field_in_cdb(1, Some(4))),
        }
    }

    /// SANITIZE BLOCK ERASE: deallocate every block (they then read as
    /// zeros). Fast, so performed before status whatever IMMED says. The
    /// parameter list length must be zero (CDB usage map).
    fn sanitize_block_erase(&self) -> CmdResult {
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        let shared = &self.sanitize.shared;
        let Some((id, _)) = shared.begin(None) else {
            return Err(self.sanitize_progress_sense());
        };
        let mut guard = EndGuard::new(shared, id);
        guard.started = true;
        let cap = self.dev.num_blocks();
        let result = {
            let _excl = self.io_locks.exclusive();
            self.dev.unmap(0, cap).and_then(|()| self.dev.flush())
        };
        guard.ok = result.is_ok();
        drop(guard);
        result.map_err(|e| self.sanitize_failed(&e))?;
        Ok(0)
    }

    fn sanitize_failed(&self, e: &DeviceError) -> Sense {
        tracing::warn!(error = %e, serial = %self.ident.serial, "sanitize failed");
        Sense::new(SenseKey::MEDIUM_ERROR, Asc::SANITIZE_COMMAND_FAILED)
    }

    /// SANITIZE OVERWRITE: validate, then overwrite every block on a
    /// background thread at the LU's sanitize bandwidth; with IMMED=0 wait
    /// for it to end.
    fn sanitize_overwrite(
        &self,
        nexus: Nexus,
        immed: bool,
        param_len: u16,
        data_out: &[u8],
    ) -> CmdResult {
        let bs = self.dev.block_size().max(1) as usize;
        let plen = usize::from(param_len);
        if plen < 5 || plen > bs + 4 {
            return Err(Sense::invalid_field_in_cdb(7, None));
        }
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        let ow = parse_overwrite(param_len, data_out, bs)?;
        let shared = &self.sanitize.shared;
        let Some((id, waiter)) = shared.begin((!immed).then_some(nexus)) else {
            return Err(self.sanitize_progress_sense());
        };
        // Writers that passed the gate before `begin` finish first.
        drop(self.io_locks.exclusive());
        let job = Job {
            dev: self.dev.clone(),
            guard: EndGuard::new(shared, id),
            ow,
            rate: self.sanitize.rate.load(Ordering::Relaxed),
            serial: self.ident.serial.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("ironsan-sanitize".into())
            .spawn(move || job.run());
        if let Err(e) = spawned {
            // The job (and its guard) was dropped unstarted: the operation
            // ended without touching the medium.
            tracing::warn!(error = %e, "cannot start the sanitize thread");
            if let Some(wid) = waiter {
                shared.inner().waiters.retain(|w| w.id != wid);
            }
            return Err(Sense::new(
                SenseKey::HARDWARE_ERROR,
                Asc::INTERNAL_TARGET_FAILURE,
            ));
        }
        match waiter {
            None => Ok(u64::from(param_len)),
            Some(wid) => {
                self.wait_for_end(id, wid)?;
                Ok(u64::from(param_len))
            }
        }
    }

    /// Wait until operation `id` ends (its result) or waiter `wid` is
    /// aborted (TASK ABORTED).
    fn wait_for_end(&self, id: u64, wid: u64) -> Result<(), Sense> {
        let shared = &self.sanitize.shared;
        let mut inner = shared.inner();
        loop {
            let aborted = inner
                .waiters
                .iter()
                .find(|w| w.id == wid)
                .is_none_or(|w| w.aborted);
            let ended = inner.ended >= id;
            if ended || aborted {
                let ok = inner.ended_ok;
                inner.waiters.retain(|w| w.id != wid);
                return if ended && ok {
                    Ok(())
                } else if ended {
                    Err(Sense::new(
                        SenseKey::MEDIUM_ERROR,
                        Asc::SANITIZE_COMMAND_FAILED,
                    ))
                } else {
                    Err(Sense::task_aborted())
                };
            }
            inner = match shared.changed.wait_timeout(inner, WAIT_TICK) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// One OVERWRITE operation, run on its own thread.
struct Job {
    dev: Arc<dyn BlockDevice>,
    guard: EndGuard,
    ow: Overwrite,
    rate: u64,
    serial: String,
}

impl Job {
    fn run(mut self) {
        self.guard.started = true;
        let started = Instant::now();
        tracing::info!(
            serial = %self.serial,
            passes = self.ow.passes,
            invert = self.ow.invert,
            rate = self.rate,
            "sanitize overwrite started"
        );
        match self.overwrite(started) {
            Ok(()) => {
                self.guard.ok = true;
                tracing::info!(
                    serial = %self.serial,
                    secs = started.elapsed().as_secs_f64(),
                    "sanitize overwrite completed"
                );
            }
            Err(e) => {
                tracing::warn!(serial = %self.serial, error = %e, "sanitize overwrite failed");
            }
        }
        // Dropping the guard ends the operation and wakes IMMED=0 waiters.
    }

    fn overwrite(&self, started: Instant) -> Result<(), DeviceError> {
        let bs = self.ow.block.len().max(1);
        let cap = self.dev.num_blocks();
        // About 32 device calls per second when throttled (smooth progress
        // and pacing), at most CHUNK bytes each.
        let chunk_bytes = match self.rate {
            0 => CHUNK,
            r => usize::try_from(r / 32).unwrap_or(CHUNK).min(CHUNK),
        };
        let per_chunk = (chunk_bytes / bs).max(1) as u64;
        let buf = self.ow.block.repeat(per_chunk.min(cap.max(1)) as usize);
        let inverted: Vec<u8> = if self.ow.invert {
            buf.iter().map(|b| !b).collect()
        } else {
            Vec::new()
        };
        let passes = self.ow.passes;
        let total = cap.saturating_mul(u64::from(passes));
        let shared = &self.guard.shared;
        let mut done = 0u64;
        for pass in 0..passes {
            let data = if pass_inverted(self.ow.invert, pass, passes) {
                &inverted
            } else {
                &buf
            };
            let mut lba = 0u64;
            while lba < cap {
                let n = (cap - lba).min(per_chunk);
                let len = (n as usize).saturating_mul(bs).min(data.len());
                self.dev.write_blocks(lba, &data[..len], false)?;
                lba += n;
                done += n;
                shared.set_progress(done, total);
                self.throttle(started, done.saturating_mul(bs as u64));
            }
        }
        self.dev.flush()
    }

    /// Sleep until `bytes` are due at the configured rate.
    fn throttle(&self, started: Instant, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}
