//! What to start: a [`ContainerLaunch`] built from a Kubernetes `Container`.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod};

use crate::expand::expand_with_maps;
pub use crate::spec::{PodIdentity, StartError, TerminationMessagePolicy};
use crate::volumes::downward::{self, DetectNodeAllocatable, NodeAllocatable};
use crate::volumes::PodObjects;

/// The kubelet's default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// containerd's default `PATH` for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start one container instance on the host runtime.
#[derive(Debug, Clone)]
pub struct ContainerLaunch {
    pub pod: PodIdentity,
    pub name: String,
    /// Recorded only; the host runtime runs host binaries.
    pub image: String,
    pub restart_count: u32,
    /// Expanded `command` + `args` (the host runtime's exec vector).
    pub argv: Vec<String>,
    /// Expanded `command` alone (empty when the spec has none): an OCI runtime merges it with
    /// the image's Entrypoint/Cmd (`oci::config`), which needs command and args apart.
    pub command: Vec<String>,
    /// Expanded `args` alone.
    pub args: Vec<String>,
    /// The container's env after expansion, in spec order (later duplicates
    /// replace the value in place of the first occurrence).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub termination_message_path: String,
    pub termination_message_policy: TerminationMessagePolicy,
    pub ports: Vec<ContainerPort>,
    /// skiff's data directory (`pods/...` is created under it).
    pub data_dir: PathBuf,
    /// Warning events from building the env (reason, message), e.g.
    /// `InvalidEnvironmentVariableNames`.
    pub warnings: Vec<(String, String)>,
    /// The engine's instance number, kept in the runtime's record of the instance (`state`)
    /// so that whoever adopts the pod can map it back; 0 when nobody asked.
    pub instance: u64,
    /// `stdin: true`: the container reads a FIFO (`<restart count>.stdin` in its directory)
    /// that `kubectl attach -i` writes to (host runtime class).
    pub stdin: bool,
}

static NO_OBJECTS: PodObjects = PodObjects {
    config_maps: BTreeMap::new(),
    secrets: BTreeMap::new(),
    cluster: None,
};

/// What env values may come from besides the container spec and the pod identity: the
/// pod's ConfigMaps and Secrets, and the pod itself (labels, annotations, other containers'
/// resources for `resourceFieldRef`).
#[derive(Debug, Clone, Copy)]
pub struct EnvSources<'a> {
    pub objects: &'a PodObjects,
    pub pod: Option<&'a Pod>,
}

impl EnvSources<'static> {
    /// No ConfigMaps, no Secrets, no pod: only `value`s and identity `fieldRef`s resolve.
    pub const NONE: EnvSources<'static> = EnvSources {
        objects: &NO_OBJECTS,
        pod: None,
    };
}

impl ContainerLaunch {
    /// Builds the launch from a (defaulted) container spec, resolving env and envFrom
    /// (see [`build_env`]) and expanding `command`/`args` with the container's env.
    pub fn from_container(
        c: &Container,
        pod: &PodIdentity,
        data_dir: &Path,
        restart_count: u32,
        sources: &EnvSources<'_>,
    ) -> Result<Self, StartError> {
        Self::build(c, pod, data_dir, restart_count, sources, true)
    }

    /// [`from_container`](Self::from_container) for a container run from an image: `command`
    /// may be empty (the image's Entrypoint/Cmd then apply, see `oci::config`).
    pub fn from_container_for_image(
        c: &Container,
        pod: &PodIdentity,
        data_dir: &Path,
        restart_count: u32,
        sources: &EnvSources<'_>,
    ) -> Result<Self, StartError> {
        Self::build(c, pod, data_dir, restart_count, sources, false)
    }

