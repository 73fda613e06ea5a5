//! A simulated clock and a fake runtime that feed the engine's actions back as inputs.
#![allow(dead_code)]

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition, PodStatus};
use serde_json::{json, Value};
use skiff_engine::images::{self, ImageStep};
use skiff_engine::{
    Action, EngineConfig, Event, Input, InstanceId, ObservedState, PodEngine, ProbeKind, PullStats,
    ResolvedImage, Signal, StartFailure, StopReason, Time,
};

/// Simulation epoch: 2023-11-14T22:13:20Z.
pub const T0: Time = Time::from_secs(1_700_000_000);

pub fn at(ms: i64) -> Time {
    T0.add_millis(ms)
}

/// How one container instance behaves.
#[derive(Clone, Debug)]
pub struct Run {
    /// The start fails this way.
    pub start_fail: Option<StartFailure>,
    /// Exits on its own after this many ms with this code.
    pub exit_after: Option<(i64, i32)>,
    /// Reaction to the stop signal: Some((delay ms, exit code)) or None (ignores it).
    pub on_term: Option<(i64, i32)>,
    /// postStart duration and outcome.
    pub post_start: (i64, bool),
    /// preStop duration (None: hangs) and outcome.
    pub pre_stop: (Option<i64>, bool),
    /// Exit reason override (e.g. OOMKilled).
    pub exit_reason: Option<String>,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            start_fail: None,
            exit_after: None,
            on_term: Some((0, 143)),
            post_start: (0, true),
            pre_stop: (Some(0), true),
            exit_reason: None,
        }
    }
}

pub fn forever() -> Run {
    Run::default()
}

/// A start that fails with `failure`.
pub fn fails(failure: StartFailure) -> Run {
    Run {
        start_fail: Some(failure),
        ..Run::default()
    }
}

pub fn run_error(message: &str) -> StartFailure {
    StartFailure::Run {
        message: message.into(),
    }
}

pub fn create_error(message: &str) -> StartFailure {
    StartFailure::Create {
        message: message.into(),
    }
}

pub fn exits(after_ms: i64, code: i32) -> Run {
    Run {
        exit_after: Some((after_ms, code)),
        ..Run::default()
    }
}

pub struct ProbeCall<'a> {
    pub name: &'a str,
    pub kind: ProbeKind,
    pub attempt: i32,
    /// ms since the instance started.
    pub age_ms: i64,
    /// ms since T0.
    pub now_ms: i64,
}

type ProbeFn = Box<dyn FnMut(&ProbeCall) -> (bool, i64)>;

/// The node's images as the pod worker's image step sees them (the worker's part of
/// `EnsureImageExists`, simulated; pulls are instantaneous in simulated time).
#[derive(Clone, Debug, Default)]
pub struct Images {
    /// Images on the node.
    pub present: Vec<String>,
    /// Outcome of each pull of an image, in order (the last repeats): `Ok(size)` or
    /// `Err(message)`. An image without an entry pulls fine (size 1000).
    pub pulls: HashMap<String, Vec<Result<u64, String>>>,
    /// Reported pull and total durations (ms).
    pub stats_ms: (i64, i64),
    /// Images the node cannot name (the lookup says `InvalidImageName`).
    pub invalid: Vec<String>,
    done: HashMap<String, usize>,
}

impl Images {
    pub fn with_present(images: &[&str]) -> Images {
        Images {
            present: images.iter().map(|s| s.to_string()).collect(),
            ..Images::default()
        }
    }

    pub fn pulls(mut self, image: &str, outcomes: Vec<Result<u64, String>>) -> Images {
        self.pulls.insert(image.to_string(), outcomes);
        self
    }

    /// The repo digest the simulated node reports for `image`.
    pub fn id_of(image: &str) -> String {
        let name = images::normalized_name(image).unwrap_or_default();
        let repo = name.rsplit_once(':').map_or(name.as_str(), |(r, _)| r);
        format!("{repo}@sha256:{:064x}", image.len())
    }
}

struct Live {
    name: String,
    attempt: i32,
    started: Time,
    exit: Option<(Time, i32)>,
    run: Run,
}

