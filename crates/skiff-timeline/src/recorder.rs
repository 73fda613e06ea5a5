//! The recorder: what the pod worker feeds the engine and what the engine decides, turned into
//! a [`Timeline`]. The worker calls [`Recorder::input`] with every input it hands the engine,
//! [`Recorder::action`] with every action it carries out, and [`Recorder::status`] with every
//! status it publishes, each with the time it happened; nothing here reads a clock.
//!
//! Bounded for pods that run for months: passing probe runs merge into spans, a restart loop
//! keeps its first and last instances, failures and notes are capped (see [`RecorderLimits`]).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use skiff_engine::{Action, Input, Signal, Time};

use crate::model::*;

/// Size bounds of one pod's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecorderLimits {
    /// Instances kept per container: the first `instances_head` and the rest from the end.
    pub instances_per_container: usize,
    pub instances_head: usize,
    /// Probe spans per instance; beyond, a failure merges into the span before it.
    pub probe_spans_per_instance: usize,
    /// Pod marks, and notes per instance.
    pub marks: usize,
    /// Bytes kept of a probe's output, a hook's or an exit's message.
    pub text_bytes: usize,
}

impl Default for RecorderLimits {
    fn default() -> Self {
        RecorderLimits {
            instances_per_container: 64,
            instances_head: 4,
            probe_spans_per_instance: 512,
            marks: 512,
            text_bytes: 512,
        }
    }
}

/// Builds a pod's [`Timeline`] from what its worker sees.
#[derive(Clone, Debug)]
pub struct Recorder {
    tl: Timeline,
    limits: RecorderLimits,
    origin: Time,
    /// The latest time seen (times never go back).
    last_ms: i64,
    /// Where each live instance sits in `tl.instances`.
    index: HashMap<u64, usize>,
    /// Probe runs asked for and not answered: (instance, kind) → asked at.
    probes_pending: HashMap<(u64, ProbeKind), i64>,
    /// The last span per (instance, kind), to extend a run of passes.
    last_span: HashMap<(u64, ProbeKind), usize>,
    /// What the node said the last stop request was.
    stop_why: Option<Why>,
    /// What the node said its failure of the pod was.
    failure_why: Option<Why>,
    phase: Option<String>,
    conditions: HashMap<String, bool>,
    ready: HashMap<String, bool>,
    /// Instances whose postStart hook runs after the start.
    post_start: HashMap<u64, bool>,
}

impl Recorder {
    /// A record for `pod` (defaulted: uid, namespace and spec set) beginning at `origin`.
    pub fn new(pod: &Pod, origin: Time) -> Recorder {
        Recorder::with_limits(pod, origin, RecorderLimits::default())
    }