    fn build(
        c: &Container,
        pod: &PodIdentity,
        data_dir: &Path,
        restart_count: u32,
        sources: &EnvSources<'_>,
        needs_command: bool,
    ) -> Result<Self, StartError> {
        let BuiltEnv { env, warnings } = build_env(c, pod, sources, data_dir)?;
        let map: HashMap<String, String> = env.iter().cloned().collect();
        let command = c.command.clone().unwrap_or_default();
        if needs_command && command.is_empty() {
            return Err(StartError::NoCommand {
                container: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
            });
        }
        // Bounded in total: past the exec limit the start fails with E2BIG as on a node.
        let argv = crate::expand::expand_all_with_maps(
            command.iter().chain(c.args.iter().flatten()),
            &[&map],
        );
        // The expansion maps each string to one string: the first `command.len()` are the
        // command.
        let (cmd_part, args_part) = argv.split_at(command.len().min(argv.len()));
        let (command, args) = (cmd_part.to_vec(), args_part.to_vec());
        let policy = match c.termination_message_policy.as_deref() {
            Some("FallbackToLogsOnError") => TerminationMessagePolicy::FallbackToLogsOnError,
            _ => TerminationMessagePolicy::File,
        };
        let launch = ContainerLaunch {
            pod: pod.clone(),
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            restart_count,
            argv,
            command,
            args,
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
            warnings,
            instance: 0,
            stdin: c.stdin == Some(true),
        };
        launch.check_nul()?;
        Ok(launch)
    }

    /// Strings that reach exec(2) or mount(2) cannot hold a NUL byte: the container can never
    /// start (StartError, like runc's EINVAL), which is reported before anything is created.
    fn check_nul(&self) -> Result<(), StartError> {
        let bad = |what: &'static str| StartError::InvalidArgument {
            path: self.argv.first().cloned().unwrap_or_default(),
            what,
        };
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(bad("command/args"));
        }
        if self
            .env
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(bad("env"));
        }
        if self
            .working_dir
            .as_ref()
            .is_some_and(|w| w.as_os_str().as_encoded_bytes().contains(&0))
        {
            return Err(bad("workingDir"));
        }
        if self.termination_message_path.contains('\0') {
            return Err(bad("terminationMessagePath"));
        }
        Ok(())
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

/// A container's environment and the warnings building it produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltEnv {
    /// In order: envFrom variables (per source, keys sorted), then `env` in spec order; a
    /// later duplicate replaces the value in place of the first occurrence.
    pub env: Vec<(String, String)>,
    /// (reason, message) of Warning events.
    pub warnings: Vec<(String, String)>,
}

