//! The sending half of a connection.
//!
//! One task per connection owns the socket's write half and the StatSN
//! counter, so every response leaves in the order its StatSN says. Senders
//! (the connection loop and the I/O threads completing commands) queue
//! [`Out`] messages; the writer batches whatever is queued into one write.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use iscsi_proto::pdu::{Bhs, DataIn, Residual, ScsiResponse};
use scsi::{ScsiStatus, SenseData};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::budget::Reservation;
use crate::frame::encode_pdu;

/// Write when this much is batched, even if more is queued.
const BATCH: usize = 256 * 1024;

/// Session-wide command numbering shared by the reader and the writer.
#[derive(Debug)]
pub struct CmdWindow {
    exp_cmd_sn: AtomicU32,
    inflight: AtomicU32,
    depth: u32,
}

impl CmdWindow {
    /// A window of `depth` commands starting at `exp_cmd_sn`.
    pub fn new(exp_cmd_sn: u32, depth: u32) -> Self {
        Self {
            exp_cmd_sn: AtomicU32::new(exp_cmd_sn),
            inflight: AtomicU32::new(0),
            depth: depth.max(1),
        }
    }
    /// Restarts numbering at `exp_cmd_sn` (the login's CmdSN).
    pub fn reset(&self, exp_cmd_sn: u32) {
        self.exp_cmd_sn.store(exp_cmd_sn, Ordering::Release);
    }
    /// Skips ahead: the next CmdSN expected becomes `next`.
    pub fn set_exp(&self, next: u32) {
        self.exp_cmd_sn.store(next, Ordering::Release);
    }
    /// The next CmdSN expected.
    pub fn exp_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.load(Ordering::Acquire)
    }
    /// The last CmdSN the initiator may send: the window shrinks while
    /// commands are in flight, so queued commands never exceed the depth.
    pub fn max_cmd_sn(&self) -> u32 {
        let inflight = self.inflight.load(Ordering::Acquire).min(self.depth);
        self.exp_cmd_sn()
            .wrapping_add(self.depth - inflight)
            .wrapping_sub(1)
    }
    /// Accepts the command numbered `exp_cmd_sn` (advances the window).
    pub fn advance(&self) {
        self.exp_cmd_sn.fetch_add(1, Ordering::AcqRel);
    }
    /// A command starts occupying a slot.
    pub fn begin(&self) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
    }
    /// A command's slot is released.
    pub fn end(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
    /// Commands currently occupying slots.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Acquire)
    }
}

/// Reusable data buffers, so the I/O path does not allocate per command.
#[derive(Debug, Default)]
pub struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    /// Keeps at most this many idle buffers.
    const MAX_IDLE: usize = 64;

    /// An empty buffer, recycled when one is available.
    pub fn get(&self) -> Vec<u8> {
        let mut v = self
            .free
            .lock()
            .map(|mut f| f.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        v.clear();
        v
    }
    /// Returns a buffer for reuse.
    pub fn put(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > 16 << 20 {
            return;
        }
        if let Ok(mut f) = self.free.lock() {
            if f.len() < Self::MAX_IDLE {
                f.push(buf);
            }
        }
    }
}

/// The outcome of a SCSI command, ready to be sent.
#[derive(Debug)]
pub struct Completion {
    /// Initiator task tag.
    pub itt: u32,
    /// SCSI status.
    pub status: ScsiStatus,
    /// Encoded sense data (empty when none).
    pub sense: SenseData,
    /// Data-In bytes (empty for writes); returned to the pool after sending.
    pub data: Vec<u8>,
    /// Residual to report.
    pub residual: Residual,
    /// R2Ts sent for the command (they count in ExpDataSN).
    pub r2t_count: u32,
    /// The memory the data buffer holds; released once it is sent.
    pub reservation: Option<Reservation>,
}

/// Something to send.
#[derive(Debug)]
pub enum Out {
    /// One PDU. `status` PDUs take the next StatSN; others carry it unchanged.
    Pdu {
        /// Header (sequence fields are filled in by the writer).
        bhs: Bhs,
        /// Data segment.
        data: Vec<u8>,
        /// Whether this PDU consumes a StatSN.
        status: bool,
    },
    /// A finished command: Data-In PDUs and status. Releases its window slot.
    Complete(Box<Completion>),
    /// Several finished commands (one I/O thread's share of a batch).
    Batch(Vec<Completion>),
    /// Applies negotiated parameters to everything queued after this.
    Configure(SendParams),
    /// Flush and shut the connection down.
    Close,
}