pub struct Sim {
    pub engine: PodEngine,
    pub now: Time,
    scripts: HashMap<String, Vec<Run>>,
    probe: ProbeFn,
    queue: Vec<(Time, u64, Input)>,
    seq: u64,
    live: HashMap<InstanceId, Live>,
    attempts: HashMap<InstanceId, (String, i32)>,
    /// (ms since T0, line)
    pub log: Vec<(i64, String)>,
    pub events: Vec<(i64, Event)>,
    /// Every preStop and signal with the engine's reason: (ms since T0, "prestop|term|kill
    /// <name>", why).
    pub stops: Vec<(i64, String, StopReason)>,
    /// How long CreateSandbox takes before SandboxReady.
    pub sandbox_delay_ms: i64,
    /// With images: the image step of every start is simulated (else it is skipped, as for a
    /// runtime without images).
    pub images: Option<Images>,
}

impl Sim {
    pub fn new(pod: &Pod) -> Sim {
        Sim::with_config(pod, EngineConfig::default())
    }

    pub fn with_config(pod: &Pod, cfg: EngineConfig) -> Sim {
        let engine = PodEngine::new(pod, cfg, T0).expect("engine");
        Sim {
            engine,
            now: T0,
            scripts: HashMap::new(),
            probe: Box::new(|_| (true, 0)),
            queue: Vec::new(),
            seq: 0,
            live: HashMap::new(),
            attempts: HashMap::new(),
            log: Vec::new(),
            events: Vec::new(),
            stops: Vec::new(),
            sandbox_delay_ms: 0,
            images: None,
        }
    }

    pub fn with_images(mut self, images: Images) -> Self {
        self.images = Some(images);
        self
    }

    /// The worker's image step for one start: `Err` is the failure to report.
    fn image_step(
        &mut self,
        name: &str,
        instance: InstanceId,
        plan: &skiff_engine::ImagePlan,
    ) -> Result<(), StartFailure> {
        let Some(world) = self.images.as_mut() else {
            return Ok(());
        };
        let image = plan.image.clone();
        if world.invalid.contains(&image) {
            return Err(StartFailure::InvalidImageName {
                message: images::invalid_name_message(&image, "invalid reference format"),
            });
        }
        let present = world.present.contains(&image);
        match images::image_step(plan.policy, present) {
            ImageStep::NeverPull => Err(StartFailure::ImageNeverPull {
                message: images::never_pull_message(&image),
            }),
            ImageStep::UsePresent => {
                let now = self.now;
                self.push(
                    now,
                    Input::ImageReady {
                        name: name.into(),
                        instance,
                        image: ResolvedImage {
                            image_id: Images::id_of(&image),
                            pulled: None,
                        },
                    },
                );
                Ok(())
            }
            ImageStep::Pull if plan.pull_backoff => {
                self.note(format!("pull-backoff {name}"));
                Err(StartFailure::ImagePullBackOff)
            }
            ImageStep::Pull => {
                let n = world.done.entry(image.clone()).or_insert(0);
                let outcome = world
                    .pulls
                    .get(&image)
                    .and_then(|o| o.get((*n).min(o.len().saturating_sub(1))).cloned())
                    .unwrap_or(Ok(1000));
                *n += 1;
                let (pull_ms, total_ms) = world.stats_ms;
                if outcome.is_ok() {
                    world.present.push(image.clone());
                }
                let now = self.now;
                self.push(
                    now,
                    Input::ImagePulling {
                        name: name.into(),
                        instance,
                    },
                );
                match outcome {
                    Ok(size) => {
                        self.note(format!("pull {name}"));
                        self.push(
                            now,
                            Input::ImageReady {
                                name: name.into(),
                                instance,
                                image: ResolvedImage {
                                    image_id: Images::id_of(&image),
                                    pulled: Some(PullStats {
                                        pull_ms,
                                        total_ms,
                                        size,
                                    }),
                                },
                            },
                        );
                        Ok(())
                    }
                    Err(message) => {
                        self.note(format!("pullfail {name}"));
                        Err(StartFailure::ImagePull { message })
                    }
                }
            }
        }
    }

    /// Behaviour per attempt; the last entry repeats.
    pub fn script(mut self, name: &str, runs: Vec<Run>) -> Self {
        self.scripts.insert(name.to_string(), runs);
        self
    }

    pub fn probes(mut self, f: impl FnMut(&ProbeCall) -> (bool, i64) + 'static) -> Self {
        self.probe = Box::new(f);
        self
    }

    /// Schedules an external input at `ms` since T0.
    pub fn input_at(&mut self, ms: i64, input: Input) {
        self.push(at(ms), input);
    }