/// The kubelet's `makeEnvironmentVariables` (pkg/kubelet/kubelet_pods.go): envFrom first
/// (configMapRef/secretRef with prefix; a missing optional source is skipped), then `env`,
/// which overrides: each `value` is expanded against the variables defined before it
/// (envFrom's included); `valueFrom` reads `fieldRef`, `resourceFieldRef` (missing limits
/// default to the node's allocatable), `configMapKeyRef`, `secretKeyRef` (a missing optional
/// key leaves the variable unset). Errors carry the kubelet's texts and become
/// `CreateContainerConfigError`. No service links (skiff has no Services).
///
/// The current kubelet takes every envFrom key (names are validated relaxed); skiff skips a
/// key that cannot be a variable name at all (empty, `=`, non-printable) with the kubelet's
/// former `InvalidEnvironmentVariableNames` warning, since exec could not pass it.
pub fn build_env(
    c: &Container,
    pod: &PodIdentity,
    sources: &EnvSources<'_>,
    data_dir: &Path,
) -> Result<BuiltEnv, StartError> {
    let ns = &pod.namespace;
    let objects = sources.objects;
    let mut order: Vec<String> = Vec::new();
    let mut tmp: HashMap<String, String> = HashMap::new();
    let mut warnings = Vec::new();
    // Bytes of `NAME=value\0` held, bounded by what an exec can carry: `$(VAR)` doubling or
    // repeated `envFrom` would otherwise build gigabytes (issue 7 item 4). Such a container
    // could not start on a node either (E2BIG); here it is a config error, before allocation.
    let mut held = 0usize;
    let set = |order: &mut Vec<String>,
               tmp: &mut HashMap<String, String>,
               held: &mut usize,
               k: String,
               v: String|
     -> Result<(), StartError> {
        match tmp.get(&k) {
            Some(old) => *held -= k.len() + old.len() + 2,
            None => order.push(k.clone()),
        }
        *held += k.len() + v.len() + 2;
        if *held > crate::expand::MAX_EXEC_BYTES {
            return Err(StartError::Config(format!(
                "the environment exceeds {} bytes at {k:?}: argument list too long",
                crate::expand::MAX_EXEC_BYTES
            )));
        }
        tmp.insert(k, v);
        Ok(())
    };

    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let (kind, name, data): (&str, &str, BTreeMap<String, String>) = if let Some(r) =
            &from.config_map_ref
        {
            match objects.config_maps.get(&r.name) {
                Some(cm) => ("configMap", &r.name, cm.data.clone().unwrap_or_default()),
                None if r.optional == Some(true) => continue,
                None => {
                    return Err(StartError::Config(format!(
                        "configmap {:?} not found",
                        r.name
                    )))
                }
            }
        } else if let Some(r) = &from.secret_ref {
            match objects.secrets.get(&r.name) {
                Some(s) => (
                    "secret",
                    &r.name,
                    crate::volumes::secret_data(s)
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                        .collect(),
                ),
                None if r.optional == Some(true) => continue,
                None => return Err(StartError::Config(format!("secret {:?} not found", r.name))),
            }
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (k, v) in data {
            let key = format!("{prefix}{k}");
            if !skiff_model::validation::names::is_relaxed_env_var_name(&key).is_empty() {
                invalid.push(key);
                continue;
            }
            set(&mut order, &mut tmp, &mut held, key, v)?;
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push((
                "InvalidEnvironmentVariableNames".to_string(),
                format!(
                    "Keys [{}] from the EnvFrom {kind} {ns}/{name} were skipped since they are considered invalid environment variable names.",
                    invalid.join(", ")
                ),
            ));
        }
    }

    for v in c.env.iter().flatten() {
        let value = match (&v.value, &v.value_from) {
            (Some(val), _) if !val.is_empty() => expand_with_maps(val, &[&tmp]),
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_ref(&f.field_path, pod, sources.pod).map_err(StartError::Config)?
                } else if let Some(r) = &from.resource_field_ref {
                    let node = NodeAllocatable::detect(data_dir);
                    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                        None => Some(c),
                        Some(n) => sources.pod.and_then(|p| downward::find_container(p, n)),
                    };
                    let target = target.ok_or_else(|| {
                        StartError::Config(format!(
                            "container {} not found",
                            r.container_name.as_deref().unwrap_or("")
                        ))
                    })?;
                    downward::container_resource_value(r, target, &node)
                        .map_err(StartError::Config)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    let Some(cm) = objects.config_maps.get(&r.name) else {
                        if optional {
                            continue;
                        }
                        return Err(StartError::Config(format!(
                            "configmap {:?} not found",
                            r.name
                        )));
                    };
                    match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(val) => val.clone(),
                        None if optional => continue,
                        None => {
                            return Err(StartError::Config(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            )))
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    let Some(secret) = objects.secrets.get(&r.name) else {
                        if optional {
                            continue;
                        }
                        return Err(StartError::Config(format!("secret {:?} not found", r.name)));
                    };
                    match crate::volumes::secret_data(secret).remove(&r.key) {
                        Some(val) => String::from_utf8_lossy(&val).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(StartError::Config(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            )))
                        }
                    }
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        set(&mut order, &mut tmp, &mut held, v.name.clone(), value)?;
    }
    let env = order
        .into_iter()
        .map(|k| {
            let val = tmp.remove(&k).unwrap_or_default();
            (k, val)
        })
        .collect();
    Ok(BuiltEnv { env, warnings })
}

/// `podFieldSelectorRuntimeValue`: the pod's identity, then its metadata.
fn field_ref(path: &str, pod: &PodIdentity, full: Option<&Pod>) -> Result<String, String> {
    Ok(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "status.podIP" | "status.podIPs" => pod.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => pod.host_ip.clone().unwrap_or_default(),
        "spec.nodeName" => pod.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => pod.service_account_name.clone().unwrap_or_default(),
        _ => match full {
            Some(p) => downward::pod_metadata_field(p, path)?,
            None => return Err(format!("unsupported fieldPath: {path}")),
        },
    })
}