/// What the writer needs from the negotiated parameters.
#[derive(Clone, Copy, Debug)]
pub struct SendParams {
    /// Header digests on.
    pub header_digest: bool,
    /// Data digests on.
    pub data_digest: bool,
    /// The initiator's MaxRecvDataSegmentLength.
    pub max_data: u32,
    /// MaxBurstLength: a Data-In sequence ends (F bit) at this boundary.
    pub max_burst: u32,
}

impl Default for SendParams {
    fn default() -> Self {
        Self {
            header_digest: false,
            data_digest: false,
            max_data: 8192,
            max_burst: 262_144,
        }
    }
}

/// Handle to queue PDUs on a connection.
pub type OutTx = mpsc::UnboundedSender<Out>;

struct Writer {
    stat_sn: u32,
    params: SendParams,
    window: Arc<CmdWindow>,
    pool: Arc<BufPool>,
    out: Vec<u8>,
}

impl Writer {
    fn seq(&mut self, bhs: &mut Bhs, status: bool) {
        let sn = self.stat_sn;
        if status {
            self.stat_sn = self.stat_sn.wrapping_add(1);
        }
        bhs.set_sequence(sn, self.window.exp_cmd_sn(), self.window.max_cmd_sn());
    }

    fn push(&mut self, bhs: &Bhs, data: &[u8]) {
        encode_pdu(
            &mut self.out,
            bhs,
            data,
            self.params.header_digest,
            self.params.data_digest,
        );
    }

    fn complete(&mut self, c: Completion) {
        // Release the slot first so this very response opens the window.
        self.window.end();
        let max_data = self.params.max_data.max(512) as usize;
        let max_burst = self.params.max_burst.max(512) as usize;
        let collapse = c.status == ScsiStatus::GOOD && c.sense.is_empty() && !c.data.is_empty();
        let mut data_sn = 0u32;
        let mut offset = 0usize;
        while offset < c.data.len() {
            let burst_end = (offset / max_burst + 1) * max_burst;
            let end = (offset + max_data).min(burst_end).min(c.data.len());
            let last = end == c.data.len();
            let pdu = DataIn {
                final_bit: end == burst_end || last,
                status: (last && collapse).then_some(c.status.0),
                residual: c.residual,
                itt: c.itt,
                data_sn,
                buffer_offset: offset as u32,
            };
            let mut bhs = pdu.encode((end - offset) as u32);
            self.seq(&mut bhs, last && collapse);
            self.push(&bhs, &c.data[offset..end]);
            data_sn += 1;
            offset = end;
        }
        if !collapse {
            let resp = ScsiResponse {
                response: 0,
                status: c.status.0,
                itt: c.itt,
                exp_data_sn: data_sn + c.r2t_count,
                residual: c.residual,
            };
            let sense = c.sense.as_bytes();
            let mut bhs;
            if sense.is_empty() {
                bhs = resp.encode(0);
                self.seq(&mut bhs, true);
                self.push(&bhs, &[]);
            } else {
                let mut seg = [0u8; 2 + 256];
                let n = sense.len().min(256);
                seg[..2].copy_from_slice(&(n as u16).to_be_bytes());
                seg[2..2 + n].copy_from_slice(&sense[..n]);
                bhs = resp.encode(2 + n as u32);
                self.seq(&mut bhs, true);
                self.push(&bhs, &seg[..2 + n]);
            }
        }
        self.pool.put(c.data);
        drop(c.reservation);
    }

    /// Returns false when the connection must close.
    fn handle(&mut self, msg: Out) -> bool {
        match msg {
            Out::Pdu {
                mut bhs,
                data,
                status,
            } => {
                self.seq(&mut bhs, status);
                self.push(&bhs, &data);
                self.pool.put(data);
            }
            Out::Complete(c) => self.complete(*c),
            Out::Batch(done) => done.into_iter().for_each(|c| self.complete(c)),
            Out::Configure(p) => self.params = p,
            Out::Close => return false,
        }
        true
    }
}

/// Runs the writer until `Close` or until every sender is gone.
pub async fn run<W: AsyncWrite + Unpin>(
    mut sock: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    window: Arc<CmdWindow>,
    pool: Arc<BufPool>,
    first_stat_sn: u32,
) -> std::io::Result<()> {
    let mut w = Writer {
        stat_sn: first_stat_sn,
        params: SendParams::default(),
        window,
        pool,
        out: Vec::with_capacity(16 * 1024),
    };
    while let Some(msg) = rx.recv().await {
        let mut open = w.handle(msg);
        while open && w.out.len() < BATCH {
            match rx.try_recv() {
                Ok(msg) => open = w.handle(msg),
                Err(_) => break,
            }
        }
        sock.write_all(&w.out).await?;
        w.out.clear();
        if !open {
            break;
        }
    }
    sock.flush().await?;
    sock.shutdown().await
}
