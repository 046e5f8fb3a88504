//! Signals to the process groups of workers started from a command line (`--worker-command`):
//! the command runs under `sh -c` in a group of its own, so a signal reaches whatever it
//! started, not only the shell.
#![allow(unsafe_code)]

/// Sends `signal` to process group `pgid`; false if there is no such group (it exited).
pub fn to_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        // 0 and 1 would mean our own group or every process: never meant here.
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Asks the kernel to kill the calling process when its parent (the node) dies, so workers
/// do not outlive a node that was killed. SIGKILL, not SIGTERM: the broker died with the node,
/// so there is no job to finish, and a worker told to stop gracefully may instead retry its
/// connection forever (RQ's does). For `pre_exec`: async-signal-safe.
pub fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGKILL: i32 = libc::SIGKILL;

/// `sh -c line` in a process group of its own (its id is the child's pid), killed if the
/// node dies.
pub fn shell_command(line: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(line).process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes one async-signal-safe
    // system call.
    unsafe {
        cmd.pre_exec(die_with_parent);
    }
    cmd
}