/// Resolves `name` like runc does: a name with `/` is a path (relative to `cwd`), otherwise
/// it is looked up in `path_var` — as the container will see its filesystem: `view` maps a
/// path in the container to the host path that will be there once its mounts exist (a
/// command can live in a volume, e.g. a configMap script). Returns the path in the container.
pub fn resolve_executable(
    name: &str,
    path_var: &str,
    cwd: &Path,
    view: &dyn Fn(&Path) -> PathBuf,
) -> Result<PathBuf, StartError> {
    let executable = |p: &Path| {
        std::fs::metadata(view(p)).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = cwd.join(name);
        return match executable(&p) {
            Ok(true) => Ok(p),
            Ok(false) => Err(StartError::PermissionDenied {
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
        if let Ok(true) = executable(&p) {
            return Ok(p);
        }
    }
    Err(StartError::ExecutableNotFound {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
    use skiff_engine::StartFailure;

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
        let c = Container {
            env: Some(vec![
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
            ]),
            ..Default::default()
        };
        let env = build_env(&c, &pod(), &EnvSources::NONE, Path::new("/"))
            .unwrap()
            .env;
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

    fn objects() -> PodObjects {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        let mut o = PodObjects::default();
        o.config_maps.insert(
            "cfg".into(),
            ConfigMap {
                data: Some(
                    [("mode", "fast"), ("1bad=", "x"), ("level", "3")]
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
        );
        o.secrets.insert(
            "sec".into(),
            Secret {
                data: Some(
                    [(
                        "token".to_string(),
                        k8s_openapi::ByteString(b"s3cret".to_vec()),
                    )]
                    .into(),
                ),
                string_data: Some([("user".to_string(), "admin".to_string())].into()),
                ..Default::default()
            },
        );
        o
    }

    fn from(src: EnvVarSource) -> EnvVar {
        EnvVar {
            name: "V".into(),
            value: None,
            value_from: Some(src),
        }
    }

    fn env_of(c: &Container, o: &PodObjects) -> Result<BuiltEnv, StartError> {
        let sources = EnvSources {
            objects: o,
            pod: None,
        };
        build_env(c, &pod(), &sources, Path::new("/"))
    }

    #[test]
    fn env_from_config_maps_and_secrets_with_kubelet_errors() {
        use k8s_openapi::api::core::v1::{
            ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, ResourceFieldSelector,
            SecretEnvSource, SecretKeySelector,
        };
        let o = objects();
        let cm_key = |name: &str, key: &str, optional| {
            from(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: name.into(),
                    key: key.into(),
                    optional,
                }),
                ..Default::default()
            })
        };
        let sec_key = |name: &str, key: &str, optional| {
            from(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: name.into(),
                    key: key.into(),
                    optional,
                }),
                ..Default::default()
            })
        };
        let with_env = |env: Vec<EnvVar>| Container {
            name: "app".into(),
            env: Some(env),
            ..Default::default()
        };
        let ok = |c: &Container| env_of(c, &o).unwrap().env;
        let err = |c: &Container| {
            let e = env_of(c, &o).unwrap_err();
            assert!(matches!(e.failure(), StartFailure::Config { .. }), "{e}");
            e.to_string()
        };

        assert_eq!(
            ok(&with_env(vec![cm_key("cfg", "mode", None)])),
            [("V".to_string(), "fast".to_string())]
        );
        assert_eq!(
            ok(&with_env(vec![sec_key("sec", "token", None)]))[0].1,
            "s3cret"
        );
        assert_eq!(
            ok(&with_env(vec![sec_key("sec", "user", None)]))[0].1,
            "admin"
        );
        assert_eq!(
            err(&with_env(vec![cm_key("nope", "k", None)])),
            "configmap \"nope\" not found"
        );
        assert_eq!(
            err(&with_env(vec![sec_key("nope", "k", None)])),
            "secret \"nope\" not found"
        );
        assert_eq!(
            err(&with_env(vec![cm_key("cfg", "nokey", None)])),
            "couldn't find key nokey in ConfigMap default/cfg"
        );
        assert_eq!(
            err(&with_env(vec![sec_key("sec", "nokey", None)])),
            "couldn't find key nokey in Secret default/sec"
        );
        // Optional: the variable is left out.
        assert!(ok(&with_env(vec![
            cm_key("nope", "k", Some(true)),
            sec_key("sec", "nokey", Some(true))
        ]))
        .is_empty());

        // resourceFieldRef of the container itself.
        let mut c = with_env(vec![from(EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                resource: "limits.memory".into(),
                divisor: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    "1Mi".into(),
                )),
                container_name: None,
            }),
            ..Default::default()
        })]);
        c.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(
                [(
                    "memory".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("128Mi".into()),
                )]
                .into(),
            ),
            ..Default::default()
        });
        assert_eq!(ok(&c)[0].1, "128");

        // envFrom with prefix; env overrides; invalid names skipped with the kubelet's warning.
        let c = Container {
            name: "app".into(),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    prefix: Some("CFG_".into()),
                    secret_ref: None,
                },
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "sec".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "gone".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ]),
            env: Some(vec![
                var("CFG_mode", "override"),
                var("X", "$(CFG_level)-$(user)"),
            ]),
            ..Default::default()
        };
        let built = env_of(&c, &o).unwrap();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            built.env,
            pairs(&[
                ("CFG_level", "3"),
                ("CFG_mode", "override"),
                ("token", "s3cret"),
                ("user", "admin"),
                ("X", "3-admin"),
            ])
        );
        assert_eq!(
            built.warnings,
            pairs(&[(
                "InvalidEnvironmentVariableNames",
                "Keys [CFG_1bad=] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names."
            )])
        );
        let missing = Container {
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "gone".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(err(&missing), "configmap \"gone\" not found");
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
        let l = ContainerLaunch::from_container(&c, &pod(), Path::new("/d"), 2, &EnvSources::NONE)
            .unwrap();
        assert_eq!(l.argv, vec!["echo", "l", "x", "$(X)", "$(NOPE)"]);
        assert_eq!(
            l.log_path(),
            PathBuf::from("/d/pods/default_web_u-1/app/2.log")
        );
        assert_eq!(l.termination_message_path, DEFAULT_TERMINATION_MESSAGE_PATH);
    }

    // Issue 7 item 7: a NUL byte can never reach exec(2): StartError (exit 128), not a config
    // error retried for ever.
    #[test]
    fn nul_bytes_are_a_start_error() {
        let base = Container {
            name: "app".into(),
            command: Some(vec!["/bin/sh".into(), "-c".into(), "true".into()]),
            ..Default::default()
        };
        let launch = |c: &Container| {
            ContainerLaunch::from_container(c, &pod(), Path::new("/d"), 0, &EnvSources::NONE)
        };
        let mut args = base.clone();
        args.args = Some(vec!["a\0b".into()]);
        let mut env = base.clone();
        env.env = Some(vec![var("X", "a\0b")]);
        let mut wd = base.clone();
        wd.working_dir = Some("/tmp\0x".into());
        let mut tmp = base.clone();
        tmp.termination_message_path = Some("/dev/t\0".into());
        for (c, what) in [
            (args, "command/args"),
            (env, "env"),
            (wd, "workingDir"),
            (tmp, "terminationMessagePath"),
        ] {
            let e = launch(&c).unwrap_err();
            assert!(matches!(e.failure(), StartFailure::Run { .. }), "{what}");
            assert_eq!(
                e.to_string(),
                format!("exec: \"/bin/sh\": invalid argument ({what} contains a NUL byte)")
            );
        }
        assert!(launch(&base).is_ok());
    }

    #[test]
    fn no_command_is_an_error() {
        let c = Container {
            name: "app".into(),
            image: Some("nginx".into()),
            ..Default::default()
        };
        let e = ContainerLaunch::from_container(&c, &pod(), Path::new("/d"), 0, &EnvSources::NONE)
            .unwrap_err();
        assert!(matches!(e, StartError::NoCommand { .. }));
        assert!(matches!(e.failure(), StartFailure::Run { .. }));
    }

    #[test]
    fn executable_lookup_messages() {
        let host = |p: &Path| p.to_path_buf();
        let e =
            resolve_executable("nope-skiff-xyz", DEFAULT_PATH, Path::new("/"), &host).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"exec: "nope-skiff-xyz": executable file not found in $PATH"#
        );
        assert_eq!(
            e.failure(),
            StartFailure::Run {
                message: r#"exec: "nope-skiff-xyz": executable file not found in $PATH"#.into()
            }
        );
        let e = resolve_executable("/nope/x", DEFAULT_PATH, Path::new("/"), &host).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"exec: "/nope/x": stat /nope/x: no such file or directory"#
        );
        assert!(resolve_executable("sh", DEFAULT_PATH, Path::new("/"), &host).is_ok());
    }
}
