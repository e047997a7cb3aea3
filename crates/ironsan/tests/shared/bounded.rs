//! Running a command with a time bound (shared by the test helper modules).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` capturing its output; kills it and panics after `bound`.
pub fn run_bounded_for(mut cmd: Command, bound: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
