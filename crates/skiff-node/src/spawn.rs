//! Building a `std::process::Command` for a container process.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::launch::{resolve_executable, StartError, DEFAULT_PATH};

/// How the new process is detached from skiff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detach {
    /// `setsid()`: own session and process group (container main process).
    Session,
    /// `setpgid(0, 0)`: own process group (exec probes/hooks).
    Group,
}

/// Builds the command: resolved executable (with `argv[0]` kept), exactly
/// `env`, `cwd`, stdin from /dev/null, and a pre-exec hook that detaches and
/// joins the tracking cgroup.
pub(crate) fn build_command(
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    join: Option<Arc<File>>,
    detach: Detach,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<Command, StartError> {
    let Some(arg0) = argv.first() else {
        return Err(StartError::ExecutableNotFound {
            name: String::new(),
        });
    };
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(StartError::WorkingDir {
                dir: cwd.display().to_string(),
            })
        }
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    let program = resolve_executable(arg0, path_var, cwd)?;
    let mut cmd = Command::new(program);
    cmd.arg0(arg0)
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    set_pre_exec(&mut cmd, join, detach);
    Ok(cmd)
}

#[allow(unsafe_code)]
fn set_pre_exec(cmd: &mut Command, join: Option<Arc<File>>, detach: Detach) {
    let hook = move || -> std::io::Result<()> {
        match detach {
            Detach::Session => {
                nix::unistd::setsid()?;
            }
            Detach::Group => {
                nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
            }
        }
        if let Some(f) = &join {
            // "0" moves the writing process: join the tracking cgroup before
            // exec, so nothing the container starts can escape it.
            (&**f).write_all(b"0")?;
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec. It only makes
    // raw syscalls (setsid/setpgid, write(2) on an fd opened by the parent and
    // kept alive by the captured Arc); it allocates nothing, takes no locks
    // and touches no state shared with other threads of the parent.
    unsafe {
        cmd.pre_exec(hook);
    }
}