    /// A running record the engine did not start (daemon re-adoption): reported with
    /// `ContainerStarted` at `ms`, reacting to signals per `run`.
    pub fn adopt_running_at(&mut self, ms: i64, name: &str, instance: InstanceId, run: Run) {
        self.live_record(ms, name, instance, 0, run);
        self.input_at(
            ms,
            Input::ContainerStarted {
                name: name.into(),
                instance,
                at: at(ms),
            },
        );
    }

    /// A record in Created/Unknown state reported at `ms`. An Unknown one may still run, so it
    /// reacts to signals per `run`; a Created one does not run.
    pub fn observe_at(
        &mut self,
        ms: i64,
        name: &str,
        instance: InstanceId,
        state: ObservedState,
        attempt: Option<i32>,
        run: Run,
    ) {
        if state == ObservedState::Unknown {
            self.live_record(ms, name, instance, attempt.unwrap_or(0), run);
        }
        self.input_at(
            ms,
            Input::ContainerObserved {
                name: name.into(),
                instance,
                state,
                attempt,
            },
        );
    }

    fn live_record(&mut self, ms: i64, name: &str, instance: InstanceId, attempt: i32, run: Run) {
        self.live.insert(
            instance,
            Live {
                name: name.into(),
                attempt,
                started: at(ms),
                exit: None,
                run: Run {
                    exit_after: None,
                    ..run
                },
            },
        );
    }

    fn push(&mut self, t: Time, input: Input) {
        self.seq += 1;
        self.queue.push((t, self.seq, input));
    }

    fn rel(&self) -> i64 {
        self.now.millis_since(T0)
    }

    fn note(&mut self, line: String) {
        let t = self.rel();
        self.log.push((t, line));
    }

    fn run_for(&self, name: &str, attempt: i32) -> Run {
        let runs = self.scripts.get(name).cloned().unwrap_or_default();
        if runs.is_empty() {
            return Run::default();
        }
        let i = (attempt as usize).min(runs.len() - 1);
        runs[i].clone()
    }

