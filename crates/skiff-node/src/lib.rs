//! skiff-node: the effects layer for the `host` runtime class.
//!
//! No lifecycle policy lives here: the pod worker asks, this crate does it and
//! reports what happened.
//!
//! * [`launch`]: a [`launch::ContainerLaunch`] from a k8s `Container` (env with
//!   `$(VAR)` expansion and `fieldRef`s, expanded command/args, workingDir);
//!   [`spec::StartError`] with the runtime's messages (exit 128).
//! * [`runtime`]: [`runtime::HostRuntime`] starts a container as a process
//!   tree of its own (new session; its own cgroup2 tracking group when root),
//!   stdout/stderr into CRI logs; [`runtime::HostContainer`] signals
//!   (`Term` → main process, `Kill` → whole tree) and reports
//!   [`runtime::ContainerExit`] (exit code or 128+signal, finishedAt, ST4
//!   message). When the main process exits, what it left behind is killed (as
//!   a PID namespace would).
//! * [`reaper`]: the one reaper. skiff is a child subreaper; one thread owns
//!   `waitid`/`waitpid`. **Every child of a process using this crate must be
//!   spawned through [`reaper::Reaper::spawn`]** (no `tokio::process`, no
//!   `std::process::Child::wait`).
//! * [`tracker`]: [`tracker::ProcessTracker`] (cgroup2 `cgroup.kill`, or
//!   process group + env-marker sweep).
//! * [`logs`]: CRI log format, 16 KiB partial lines, rotation (10 MiB × 5),
//!   live fan-out to a subscriber channel that never blocks the container.
//! * [`store`]: what stays of a pod in the data dir (`pod.json`, `summary.json`, the lock
//!   that says it runs) and the bound on finished pods kept.
//! * [`termination`]: termination messages: a file per container instance, bind-mounted at
//!   `terminationMessagePath`, and the kubelet's caps.
//! * [`spec`]: the plain data that crosses modules (a leaf: it imports no other module).
//! * [`sys`]: every `unsafe` of the crate, as small system-call wrappers with their contracts.
//! * [`mountinfo`]: the one `/proc/*/mountinfo` parser. [`machine`]: CPUs, memory, disk.
//! * [`probe`]: [`probe::Prober`] (exec, httpGet incl. HTTPS without
//!   verification, tcpSocket, grpc) and [`probe::HookRunner`] (exec, httpGet,
//!   sleep), implemented by [`probe::HostProber`].
//! * [`cri`]: the runtime seam the pod worker runs on ([`cri::RuntimeService`],
//!   [`cri::ProbeService`], [`cri::RuntimeClasses`]); [`cri::host`] implements it over the
//!   modules above. [`clock`]: the worker's clock. [`adopt`]: an engine rebuilt from the
//!   instances a runtime found (worker and keeper).
pub mod adopt;
pub mod cgroups;
pub mod clock;
pub mod container_view;
pub mod cri;
pub mod exec;
pub(crate) mod fdwalk;
pub mod images;
pub mod isolation;
pub mod keeper;
pub mod launch;
pub mod logs;
pub mod machine;
pub mod manager;
pub mod mountinfo;
mod mountns;
pub mod namespaces;
pub mod node;
pub mod oci;
pub mod probe;
pub mod reaper;
pub mod runtime;
pub mod sandbox;
pub mod security;
mod spawn;
pub mod spec;
pub mod state;
pub mod store;
pub mod sys;
pub mod termination;
pub mod timefmt;
pub mod timeline;
pub mod tracker;
pub mod volumes;
pub mod worker;

// `$(VAR)` expansion is pure and lives in the model; `crate::expand` keeps naming it.
pub use skiff_model::expand;
