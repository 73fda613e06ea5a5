//! What to start: a [`ContainerLaunch`] built from a Kubernetes `Container`.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar};

use crate::expand::expand_with_maps;

/// The kubelet's default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// containerd's default `PATH` for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a container could not be started. Every variant maps to a terminated
/// state with reason [`StartError::reason`] and exit code 128, as the kubelet
/// reports a failed `StartContainer`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `command[0]` has no `/` and is not in the container's `PATH`.
    #[error("exec: {name:?}: executable file not found in $PATH")]
    ExecutableNotFound { name: String },
    /// `command[0]` is a path that does not exist.
    #[error("exec: {path:?}: stat {path}: no such file or directory")]
    NoSuchFile { path: String },
    /// `command[0]` exists but cannot be executed.
    #[error("exec: {path:?}: permission denied")]
    PermissionDenied { path: String },
    /// The host runtime has no image config to take an entrypoint from.
    #[error("container {container:?} has no command; runtime class \"host\" needs spec.containers[].command (the image {image:?} is not pulled)")]
    NoCommand { container: String, image: String },
    /// `workingDir` does not exist.
    #[error("chdir to cwd ({dir:?}) set in config.json failed: no such file or directory")]
    WorkingDir { dir: String },
    /// Env references that cannot be resolved (kubelet: CreateContainerConfigError).
    #[error("{0}")]
    Config(String),
    /// Anything else from the OS (creating log files, cgroups, fork).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// Exit code reported for the failed start (the runtime's convention).
    pub fn exit_code(&self) -> i32 {
        128
    }

    /// Terminated-state reason: `CreateContainerConfigError` for unresolved
    /// config, `StartError` otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            StartError::Config(_) => "CreateContainerConfigError",
            _ => "StartError",
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StartError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The pod a container belongs to, as far as a container needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub node_name: Option<String>,
    pub service_account_name: Option<String>,
}

impl PodIdentity {
    /// `<namespace>_<name>_<uid>`, the kubelet's pod log directory name.
    pub fn dir_name(&self) -> String {
        format!("{}_{}_{}", self.namespace, self.name, self.uid)
    }
}

/// `terminationMessagePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TerminationMessagePolicy {
    #[default]
    File,
    FallbackToLogsOnError,
}

/// Everything needed to start one container instance on the host runtime.
#[derive(Debug, Clone)]
pub struct ContainerLaunch {
    pub pod: PodIdentity,
    pub name: String,
    /// Recorded only; the host runtime runs host binaries.
    pub image: String,
    pub restart_count: u32,
    /// Expanded `command` + `args`.
    pub argv: Vec<String>,
    /// The container's env after expansion, in spec order (later duplicates
    /// replace the value in place of the first occurrence).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub termination_message_path: String,
    pub termination_message_policy: TerminationMessagePolicy,
    pub ports: Vec<ContainerPort>,
    /// skiff's data directory (`pods/...` is created under it).
    pub data_dir: PathBuf,
}

impl ContainerLaunch {
    /// Builds the launch from a (defaulted) container spec, resolving env
    /// (`value` with `$(VAR)` expansion, `fieldRef` of the pod identity) and
    /// expanding `command`/`args` with the container's env.
    pub fn from_container(
        c: &Container,
        pod: &PodIdentity,
        data_dir: &Path,
        restart_count: u32,
    ) -> Result<Self, StartError> {
        let env = build_env(c.env.as_deref().unwrap_or(&[]), pod)?;
        let map: HashMap<String, String> = env.iter().cloned().collect();
        let command = c.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err(StartError::NoCommand {
                container: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
            });
        }
        let argv = command
            .iter()
            .chain(c.args.iter().flatten())
            .map(|a| expand_with_maps(a, &[&map]))
            .collect();
        let policy = match c.termination_message_policy.as_deref() {
            Some("FallbackToLogsOnError") => TerminationMessagePolicy::FallbackToLogsOnError,
            _ => TerminationMessagePolicy::File,
        };
        Ok(ContainerLaunch {
            pod: pod.clone(),
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            restart_count,
            argv,
            env,
            working_dir: c
                .working_dir
                .as_ref()
                .filter(|w| !w.is_empty())
                .map(PathBuf::from),
            termination_message_path: c
                .termination_message_path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.to_string()),
            termination_message_policy: policy,
            ports: c.ports.clone().unwrap_or_default(),
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// `<data>/pods/<ns>_<name>_<uid>/<container>/`.
    pub fn container_dir(&self) -> PathBuf {
        self.data_dir
            .join("pods")
            .join(self.pod.dir_name())
            .join(&self.name)
    }

    /// `<container_dir>/<restartCount>.log`.
    pub fn log_path(&self) -> PathBuf {
        self.container_dir()
            .join(format!("{}.log", self.restart_count))
    }
}

/// The kubelet's `makeEnvironmentVariables` for what skiff supports: each
/// `value` is expanded against the variables defined before it; `fieldRef`
/// reads the pod identity; other `valueFrom` sources are a config error for now.
pub fn build_env(vars: &[EnvVar], pod: &PodIdentity) -> Result<Vec<(String, String)>, StartError> {
    let mut order: Vec<String> = Vec::new();
    let mut tmp: HashMap<String, String> = HashMap::new();
    for v in vars {
        let value = match (&v.value, &v.value_from) {
            (Some(val), _) if !val.is_empty() => expand_with_maps(val, &[&tmp]),
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_ref(&f.field_path, pod).ok_or_else(|| {
                        StartError::Config(format!(
                            "unsupported fieldRef {:?} in env {:?}",
                            f.field_path, v.name
                        ))
                    })?
                } else {
                    return Err(StartError::Config(format!(
                        "env {:?}: valueFrom sources other than fieldRef are not supported yet",
                        v.name
                    )));
                }
            }
            _ => String::new(),
        };
        if !tmp.contains_key(&v.name) {
            order.push(v.name.clone());
        }
        tmp.insert(v.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let val = tmp.remove(&k).unwrap_or_default();
            (k, val)
        })
        .collect())
}

