//! Restarts and upgrades that initiators never see as errors.
//!
//! Design: on SIGUSR2 (or SIGHUP, or `ironsan restart`) the running daemon
//! starts the binary at its original path, which may have been replaced by a
//! new release, and hands it the listening sockets (file descriptors
//! inherited across exec). The listening sockets never close, so no
//! connection is ever refused: a connection made during the switch waits in
//! the kernel's accept queue.
//!
//! Live sessions are drained rather than migrated: the old process sends
//! every session an Async Message asking for logout, completes in-flight
//! commands, flushes every LUN and exits; initiators log out, wait
//! DefaultTime2Wait and log in again, now served by the new process, and
//! re-issue any command that had not completed. Handing over TCP sockets and
//! session state (sequence numbers, data in flight, digests) would also
//! carry over any bug in that state into the new binary and couple the
//! in-memory formats of two releases; draining is what the protocol itself
//! offers for this, every initiator implements it, and it leaves the new
//! process starting from a clean, fully flushed state. State that must
//! survive (persistent reservations) lives on disk.
//!
//! Handshake: the successor adopts the sockets and writes one byte on a
//! "ready" pipe; only then does the predecessor start draining. If the
//! successor fails (bad binary, bad configuration) the predecessor keeps
//! serving. The successor opens its storage only once the predecessor has
//! exited (a second pipe reaches end-of-file), so two processes never write
//! the same metadata.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context, Result};

const ENV_LISTEN: &str = "IRONSAN_LISTEN_FDS";
const ENV_READY: &str = "IRONSAN_READY_FD";
const ENV_PREDECESSOR: &str = "IRONSAN_PREDECESSOR_FD";

/// What a successor process inherited from its predecessor.
#[derive(Default)]
pub(crate) struct Inherited {
    /// Listening sockets by address.
    pub listeners: HashMap<SocketAddr, std::net::TcpListener>,
    ready: Option<File>,
    predecessor: Option<File>,
}

fn env_fd(name: &str) -> Option<RawFd> {
    std::env::var(name).ok()?.parse().ok()
}

/// Takes over what the predecessor passed in the environment (nothing when
/// started normally).
pub(crate) fn inherited() -> Inherited {
    let mut out = Inherited::default();
    if let Ok(list) = std::env::var(ENV_LISTEN) {
        for item in list.split(';').filter(|s| !s.is_empty()) {
            let Some((addr, fd)) = item.rsplit_once('=') else {
                continue;
            };
            let (Ok(addr), Ok(fd)) = (addr.parse::<SocketAddr>(), fd.parse::<RawFd>()) else {
                continue;
            };
            // SAFETY: the predecessor passed this descriptor for our exclusive
            // use; nothing else in this process refers to it.
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            out.listeners.insert(addr, l);
        }
    }
    // SAFETY: as above, descriptors named by our predecessor for us alone.
    out.ready = env_fd(ENV_READY).map(|fd| unsafe { File::from_raw_fd(fd) });
    // SAFETY: as above.
    out.predecessor = env_fd(ENV_PREDECESSOR).map(|fd| unsafe { File::from_raw_fd(fd) });
    for name in [ENV_LISTEN, ENV_READY, ENV_PREDECESSOR] {
        std::env::remove_var(name);
    }
    out
}

impl Inherited {
    /// Whether this process replaces a predecessor.
    pub fn is_successor(&self) -> bool {
        self.ready.is_some()
    }

    /// Tells the predecessor the sockets are taken over.
    pub fn signal_ready(&mut self) {
        if let Some(mut f) = self.ready.take() {
            let _ = f.write_all(b"R");
        }
    }

    /// Waits (bounded) until the predecessor has exited.
    pub fn wait_for_predecessor(&mut self, bound: Duration) {
        let Some(mut f) = self.predecessor.take() else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 16];
            while matches!(f.read(&mut b), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        if rx.recv_timeout(bound).is_err() {
            tracing::warn!("the previous process has not exited in time; starting anyway");
        }
    }
}

fn pipe() -> Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating a pipe");
    }
    // SAFETY: pipe2 succeeded and returned two new descriptors we now own.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// A successor process being started.
pub(crate) struct Successor {
    child: Child,
    ready: File,
    predecessor: File,
}

/// Starts `exe` with `args`, passing the listening sockets.
pub(crate) fn spawn(
    exe: &Path,
    args: &[String],
    listeners: &[(SocketAddr, RawFd)],
) -> Result<Successor> {
    let (ready_rx, ready_tx) = pipe()?;
    let (pred_rx, pred_tx) = pipe()?;
    let list: Vec<String> = listeners
        .iter()
        .map(|(a, fd)| format!("{a}={fd}"))
        .collect();
    let mut inherit: Vec<RawFd> = listeners.iter().map(|(_, fd)| *fd).collect();
    inherit.push(ready_tx.as_raw_fd());
    inherit.push(pred_rx.as_raw_fd());
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(ENV_LISTEN, list.join(";"))
        .env(ENV_READY, ready_tx.as_raw_fd().to_string())
        .env(ENV_PREDECESSOR, pred_rx.as_raw_fd().to_string());
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls fcntl, which is async-signal-safe, on descriptors that are open.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    drop(ready_tx);
    drop(pred_rx);
    Ok(Successor {
        child,
        ready: ready_rx,
        predecessor: pred_tx,
    })
}

impl Successor {
    /// Waits (bounded) for the successor to take the sockets over. On
    /// success, keeps the predecessor pipe open until this process exits.
    pub fn wait_ready(mut self, bound: Duration) -> Result<u32> {
        let pid = self.child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut ready = self.ready;
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            let _ = tx.send(matches!(ready.read(&mut b), Ok(1)));
        });
        match rx.recv_timeout(bound) {
            Ok(true) => {
                // Closed by the kernel when this process exits: the successor's signal.
                std::mem::forget(self.predecessor);
                Ok(pid)
            }
            Ok(false) => {
                let status = self.child.wait().ok();
                bail!("the new process exited before taking over ({status:?})")
            }
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the new process did not take over within {bound:?}")
            }
        }
    }
}

/// Sends a systemd notification when running under `Type=notify`.
pub(crate) fn sd_notify(message: &str) {
    use std::os::unix::net::UnixDatagram;
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let _ = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| sock.send_to_addr(message.as_bytes(), &addr))
    } else {
        sock.send_to(message.as_bytes(), &path)
    };
}

/// `ironsan restart`: asks the daemon whose pid is in `pid_file` to hand
/// over to a new process and waits until it has.
pub(crate) fn restart(pid_file: &Path, bound: Duration) -> Result<()> {
    let read_pid =
        || -> Option<i32> { std::fs::read_to_string(pid_file).ok()?.trim().parse().ok() };
    let old = read_pid().with_context(|| format!("no daemon pid in {}", pid_file.display()))?;
    // SAFETY: kill with a pid and a signal number has no memory effects.
    if unsafe { libc::kill(old, libc::SIGUSR2) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("signalling pid {old}"));
    }
    let deadline = std::time::Instant::now() + bound;
    while std::time::Instant::now() < deadline {
        // SAFETY: as above; signal 0 only checks that the process exists.
        let old_alive = unsafe { libc::kill(old, 0) } == 0;
        match read_pid() {
            Some(new) if new != old && !old_alive => {
                println!("restarted: pid {old} -> {new}");
                return Ok(());
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    bail!("the daemon (pid {old}) did not hand over within {bound:?}; see its log")
}
