//! Supervision of the emitter and the collector that `run` starts as local processes: one
//! that exits unasked is restarted once (it resumes from what it keeps in the broker), and a
//! second exit fails the run, since a farm missing either can never finish the job.

use autoscale_node::scaler::local::function_process;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use tokio::process::Child;

/// Restarts allowed per role before the run gives up.
pub const MAX_RESTARTS: u32 = 1;

/// A role process and what it takes to start it again.
struct RoleProcess {
    role: &'static str,
    extra: Vec<String>,
    child: Child,
    restarts: u32,
}

/// A role that exited although nobody asked it to.
#[derive(Debug)]
pub struct Exit {
    pub role: &'static str,
    pub status: String,
}

/// The role processes of one run.
pub struct Supervisor {
    exe: PathBuf,
    url: String,
    program_start: f64,
    roles: Vec<RoleProcess>,
}

impl Supervisor {
    pub fn new(exe: PathBuf, url: String, program_start: f64) -> Supervisor {
        Supervisor {
            exe,
            url,
            program_start,
            roles: Vec::new(),
        }
    }

    fn spawn_child(&self, role: &str, extra: &[String]) -> anyhow::Result<Child> {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        // The same id every time: a restarted function finds its own processing list.
        function_process(&self.exe, role, &self.url, "1", self.program_start, &extra)
    }

    /// Starts `role` (instance 1) with `extra` arguments.
    pub fn start(&mut self, role: &'static str, extra: Vec<String>) -> anyhow::Result<()> {
        let child = self.spawn_child(role, &extra)?;
        self.roles.push(RoleProcess {
            role,
            extra,
            child,
            restarts: 0,
        });
        Ok(())
    }

    /// The first role found to have exited, if any.
    pub fn exited(&mut self) -> Option<Exit> {
        self.roles.iter_mut().find_map(|r| match r.child.try_wait() {
            Ok(Some(status)) => Some(Exit {
                role: r.role,
                status: describe(status),
            }),
            Ok(None) => None,
            Err(e) => Some(Exit {
                role: r.role,
                status: format!("could not be waited for ({e})"),
            }),
        })
    }

    /// Restarts the role of `exit` if it has restarts left, returning the line to log; else the
    /// error that ends the run.
    pub fn restart(&mut self, exit: &Exit) -> anyhow::Result<String> {
        let Some(i) = self.roles.iter().position(|r| r.role == exit.role) else {
            anyhow::bail!("the {} is not supervised", exit.role);
        };
        if self.roles[i].restarts >= MAX_RESTARTS {
            anyhow::bail!(
                "the {} {} again after {} restart{}; the job cannot complete without it",
                exit.role,
                exit.status,
                MAX_RESTARTS,
                if MAX_RESTARTS == 1 { "" } else { "s" }
            );
        }
        let child = self.spawn_child(exit.role, &self.roles[i].extra)?;
        let r = &mut self.roles[i];
        r.child = child;
        r.restarts += 1;
        Ok(format!(
            "the {} {}; restarted it (restart {} of {})",
            exit.role, exit.status, r.restarts, MAX_RESTARTS
        ))
    }

    /// Restarts so far, per role.
    pub fn restarts(&self) -> BTreeMap<String, u32> {
        self.roles
            .iter()
            .map(|r| (r.role.to_string(), r.restarts))
            .collect()
    }

    pub fn children_mut(&mut self) -> impl Iterator<Item = &mut Child> {
        self.roles.iter_mut().map(|r| &mut r.child)
    }
}

/// How a process ended, in words.
fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                2 => " (SIGINT)",
                9 => " (SIGKILL)",
                15 => " (SIGTERM)",
                6 => " (SIGABRT)",
                11 => " (SIGSEGV)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(0) => "exited without being asked to".to_string(),
        Some(code) => format!("exited with code {code}"),
        None => "exited".to_string(),
    }
}
