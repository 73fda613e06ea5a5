//! The timeline record: plain data, serialised as `skiff timeline -o json` prints it and as
//! the daemon serves it. Times are milliseconds from the pod's first record (`origin`), never
//! decreasing (the recorder clamps a clock that steps back).

use serde::{Deserialize, Serialize};

/// The version of this format (`version` in the JSON).
pub const FORMAT_VERSION: u32 = 1;

/// A pod's life.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub version: u32,
    pub pod: PodRef,
    /// Wall-clock time of t = 0, milliseconds since the Unix epoch.
    pub origin_unix_ms: i64,
    /// The last moment the record covers (the pod's end, or "now" when it was taken).
    pub end_ms: i64,
    /// The pod is over: nothing will be added.
    pub finished: bool,
    /// The spec's containers in the order the spec gives them: init containers (sidecars among
    /// them), then app containers, then ephemeral containers.
    pub containers: Vec<ContainerInfo>,
    /// Every container instance, in the order the engine started them.
    pub instances: Vec<Instance>,
    /// Pod-level marks: phase and condition changes, stop requests, pod events.
    pub pod_marks: Vec<PodMark>,
    /// What the size bounds left out.
    #[serde(default, skip_serializing_if = "Truncation::is_empty")]
    pub truncated: Truncation,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
}

/// What kind of container, as the spec declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// A regular init container (runs to completion, in order).
    Init,
    /// An init container with `restartPolicy: Always` (a native sidecar).
    Sidecar,
    /// A container of `spec.containers`.
    App,
    Ephemeral,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Init => "init",
            ContainerKind::Sidecar => "sidecar",
            ContainerKind::App => "app",
            ContainerKind::Ephemeral => "ephemeral",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Liveness => "liveness",
        }
    }
}

/// A container of the spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    pub name: String,
    pub kind: ContainerKind,
    /// The probes it declares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeKind>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub post_start: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pre_stop: bool,
}

/// One container instance (one runtime record: a start, its run, its end).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub container: String,
    /// The engine's instance number (unique within the pod).
    pub id: u64,
    /// Its restartCount (0 for the first instance of a container).
    pub attempt: i32,
    /// When the engine decided to start it.
    pub requested_ms: i64,
    /// What it waited for before it could start (first instances; restarts wait for back-off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// Pulling its image (only when a pull happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull: Option<Span>,
    /// When its process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// The start failed (waiting reason and the step's message); the last failure when it
    /// was tried several times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_failure: Option<Failure>,
    /// Starts tried for this row: a start that failed before any process ran (an image pull,
    /// a config error) is tried again as a new runtime instance, recorded on the same row.
    #[serde(default = "one", skip_serializing_if = "is_one_or_less")]
    pub start_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Hook>,
    /// Probe runs: consecutive passes of one probe merged into a span, every failure kept
    /// (once an instance holds the recorder's maximum of spans, later runs of a probe are
    /// counted into its last span, whatever their outcome, and `truncated.probeSpans` says
    /// how many failures lost their own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeSpan>,
    /// When its startup probe first passed (the container counts as started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_passed_ms: Option<i64>,
    /// Readiness changes, as the pod status shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready: Vec<Flip>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Hook>,
    /// SIGTERM (the stop signal) and SIGKILL, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SignalMark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    /// The restart back-off that followed this instance (CrashLoopBackOff), until the next
    /// instance was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Span>,
    /// Warnings about this instance not shown otherwise (a failed hook's event, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

impl Instance {
    /// When the instance stopped running: its exit, else a start that failed (and was not
    /// followed by a successful retry).
    pub fn ended_ms(&self) -> Option<i64> {
        self.exit.as_ref().map(|e| e.at_ms).or(self
            .start_failure
            .as_ref()
            .filter(|_| self.started_ms.is_none())
            .map(|f| f.at_ms))
    }
}

fn is_one_or_less(n: &u32) -> bool {
    *n <= 1
}

fn one() -> u32 {
    1
}

/// A stretch of time; `end_ms` is `None` while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub begin_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
}

/// A lifecycle hook run (postStart, preStop).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub begin_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
    /// `None`: no answer (still running, or the engine stopped waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub at_ms: i64,
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Runs of one probe with one outcome: `runs` results from `first_ms` to `last_ms` (each the
/// time the result came), each taking between `min_took_ms` and `max_took_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpan {
    pub kind: ProbeKind,
    pub ok: bool,
    pub first_ms: i64,
    pub last_ms: i64,
    pub runs: u32,
    pub min_took_ms: i64,
    pub max_took_ms: i64,
    /// The probe's output (of the last failure merged here; passes keep none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flip {
    pub at_ms: i64,
    pub value: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalName {
    /// The container's stop signal (STOPSIGNAL, else SIGTERM).
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGKILL")]
    Kill,
}

impl SignalName {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalName::Term => "SIGTERM",
            SignalName::Kill => "SIGKILL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalMark {
    pub at_ms: i64,
    pub signal: SignalName,
    pub why: Why,
}

/// Why a container was stopped: the engine's reason, refined by what the node knows (which
/// stop request, which node failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Why {
    /// Every app container finished: the pod completes and its sidecars stop (Job-style).
    Completion,
    InitFailed,
    /// The pod was deleted (the API, `kubectl delete`).
    Deletion,
    /// `skiff run --timeout` ran out.
    Timeout,
    /// skiff got SIGINT (Ctrl-C).
    Interrupt,
    /// skiff got SIGTERM.
    Terminate,
    /// A stop requested some other way.
    StopRequested,
    /// A second Ctrl-C, or a stop that overran its bound: SIGKILL at once.
    KillNow,
    /// activeDeadlineSeconds passed.
    Deadline,
    /// The node evicted the pod (an emptyDir over its sizeLimit).
    Eviction,
    /// The pod's sandbox could not be built.
    SandboxFailed,
    Liveness,
    Startup,
    PostStartFailed,
    /// The runtime lost track of the instance.
    Unknown,
    /// Its image (spec) changed: restarted with the new one.
    ImageChange,
    SandboxChanged,
}