    pub fn with_limits(pod: &Pod, origin: Time, limits: RecorderLimits) -> Recorder {
        let mut containers = Vec::new();
        if let Some(spec) = pod.spec.as_ref() {
            for c in spec.init_containers.iter().flatten() {
                let kind = if c.restart_policy.as_deref() == Some("Always") {
                    ContainerKind::Sidecar
                } else {
                    ContainerKind::Init
                };
                containers.push(info(c, kind));
            }
            for c in &spec.containers {
                containers.push(info(c, ContainerKind::App));
            }
            for c in spec.ephemeral_containers.iter().flatten() {
                containers.push(ContainerInfo {
                    name: c.name.clone(),
                    kind: ContainerKind::Ephemeral,
                    probes: Vec::new(),
                    post_start: false,
                    pre_stop: false,
                });
            }
        }
        let tl = Timeline {
            version: FORMAT_VERSION,
            pod: PodRef {
                namespace: pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                name: pod.metadata.name.clone().unwrap_or_default(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
            },
            origin_unix_ms: origin.millis(),
            end_ms: 0,
            finished: false,
            containers,
            instances: Vec::new(),
            pod_marks: Vec::new(),
            truncated: Truncation::default(),
        };
        Recorder {
            tl,
            limits,
            origin,
            last_ms: 0,
            index: HashMap::new(),
            probes_pending: HashMap::new(),
            last_span: HashMap::new(),
            stop_why: None,
            failure_why: None,
            phase: None,
            conditions: HashMap::new(),
            ready: HashMap::new(),
            post_start: HashMap::new(),
        }
    }

    /// Goes on with `prior`, the record an earlier node agent kept of `pod` (a daemon that
    /// restarted and adopts the pod's running containers): what it holds stays, what happens
    /// from now on is added. A record of another pod (its uid differs) is not taken.
    pub fn resume(pod: &Pod, prior: Timeline, now: Time) -> Recorder {
        let mut r = Recorder::new(pod, Time::from_millis(prior.origin_unix_ms));
        if prior.pod.uid != r.tl.pod.uid || prior.version != FORMAT_VERSION {
            return Recorder::new(pod, now);
        }
        let containers = std::mem::take(&mut r.tl.containers);
        r.tl = prior;
        r.tl.containers = containers;
        r.tl.finished = false;
        r.last_ms = r.tl.end_ms;
        for (row, i) in r.tl.instances.iter().enumerate() {
            r.index.insert(i.id, row);
            for (n, p) in i.probes.iter().enumerate() {
                r.last_span.insert((i.id, p.kind), n);
            }
            if let Some(f) = i.ready.last() {
                r.ready.insert(i.container.clone(), f.value);
            }
        }
        for m in &r.tl.pod_marks {
            match &m.what {
                PodMarkKind::Phase { phase } => r.phase = Some(phase.clone()),
                PodMarkKind::Condition { type_, status } => {
                    r.conditions.insert(type_.clone(), *status);
                }
                PodMarkKind::StopRequested { why, .. } => r.stop_why = Some(*why),
                PodMarkKind::Event { .. } => {}
            }
        }
        let t = r.at(now);
        r.mark(
            t,
            PodMarkKind::Event {
                warning: false,
                reason: "Adopted".into(),
                message: "the node agent restarted and took the pod's containers over".into(),
            },
        );
        r
    }

    /// The record so far, covering up to `now`.
    pub fn snapshot(&self, now: Time) -> Timeline {
        let mut tl = self.tl.clone();
        tl.end_ms = tl.end_ms.max(self.rel(now));
        tl
    }

    /// The record is complete: the pod is over at `now`.
    pub fn finish(&mut self, now: Time) -> &Timeline {
        let t = self.at(now);
        self.tl.end_ms = t;
        self.tl.finished = true;
        // What was still under way ends with the pod.
        for i in &mut self.tl.instances {
            for s in [i.image_pull.as_mut(), i.backoff.as_mut()]
                .into_iter()
                .flatten()
            {
                s.end_ms.get_or_insert(t);
            }
            for h in [i.post_start.as_mut(), i.pre_stop.as_mut()]
                .into_iter()
                .flatten()
            {
                h.end_ms.get_or_insert(t);
            }
        }
        &self.tl
    }

    /// The record as it stands (its `end_ms` is the last thing recorded).
    pub fn timeline(&self) -> &Timeline {
        &self.tl
    }

    /// The node asked the pod to stop, for `why` (call before feeding the engine the
    /// `StopRequested`/`KillNow` input it makes of it).
    pub fn stop_requested(&mut self, why: Why, grace_s: Option<i64>, now: Time) {
        if self.stop_why.is_none() || why == Why::KillNow {
            self.stop_why = Some(why);
        }
        let t = self.at(now);
        self.mark(t, PodMarkKind::StopRequested { why, grace_s });
    }

    fn rel(&self, now: Time) -> i64 {
        now.millis_since(self.origin).max(self.last_ms)
    }

    /// `now` as an offset, never before the last one recorded.
    fn at(&mut self, now: Time) -> i64 {
        let t = self.rel(now);
        self.last_ms = t;
        self.tl.end_ms = self.tl.end_ms.max(t);
        t
    }

    /// An instance's own time (a process start or exit time the runtime reported), clamped
    /// between the origin and the latest time seen (a start is seen after it happened).
    fn own(&self, at: Time) -> i64 {
        at.millis_since(self.origin).clamp(0, self.last_ms.max(0))
    }

    fn inst(&mut self, id: u64) -> Option<&mut Instance> {
        let i = *self.index.get(&id)?;
        self.tl.instances.get_mut(i)
    }

    fn mark(&mut self, at_ms: i64, what: PodMarkKind) {
        if self.tl.pod_marks.len() >= self.limits.marks {
            self.tl.truncated.marks += 1;
            return;
        }
        self.tl.pod_marks.push(PodMark { at_ms, what });
    }

    fn text(&self, s: &str) -> String {
        bounded(s, self.limits.text_bytes)
    }

    /// An input the worker hands the engine at `now`.
    pub fn input(&mut self, input: &Input, now: Time) {
        let t = self.at(now);
        match input {
            Input::ContainerStarted { instance, at, .. } => {
                let own = self.own(*at);
                let post_start = self.post_start.get(&instance.0).copied().unwrap_or(false);
                if let Some(i) = self.inst(instance.0) {
                    i.started_ms = Some(own.max(i.requested_ms));
                    if post_start {
                        i.post_start = Some(Hook {
                            begin_ms: t,
                            end_ms: None,
                            ok: None,
                            message: None,
                        });
                    }
                }
            }
            Input::ImagePulling { instance, .. } => {
                if let Some(i) = self.inst(instance.0) {
                    // Pulls retried for one row make one span, from the first.
                    let begin_ms = i.image_pull.map_or(t, |p| p.begin_ms);
                    i.image_pull = Some(Span {
                        begin_ms,
                        end_ms: None,
                    });
                }
            }
            Input::ImageReady { instance, .. } => {
                if let Some(p) = self.inst(instance.0).and_then(|i| i.image_pull.as_mut()) {
                    p.end_ms = Some(t);
                }
            }
            Input::StartFailed {
                instance, failure, ..
            } => {
                let message = self.text(failure.message());
                if let Some(i) = self.inst(instance.0) {
                    if let Some(p) = i.image_pull.as_mut() {
                        p.end_ms.get_or_insert(t);
                    }
                    i.start_failure = Some(Failure {
                        at_ms: t,
                        reason: failure.reason().to_string(),
                        message,
                    });
                }
            }
            Input::PostStartDone {
                instance,
                ok,
                message,
                ..
            } => {
                let message = (!message.is_empty()).then(|| self.text(message));
                if let Some(h) = self.inst(instance.0).and_then(|i| i.post_start.as_mut()) {
                    if h.end_ms.is_none() {
                        h.end_ms = Some(t);
                        h.ok = Some(*ok);
                        h.message = message;
                    }
                }
            }
            Input::ContainerExited {
                instance,
                exit_code,
                reason,
                message,
                at,
                ..
            } => {
                let own = self.own(*at);
                let reason = reason.clone().unwrap_or_else(|| {
                    if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .to_string()
                });
                let message = message.as_deref().map(|m| self.text(m));
                if let Some(i) = self.inst(instance.0) {
                    if i.exit.is_none() {
                        let floor = i.started_ms.unwrap_or(i.requested_ms);
                        i.exit = Some(Exit {
                            at_ms: own.max(floor),
                            code: *exit_code,
                            reason,
                            message,
                        });
                    }
                    // A hook the exit cut short ends with it.
                    for h in [i.post_start.as_mut(), i.pre_stop.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        h.end_ms.get_or_insert(t);
                    }
                }
                self.probes_pending.retain(|(id, _), _| *id != instance.0);
            }
            Input::ProbeResult {
                instance,
                kind,
                ok,
                output,
                ..
            } => self.probe_result(instance.0, probe_kind(*kind), *ok, output, t),
            Input::ProbeTargetGone { instance, kind, .. } => {
                self.probes_pending.remove(&(instance.0, probe_kind(*kind)));
            }
            Input::PreStopDone { instance, ok, .. } => {
                if let Some(h) = self.inst(instance.0).and_then(|i| i.pre_stop.as_mut()) {
                    if h.end_ms.is_none() {
                        h.end_ms = Some(t);
                        h.ok = Some(*ok);
                    }
                }
            }
            Input::StopRequested { grace } => {
                // The node said why before (stop_requested); a bare input is a plain request.
                if self.stop_why.is_none() {
                    self.stop_why = Some(Why::StopRequested);
                    self.mark(
                        t,
                        PodMarkKind::StopRequested {
                            why: Why::StopRequested,
                            grace_s: *grace,
                        },
                    );
                }
            }
            Input::KillNow => {
                if self.stop_why != Some(Why::KillNow) {
                    self.stop_why = Some(Why::KillNow);
                    self.mark(
                        t,
                        PodMarkKind::StopRequested {
                            why: Why::KillNow,
                            grace_s: Some(0),
                        },
                    );
                }
            }
            Input::FailPod { failure } => {
                self.failure_why.get_or_insert(match failure {
                    skiff_engine::NodeFailure::Evicted { .. } => Why::Eviction,
                    skiff_engine::NodeFailure::SandboxFailed { .. } => Why::SandboxFailed,
                });
            }
            Input::SandboxReady
            | Input::SandboxLost
            | Input::ContainerObserved { .. }
            | Input::ProbeRestored { .. }
            | Input::Tick => {}
        }
    }

    fn probe_result(&mut self, id: u64, kind: ProbeKind, ok: bool, output: &str, t: i64) {
        let asked = self.probes_pending.remove(&(id, kind)).unwrap_or(t);
        let took = (t - asked).max(0);
        let output = (!ok && !output.is_empty()).then(|| self.text(output));
        let Some(&row) = self.index.get(&id) else {
            return;
        };
        let cap = self.limits.probe_spans_per_instance;
        let key = (id, kind);
        let last = self.last_span.get(&key).copied();
        let Some(inst) = self.tl.instances.get_mut(row) else {
            return;
        };
        if kind == ProbeKind::Startup && ok && inst.startup_passed_ms.is_none() {
            inst.startup_passed_ms = Some(t);
        }
        // Passes extend the last span of passes; a failure is its own span unless the
        // instance is full, when it merges into the span before it.
        let full = inst.probes.len() >= cap;
        let extend = match last.and_then(|l| inst.probes.get(l)) {
            Some(s) => s.ok == ok && (ok || full),
            None => false,
        };
        if extend {
            if let Some(s) = last.and_then(|l| inst.probes.get_mut(l)) {
                s.last_ms = t;
                s.runs = s.runs.saturating_add(1);
                s.min_took_ms = s.min_took_ms.min(took);
                s.max_took_ms = s.max_took_ms.max(took);
                if output.is_some() {
                    s.output = output;
                }
            }
            if full && !ok {
                self.tl.truncated.probe_spans += 1;
            }
            return;
        }
        if full {
            // No room for a new span: count it into the last one of its kind, whatever its
            // outcome (the failure is counted as dropped).
            self.tl.truncated.probe_spans += 1;
            if let Some(s) = last.and_then(|l| inst.probes.get_mut(l)) {
                s.last_ms = t;
                s.runs = s.runs.saturating_add(1);
            }
            return;
        }
        inst.probes.push(ProbeSpan {
            kind,
            ok,
            first_ms: t,
            last_ms: t,
            runs: 1,
            min_took_ms: took,
            max_took_ms: took,
            output,
        });
        let at = inst.probes.len() - 1;
        self.last_span.insert(key, at);
    }

    /// An action the worker carries out at `now`.
    pub fn action(&mut self, action: &Action, now: Time) {
        let t = self.at(now);
        match action {
            Action::StartContainer {
                name,
                instance,
                attempt,
                post_start,
                ..
            } => self.start(name, instance.0, *attempt, post_start.is_some(), t),
            Action::RunProbe { instance, kind, .. } => {
                self.probes_pending
                    .insert((instance.0, probe_kind(*kind)), t);
            }
            Action::RunPreStop { instance, .. } => {
                if let Some(i) = self.inst(instance.0) {
                    i.pre_stop = Some(Hook {
                        begin_ms: t,
                        end_ms: None,
                        ok: None,
                        message: None,
                    });
                }
            }
            Action::Signal {
                instance,
                signal,
                why,
                ..
            } => {
                let why = Why::from_engine(*why, self.stop_why, self.failure_why);
                let signal = match signal {
                    Signal::Term => SignalName::Term,
                    Signal::Kill => SignalName::Kill,
                };
                if let Some(i) = self.inst(instance.0) {
                    // The engine stopped waiting for a preStop that never answered.
                    if let Some(h) = i.pre_stop.as_mut() {
                        h.end_ms.get_or_insert(t);
                    }
                    i.signals.push(SignalMark {
                        at_ms: t,
                        signal,
                        why,
                    });
                }
            }
            Action::Event(e) => self.event(e, t),
            Action::CreateSandbox | Action::StopSandbox => {}
        }
    }

    fn event(&mut self, e: &skiff_engine::Event, t: i64) {
        let warning = e.type_ == skiff_engine::EventType::Warning;
        let Some(container) = e.container.as_deref() else {
            self.mark(
                t,
                PodMarkKind::Event {
                    warning,
                    reason: e.reason.clone(),
                    message: self.text(&e.message),
                },
            );
            return;
        };
        // The latest instance of the container the event is about.
        let Some(row) = self
            .tl
            .instances
            .iter()
            .rposition(|i| i.container == container)
        else {
            return;
        };
        let limit = self.limits.marks;
        let text = format!("{}: {}", e.reason, self.text(&e.message));
        let Some(inst) = self.tl.instances.get_mut(row) else {
            return;
        };
        match e.reason.as_str() {
            // The back-off wait before the next instance: shown as a span.
            "BackOff" if inst.backoff.is_none() => {
                if let Some(end) = inst.ended_ms() {
                    inst.backoff = Some(Span {
                        begin_ms: end.min(t),
                        end_ms: None,
                    });
                }
            }
            "BackOff" => {}
            // Shown by the probe spans, exits and signals themselves.
            "Unhealthy" | "Killing" | "Started" | "Created" | "Pulling" | "Pulled" => {}
            _ if warning => {
                if inst.notes.len() < limit {
                    inst.notes.push(Note { at_ms: t, text });
                } else {
                    self.tl.truncated.marks += 1;
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, name: &str, id: u64, attempt: i32, post_start: bool, t: i64) {
        if self.index.contains_key(&id) {
            return;
        }
        // The wait that ended here: the back-off after the container's last instance.
        if let Some(prev) = self
            .tl
            .instances
            .iter_mut()
            .rev()
            .find(|i| i.container == name)
        {
            if let Some(b) = prev.backoff.as_mut() {
                b.end_ms.get_or_insert(t);
            }
        }
        // A start that failed before anything ran is tried again as a new instance: the same
        // row (same restart count), one more attempt.
        let retry = self
            .tl
            .instances
            .iter()
            .rposition(|i| i.container == name)
            .filter(|&r| {
                self.tl.instances.get(r).is_some_and(|i| {
                    i.attempt == attempt && i.started_ms.is_none() && i.start_failure.is_some()
                })
            });
        if let Some(row) = retry {
            if let Some(i) = self.tl.instances.get_mut(row) {
                let old = i.id;
                i.id = id;
                i.start_attempts = i.start_attempts.max(1).saturating_add(1);
                self.index.remove(&old);
                self.index.insert(id, row);
                self.post_start.remove(&old);
                self.post_start.insert(id, post_start);
            }
            return;
        }
        let first = !self.tl.instances.iter().any(|i| i.container == name);
        let gate = if first { self.gate_for(name) } else { None };
        self.post_start.insert(id, post_start);
        self.tl.instances.push(Instance {
            container: name.to_string(),
            id,
            attempt,
            requested_ms: t,
            gate,
            start_attempts: 1,
            ..Instance::default()
        });
        self.index.insert(id, self.tl.instances.len() - 1);
        self.trim(name);
    }

    /// What the first instance of `name` waited for: the container before it in start order
    /// (S1: init containers one after another, app containers after the last of them) — a
    /// regular init container's completion, a sidecar's startup (its startup probe passing,
    /// else its postStart hook returning, else its process starting).
    fn gate_for(&self, name: &str) -> Option<Gate> {
        let pos = self.tl.containers.iter().position(|c| c.name == name)?;
        let me = self.tl.containers.get(pos)?;
        let prev = match me.kind {
            ContainerKind::Init | ContainerKind::Sidecar => {
                self.tl.containers.get(pos.checked_sub(1)?)?
            }
            ContainerKind::App => self
                .tl
                .containers
                .iter()
                .rfind(|c| matches!(c.kind, ContainerKind::Init | ContainerKind::Sidecar))?,
            ContainerKind::Ephemeral => return None,
        };
        let inst = self
            .tl
            .instances
            .iter()
            .rev()
            .find(|i| i.container == prev.name)?;
        let (milestone, at_ms) = match prev.kind {
            ContainerKind::Init => (Milestone::Completed, inst.exit.as_ref()?.at_ms),
            _ => {
                if let Some(t) = inst.startup_passed_ms {
                    (Milestone::StartupPassed, t)
                } else if let Some(t) = inst.post_start.as_ref().and_then(|h| h.end_ms) {
                    (Milestone::PostStartDone, t)
                } else {
                    (Milestone::Started, inst.started_ms?)
                }
            }
        };
        Some(Gate {
            after: prev.name.clone(),
            after_kind: prev.kind,
            after_instance: inst.id,
            milestone,
            at_ms,
        })
    }

    /// Keeps a restart loop's record bounded: the first instances and the latest ones.
    fn trim(&mut self, name: &str) {
        let rows: Vec<usize> = self
            .tl
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.container == name)
            .map(|(n, _)| n)
            .collect();
        if rows.len() <= self.limits.instances_per_container {
            return;
        }
        let Some(&drop) = rows.get(self.limits.instances_head) else {
            return;
        };
        let gone = self.tl.instances.remove(drop);
        self.tl.truncated.instances += 1;
        self.index.remove(&gone.id);
        for v in self.index.values_mut() {
            if *v > drop {
                *v -= 1;
            }
        }
        self.last_span.retain(|(id, _), _| *id != gone.id);
        self.post_start.remove(&gone.id);
    }

    /// A status the worker publishes at `now`: phase, conditions and readiness changes.
    pub fn status(&mut self, st: &PodStatus, now: Time) {
        let t = self.at(now);
        if let Some(p) = st.phase.as_deref() {
            if self.phase.as_deref() != Some(p) {
                self.phase = Some(p.to_string());
                self.mark(
                    t,
                    PodMarkKind::Phase {
                        phase: p.to_string(),
                    },
                );
            }
        }
        for c in st.conditions.iter().flatten() {
            let status = c.status == "True";
            if self.conditions.get(&c.type_) != Some(&status) {
                self.conditions.insert(c.type_.clone(), status);
                self.mark(
                    t,
                    PodMarkKind::Condition {
                        type_: c.type_.clone(),
                        status,
                    },
                );
            }
        }
        let statuses = st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten());
        let mut flips = Vec::new();
        for cs in statuses {
            // A regular init container reads ready once it completed: not news.
            if self
                .tl
                .container(&cs.name)
                .is_some_and(|c| c.kind == ContainerKind::Init)
            {
                continue;
            }
            let was = self.ready.get(&cs.name).copied().unwrap_or(false);
            if was != cs.ready {
                self.ready.insert(cs.name.clone(), cs.ready);
                flips.push((cs.name.clone(), cs.ready));
            }
        }
        for (name, value) in flips {
            if let Some(i) = self
                .tl
                .instances
                .iter_mut()
                .rev()
                .find(|i| i.container == name)
            {
                i.ready.push(Flip { at_ms: t, value });
            }
        }
    }
}

fn info(c: &k8s_openapi::api::core::v1::Container, kind: ContainerKind) -> ContainerInfo {
    let mut probes = Vec::new();
    if c.startup_probe.is_some() {
        probes.push(ProbeKind::Startup);
    }
    if c.readiness_probe.is_some() {
        probes.push(ProbeKind::Readiness);
    }
    if c.liveness_probe.is_some() {
        probes.push(ProbeKind::Liveness);
    }
    let lifecycle = c.lifecycle.as_ref();
    ContainerInfo {
        name: c.name.clone(),
        kind,
        probes,
        post_start: lifecycle.is_some_and(|l| l.post_start.is_some()),
        pre_stop: lifecycle.is_some_and(|l| l.pre_stop.is_some()),
    }
}

fn probe_kind(k: skiff_engine::ProbeKind) -> ProbeKind {
    match k {
        skiff_engine::ProbeKind::Startup => ProbeKind::Startup,
        skiff_engine::ProbeKind::Readiness => ProbeKind::Readiness,
        skiff_engine::ProbeKind::Liveness => ProbeKind::Liveness,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, with "…" when cut.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