fn field_ref(path: &str, pod: &PodIdentity) -> Option<String> {
    Some(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "status.podIP" | "status.podIPs" => pod.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => pod.host_ip.clone().unwrap_or_default(),
        "spec.nodeName" => pod.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => pod.service_account_name.clone().unwrap_or_default(),
        _ => return None,
    })
}

/// Resolves `name` like runc does: a name with `/` is a path (relative to
/// `cwd`), otherwise it is looked up in `path_var`.
pub fn resolve_executable(name: &str, path_var: &str, cwd: &Path) -> Result<PathBuf, StartError> {
    if name.contains('/') {
        let p = cwd.join(name);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(p),
            Ok(_) => Err(StartError::PermissionDenied {
                path: name.to_string(),
            }),
            Err(_) => Err(StartError::NoSuchFile {
                path: name.to_string(),
            }),
        };
    }
    if name.is_empty() {
        return Err(StartError::ExecutableNotFound {
            name: name.to_string(),
        });
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = cwd.join(dir).join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    Err(StartError::ExecutableNotFound {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVarSource, ObjectFieldSelector};

    fn var(n: &str, v: &str) -> EnvVar {
        EnvVar {
            name: n.into(),
            value: Some(v.into()),
            value_from: None,
        }
    }

    fn pod() -> PodIdentity {
        PodIdentity {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u-1".into(),
            pod_ip: Some("10.0.0.5".into()),
            ..Default::default()
        }
    }

    #[test]
    fn env_references_earlier_vars_only() {
        let env = build_env(
            &[
                var("B", "$(A)-b"),
                var("A", "a"),
                var("C", "$(A)-$(B)-$$(A)"),
                EnvVar {
                    name: "NAME".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    }),
                },
                var("IP", "$(NAME)@"),
                var("A", "again"),
            ],
            &pod(),
        )
        .unwrap();
        assert_eq!(
            env,
            vec![
                ("B".to_string(), "$(A)-b".to_string()),
                ("A".to_string(), "again".to_string()),
                ("C".to_string(), "a-$(A)-b-$(A)".to_string()),
                ("NAME".to_string(), "web".to_string()),
                ("IP".to_string(), "web@".to_string()),
            ]
        );
    }

    #[test]
    fn command_and_args_use_all_env() {
        let c = Container {
            name: "app".into(),
            image: Some("busybox".into()),
            command: Some(vec!["echo".into(), "$(LATER)".into()]),
            args: Some(vec!["$(X)".into(), "$$(X)".into(), "$(NOPE)".into()]),
            env: Some(vec![var("X", "x"), var("LATER", "l")]),
            ..Default::default()
        };
        let l = ContainerLaunch::from_container(&c, &pod(), Path::new("/d"), 2).unwrap();
        assert_eq!(l.argv, vec!["echo", "l", "x", "$(X)", "$(NOPE)"]);
        assert_eq!(
            l.log_path(),
            PathBuf::from("/d/pods/default_web_u-1/app/2.log")
        );
        assert_eq!(l.termination_message_path, DEFAULT_TERMINATION_MESSAGE_PATH);
    }

    #[test]
    fn no_command_is_an_error() {
        let c = Container {
            name: "app".into(),
            image: Some("nginx".into()),
            ..Default::default()
        };
        let e = ContainerLaunch::from_container(&c, &pod(), Path::new("/d"), 0).unwrap_err();
        assert!(matches!(e, StartError::NoCommand { .. }));
        assert_eq!(e.exit_code(), 128);
    }

    #[test]
    fn executable_lookup_messages() {
        let e = resolve_executable("nope-skiff-xyz", DEFAULT_PATH, Path::new("/")).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"exec: "nope-skiff-xyz": executable file not found in $PATH"#
        );
        assert_eq!(e.reason(), "StartError");
        let e = resolve_executable("/nope/x", DEFAULT_PATH, Path::new("/")).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"exec: "/nope/x": stat /nope/x: no such file or directory"#
        );
        assert!(resolve_executable("sh", DEFAULT_PATH, Path::new("/")).is_ok());
    }
}