impl Why {
    /// A short phrase for people.
    pub fn describe(self) -> &'static str {
        match self {
            Why::Completion => "pod completed",
            Why::InitFailed => "init container failed",
            Why::Deletion => "pod deleted",
            Why::Timeout => "--timeout reached",
            Why::Interrupt => "interrupted (SIGINT)",
            Why::Terminate => "skiff got SIGTERM",
            Why::StopRequested => "stop requested",
            Why::KillNow => "killed at once",
            Why::Deadline => "activeDeadlineSeconds exceeded",
            Why::Eviction => "evicted",
            Why::SandboxFailed => "sandbox failed",
            Why::Liveness => "liveness probe failed",
            Why::Startup => "startup probe failed",
            Why::PostStartFailed => "postStart hook failed",
            Why::Unknown => "container state unknown",
            Why::ImageChange => "image changed",
            Why::SandboxChanged => "pod sandbox changed",
        }
    }

    /// The engine's reason, with `request` for a stop the node asked for and `failure` for a
    /// node failure (what the node told the recorder).
    pub fn from_engine(
        r: skiff_engine::StopReason,
        request: Option<Why>,
        failure: Option<Why>,
    ) -> Why {
        use skiff_engine::StopReason as S;
        match r {
            S::PodCompleted => Why::Completion,
            S::InitFailed => Why::InitFailed,
            S::StopRequested => request.unwrap_or(Why::StopRequested),
            S::KillNow => Why::KillNow,
            S::DeadlineExceeded => Why::Deadline,
            S::NodeFailure => failure.unwrap_or(Why::Eviction),
            S::Liveness => Why::Liveness,
            S::Startup => Why::Startup,
            S::PostStartFailed => Why::PostStartFailed,
            S::Unknown => Why::Unknown,
            S::SpecChanged => Why::ImageChange,
            S::SandboxChanged => Why::SandboxChanged,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exit {
    pub at_ms: i64,
    pub code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `ContainerStatusUnknown`, …
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a first instance waited for: the milestone of the container before it in start order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// The container it waited for.
    pub after: String,
    pub after_kind: ContainerKind,
    /// That container's instance whose milestone opened the gate.
    pub after_instance: u64,
    pub milestone: Milestone,
    /// When the milestone was reached.
    pub at_ms: i64,
}

impl Gate {
    /// "app started after sidecar `proxy` passed its startup probe".
    pub fn describe(&self, container: &str) -> String {
        let what = match self.milestone {
            Milestone::Completed => "completed",
            Milestone::Started => "started",
            Milestone::PostStartDone => "finished its postStart hook",
            Milestone::StartupPassed => "passed its startup probe",
        };
        format!(
            "{container} started after {} `{}` {what}",
            self.after_kind.as_str(),
            self.after
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Milestone {
    /// A regular init container exited 0.
    Completed,
    /// A sidecar without startup probe or postStart hook: its process started.
    Started,
    /// A sidecar's postStart hook returned.
    PostStartDone,
    /// A sidecar's startup probe passed.
    StartupPassed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub at_ms: i64,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMark {
    pub at_ms: i64,
    #[serde(flatten)]
    pub what: PodMarkKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PodMarkKind {
    /// The pod's phase became `phase`.
    Phase { phase: String },
    /// A pod condition changed.
    Condition {
        #[serde(rename = "type")]
        type_: String,
        status: bool,
    },
    /// A stop of the whole pod was asked for (with the grace that applies, in seconds).
    StopRequested {
        why: Why,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_s: Option<i64>,
    },
    /// A pod-level event (DeadlineExceeded, Evicted, SandboxChanged, …).
    Event {
        warning: bool,
        reason: String,
        message: String,
    },
}

/// Counts of what the size bounds dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Truncation {
    /// Instances dropped from the middle of a long restart loop (first and last kept).
    #[serde(default)]
    pub instances: u64,
    /// Probe failures merged into their neighbours once an instance held too many spans.
    #[serde(default)]
    pub probe_spans: u64,
    /// Pod marks and notes dropped.
    #[serde(default)]
    pub marks: u64,
}

impl Truncation {
    pub fn is_empty(&self) -> bool {
        self.instances == 0 && self.probe_spans == 0 && self.marks == 0
    }
}

impl Timeline {
    /// The pod's phase as last recorded (`Pending` before any).
    pub fn phase(&self) -> &str {
        self.pod_marks
            .iter()
            .rev()
            .find_map(|m| match &m.what {
                PodMarkKind::Phase { phase } => Some(phase.as_str()),
                _ => None,
            })
            .unwrap_or("Pending")
    }

    /// The spec entry of `container`.
    pub fn container(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Instances in display order: grouped by container in spec order, each container's
    /// instances by start.
    pub fn rows(&self) -> Vec<&Instance> {
        let mut out = Vec::with_capacity(self.instances.len());
        for c in &self.containers {
            out.extend(self.instances.iter().filter(|i| i.container == c.name));
        }
        // Instances of containers the spec no longer names (never expected) go last.
        out.extend(
            self.instances
                .iter()
                .filter(|i| self.container(&i.container).is_none()),
        );
        out
    }
}