    fn plan_exit(&mut self, id: InstanceId, t: Time, code: i32) {
        if let Some(l) = self.live.get_mut(&id) {
            if l.exit.is_none_or(|(old, _)| t < old) {
                l.exit = Some((t, code));
            }
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::CreateSandbox => {
                    self.note("sandbox".into());
                    self.push(
                        self.now.add_millis(self.sandbox_delay_ms),
                        Input::SandboxReady,
                    );
                }
                Action::StopSandbox => self.note("stop-sandbox".into()),
                Action::StartContainer {
                    name,
                    instance,
                    attempt,
                    post_start,
                    image,
                    ..
                } => {
                    if let Err(failure) = self.image_step(&name, instance, &image) {
                        self.attempts.insert(instance, (name.clone(), attempt));
                        let now = self.now;
                        self.push(
                            now,
                            Input::StartFailed {
                                name,
                                instance,
                                failure,
                            },
                        );
                        continue;
                    }
                    let run = self.run_for(&name, attempt);
                    self.attempts.insert(instance, (name.clone(), attempt));
                    if let Some(failure) = run.start_fail.clone() {
                        self.note(format!("startfail {name}#{attempt}"));
                        self.push(
                            self.now,
                            Input::StartFailed {
                                name,
                                instance,
                                failure,
                            },
                        );
                        continue;
                    }
                    self.note(format!("start {name}#{attempt}"));
                    self.push(
                        self.now,
                        Input::ContainerStarted {
                            name: name.clone(),
                            instance,
                            at: self.now,
                        },
                    );
                    if post_start.is_some() {
                        let (d, ok) = run.post_start;
                        self.push(
                            self.now.add_millis(d),
                            Input::PostStartDone {
                                name: name.clone(),
                                instance,
                                ok,
                                message: "hook".into(),
                            },
                        );
                    }
                    let exit = run.exit_after.map(|(d, c)| (self.now.add_millis(d), c));
                    self.live.insert(
                        instance,
                        Live {
                            name,
                            attempt,
                            started: self.now,
                            exit,
                            run,
                        },
                    );
                }
                Action::RunProbe {
                    name,
                    instance,
                    kind,
                    ..
                } => {
                    let (attempt, started) = match self.live.get(&instance) {
                        Some(l) => (l.attempt, l.started),
                        None => (self.attempts.get(&instance).map_or(0, |a| a.1), self.now),
                    };
                    let call = ProbeCall {
                        name: &name,
                        kind,
                        attempt,
                        age_ms: self.now.millis_since(started),
                        now_ms: self.rel(),
                    };
                    let (ok, latency) = (self.probe)(&call);
                    self.note(format!(
                        "probe {name}#{attempt} {kind:?} {}",
                        if ok { "ok" } else { "fail" }
                    ));
                    self.push(
                        self.now.add_millis(latency),
                        Input::ProbeResult {
                            name,
                            instance,
                            kind,
                            ok,
                            output: if ok { String::new() } else { "boom".into() },
                        },
                    );
                }
                Action::RunPreStop {
                    name,
                    instance,
                    why,
                    ..
                } => {
                    let t = self.rel();
                    self.stops.push((t, format!("prestop {name}"), why));
                    self.note(format!("prestop {name}"));
                    if let Some(l) = self.live.get(&instance) {
                        if let (Some(d), ok) = l.run.pre_stop {
                            self.push(
                                self.now.add_millis(d),
                                Input::PreStopDone { name, instance, ok },
                            );
                        }
                    }
                }
                Action::Signal {
                    name,
                    instance,
                    signal,
                    why,
                } => match signal {
                    Signal::Term => {
                        let t = self.rel();
                        self.stops.push((t, format!("term {name}"), why));
                        self.note(format!("term {name}"));
                        let on_term = self.live.get(&instance).and_then(|l| l.run.on_term);
                        if let Some((d, code)) = on_term {
                            self.plan_exit(instance, self.now.add_millis(d), code);
                        }
                    }
                    Signal::Kill => {
                        let t = self.rel();
                        self.stops.push((t, format!("kill {name}"), why));
                        self.note(format!("kill {name}"));
                        self.plan_exit(instance, self.now, 137);
                    }
                },
                Action::Event(e) => {
                    self.note(format!("event {} {}", e.reason, e.message));
                    self.events.push((self.rel(), e));
                }
            }
        }
    }

    fn next_input_time(&self) -> Option<Time> {
        let q = self.queue.iter().map(|(t, _, _)| *t).min();
        let e = self
            .live
            .values()
            .filter_map(|l| l.exit.map(|(t, _)| t))
            .min();
        match (q, e) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn deliver_due(&mut self) {
        loop {
            // exits first at equal times is arbitrary; use queue order then exits.
            let mut due: Vec<(Time, u64, Input)> = Vec::new();
            let mut rest = Vec::new();
            for item in self.queue.drain(..) {
                if item.0 <= self.now {
                    due.push(item);
                } else {
                    rest.push(item);
                }
            }
            self.queue = rest;
            due.sort_by_key(|(t, s, _)| (*t, *s));
            let exits: Vec<InstanceId> = self
                .live
                .iter()
                .filter(|(_, l)| l.exit.is_some_and(|(t, _)| t <= self.now))
                .map(|(id, _)| *id)
                .collect();
            if due.is_empty() && exits.is_empty() {
                return;
            }
            for (_, _, input) in due {
                self.engine.handle(input, self.now);
            }
            let mut exits = exits;
            exits.sort();
            for id in exits {
                if let Some(l) = self.live.remove(&id) {
                    let (t, code) = l.exit.unwrap_or((self.now, 0));
                    self.note(format!("exit {}#{} {}", l.name, l.attempt, code));
                    self.engine.handle(
                        Input::ContainerExited {
                            name: l.name,
                            instance: id,
                            exit_code: code,
                            reason: l.run.exit_reason.clone(),
                            message: None,
                            at: t,
                        },
                        self.now,
                    );
                }
            }
        }
    }

    /// Runs until the pod is terminal or `limit_ms` (since T0) is reached.
    pub fn run_until(&mut self, limit_ms: i64) -> &mut Self {
        let limit = at(limit_ms);
        for _ in 0..200_000 {
            self.deliver_due();
            let actions = self.engine.plan(self.now);
            let again = actions.clone();
            self.apply(actions);
            // Idempotence: planning again at once must add nothing.
            let second = self.engine.plan(self.now);
            assert!(
                second.is_empty(),
                "plan not idempotent at {}: {second:?} after {again:?}",
                self.rel()
            );
            if self.engine.is_terminal() {
                return self;
            }
            let next = [self.next_input_time(), self.engine.wake_at()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= limit => {
                    if t > self.now {
                        self.now = t;
                    }
                }
                _ => {
                    self.now = limit.max(self.now);
                    self.deliver_due();
                    let actions = self.engine.plan(self.now);
                    self.apply(actions);
                    return self;
                }
            }
        }
        panic!("simulation did not settle");
    }

    pub fn run(&mut self) -> &mut Self {
        self.run_until(3_600_000)
    }

    pub fn status(&self) -> PodStatus {
        self.engine.status(self.now)
    }

    /// Times (ms since T0) of log lines equal to `line`.
    pub fn times(&self, line: &str) -> Vec<i64> {
        self.log
            .iter()
            .filter(|(_, l)| l == line)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Times of log lines starting with `prefix`.
    pub fn times_prefix(&self, prefix: &str) -> Vec<i64> {
        self.log
            .iter()
            .filter(|(_, l)| l.starts_with(prefix))
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn first(&self, line: &str) -> Option<i64> {
        self.times(line).first().copied()
    }

    /// Index of the first log line equal to `line` (for ordering assertions).
    pub fn pos(&self, line: &str) -> usize {
        self.log
            .iter()
            .position(|(_, l)| l == line)
            .unwrap_or_else(|| panic!("no log line {line:?}\n{}", self.dump()))
    }

    pub fn has(&self, line: &str) -> bool {
        self.log.iter().any(|(_, l)| l == line)
    }

    pub fn dump(&self) -> String {
        self.log
            .iter()
            .map(|(t, l)| format!("{:>9.3} {l}", *t as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn event_messages(&self, reason: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|(_, e)| e.reason == reason)
            .map(|(_, e)| e.message.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Pod builders
// ---------------------------------------------------------------------------------------------

pub fn ctr(name: &str) -> Value {
    json!({"name": name, "image": "busybox:1.36", "command": ["sh", "-c", "true"]})
}

pub fn sidecar(name: &str) -> Value {
    let mut c = ctr(name);
    c["restartPolicy"] = json!("Always");
    c
}

pub fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

pub fn exec_probe(period: i32, failure: i32) -> Value {
    json!({"exec": {"command": ["true"]}, "periodSeconds": period, "failureThreshold": failure})
}

pub fn pre_stop(c: Value) -> Value {
    with(
        c,
        "lifecycle",
        json!({"preStop": {"exec": {"command": ["true"]}}}),
    )
}

pub fn post_start(c: Value) -> Value {
    with(
        c,
        "lifecycle",
        json!({"postStart": {"exec": {"command": ["true"]}}}),
    )
}

pub fn pod(restart_policy: &str, init: Vec<Value>, apps: Vec<Value>) -> Pod {
    pod_with(restart_policy, init, apps, json!({}))
}

pub fn pod_with(restart_policy: &str, init: Vec<Value>, apps: Vec<Value>, extra: Value) -> Pod {
    let mut spec =
        json!({"restartPolicy": restart_policy, "initContainers": init, "containers": apps});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            spec[k] = v;
        }
    }
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
        "spec": spec,
    });
    let mut p: Pod = serde_json::from_value(v).expect("pod json");
    skiff_model::defaults::default_pod(&mut p);
    p
}

// ---------------------------------------------------------------------------------------------
// Status accessors
// ---------------------------------------------------------------------------------------------

pub fn cs<'a>(st: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

pub fn phase(st: &PodStatus) -> &str {
    st.phase.as_deref().unwrap_or("")
}

pub fn condition<'a>(st: &'a PodStatus, type_: &str) -> &'a PodCondition {
    st.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no condition {type_}"))
}

/// "running" / "waiting:<reason>" / "terminated:<reason>:<code>"
pub fn state(c: &ContainerStatus) -> String {
    let s = c.state.as_ref().expect("state");
    if s.running.is_some() {
        "running".into()
    } else if let Some(w) = &s.waiting {
        format!("waiting:{}", w.reason.clone().unwrap_or_default())
    } else if let Some(t) = &s.terminated {
        format!(
            "terminated:{}:{}",
            t.reason.clone().unwrap_or_default(),
            t.exit_code
        )
    } else {
        "none".into()
    }
}

pub fn last_state(c: &ContainerStatus) -> String {
    let s = c.last_state.as_ref();
    match s.and_then(|s| s.terminated.as_ref()) {
        Some(t) => format!(
            "terminated:{}:{}",
            t.reason.clone().unwrap_or_default(),
            t.exit_code
        ),
        None => "none".into(),
    }
}

pub fn waiting_message(c: &ContainerStatus) -> String {
    c.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.message.clone())
        .unwrap_or_default()
}
