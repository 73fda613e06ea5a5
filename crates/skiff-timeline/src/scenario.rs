//! A deterministic scenario player: the real lifecycle engine against scripted containers on
//! a simulated clock, recorded as the pod worker records a real pod. The golden tests, the
//! render benchmark and the docs draw timelines of it; nothing here touches the system.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use skiff_engine::{Action, EngineConfig, Input, InstanceId, PodEngine, ProbeKind, Signal, Time};

use crate::model::{Timeline, Why};
use crate::recorder::Recorder;

/// 2024-05-01T12:00:00Z: where every scenario's clock starts.
pub const EPOCH: Time = Time::from_millis(1_714_564_800_000);

/// How one instance of a container behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// How long the process takes to start (create + start).
    pub start_ms: i64,
    /// Exits by itself after this long (from its start) with this code.
    pub exits: Option<(i64, i32)>,
    /// On the stop signal: exits after this long with this code; `None`: ignores it.
    pub on_term: Option<(i64, i32)>,
    /// The postStart hook takes this long.
    pub post_start_ms: i64,
    /// The preStop hook takes this long.
    pub pre_stop_ms: i64,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            start_ms: 5,
            exits: None,
            on_term: Some((50, 143)),
            post_start_ms: 20,
            pre_stop_ms: 100,
        }
    }
}

impl Run {
    /// Runs until stopped.
    pub fn forever() -> Run {
        Run::default()
    }

    /// Exits with `code` after `ms`.
    pub fn exits(ms: i64, code: i32) -> Run {
        Run {
            exits: Some((ms, code)),
            ..Run::default()
        }
    }
}

/// A probe answer: (passes, took ms), from the container, the probe, and the instance's age.
pub type ProbeScript = Box<dyn Fn(&str, ProbeKind, i64) -> (bool, i64)>;

/// A pod, scripts per container and requests from outside, played to the end.
pub struct Scenario {
    pod: Pod,
    scripts: HashMap<String, Vec<Run>>,
    probes: ProbeScript,
    stops: Vec<(i64, Why, Option<i64>)>,
    cfg: EngineConfig,
}

impl Scenario {
    /// `pod_json`: a Pod manifest as JSON (defaulted here).
    pub fn new(pod_json: serde_json::Value) -> Result<Scenario, serde_json::Error> {
        let mut pod: Pod = serde_json::from_value(pod_json)?;
        skiff_model::defaults::default_pod(&mut pod);
        if pod.metadata.uid.is_none() {
            pod.metadata.uid = Some("00000000-0000-4000-8000-000000000001".into());
        }
        Ok(Scenario {
            pod,
            scripts: HashMap::new(),
            probes: Box::new(|_, _, _| (true, 1)),
            stops: Vec::new(),
            cfg: EngineConfig::default(),
        })
    }

    /// The runs of `container`'s instances, in order (the last one repeats).
    pub fn script(mut self, container: &str, runs: Vec<Run>) -> Self {
        self.scripts.insert(container.to_string(), runs);
        self
    }

    pub fn probes(mut self, f: impl Fn(&str, ProbeKind, i64) -> (bool, i64) + 'static) -> Self {
        self.probes = Box::new(f);
        self
    }

    /// The node asks the pod to stop at `at_ms`, for `why`, with `grace` (seconds).
    pub fn stop_at(mut self, at_ms: i64, why: Why, grace: Option<i64>) -> Self {
        self.stops.push((at_ms, why, grace));
        self
    }

    /// Plays the scenario until the pod is over or `limit_ms` has passed; the record then.
    pub fn play(self, limit_ms: i64) -> Timeline {
        Player::new(self).play(limit_ms)
    }
}

struct Live {
    name: String,
    started: Time,
    run: Run,
}

struct Player {
    s: Scenario,
    engine: Option<PodEngine>,
    rec: Recorder,
    now: Time,
    /// Inputs due: (time, sequence) → input.
    queue: BTreeMap<(Time, u64), Input>,
    seq: u64,
    live: HashMap<InstanceId, Live>,
    /// Exits planned per instance (cancelled when an earlier exit comes).
    exits: HashMap<InstanceId, Time>,
    attempts: HashMap<String, usize>,
}

impl Player {
    fn new(s: Scenario) -> Player {
        let engine = PodEngine::new(&s.pod, s.cfg.clone(), EPOCH).ok();
        let rec = Recorder::new(&s.pod, EPOCH);
        Player {
            s,
            engine,
            rec,
            now: EPOCH,
            queue: BTreeMap::new(),
            seq: 0,
            live: HashMap::new(),
            exits: HashMap::new(),
            attempts: HashMap::new(),
        }
    }

    fn push(&mut self, at: Time, input: Input) {
        self.seq += 1;
        self.queue.insert((at, self.seq), input);
    }

    fn feed(&mut self, input: Input) {
        self.rec.input(&input, self.now);
        if let Some(e) = self.engine.as_mut() {
            e.handle(input, self.now);
        }
    }

    fn play(mut self, limit_ms: i64) -> Timeline {
        let limit = EPOCH.add_millis(limit_ms);
        let mut stops = std::mem::take(&mut self.s.stops);
        stops.sort_by_key(|s| s.0);
        let mut stops = stops.into_iter().peekable();
        let mut last_status = None;
        while let Some(engine) = self.engine.as_mut() {
            let actions = engine.plan(self.now);
            let status = engine.status(self.now);
            let terminal = engine.is_terminal();
            let wake = engine.wake_at();
            for a in actions {
                self.rec.action(&a, self.now);
                self.carry_out(a);
            }
            if last_status.as_ref() != Some(&status) {
                self.rec.status(&status, self.now);
                last_status = Some(status);
            }
            if terminal && self.live.is_empty() {
                break;
            }
            let next_input = self.queue.keys().next().map(|k| k.0);
            let next_stop = stops.peek().map(|s| EPOCH.add_millis(s.0));
            let next = [next_input, next_stop, wake].into_iter().flatten().min();
            let Some(next) = next else { break };
            if next > limit {
                self.now = limit;
                break;
            }
            self.now = next.max(self.now);
            if next_stop.is_some_and(|t| t <= self.now) {
                if let Some((_, why, grace)) = stops.next() {
                    self.rec.stop_requested(why, grace, self.now);
                    let input = if why == Why::KillNow {
                        Input::KillNow
                    } else {
                        Input::StopRequested { grace }
                    };
                    self.feed(input);
                }
                continue;
            }
            if next_input.is_some_and(|t| t <= self.now) {
                if let Some(((_, _), input)) = self.queue.pop_first() {
                    if let Input::ContainerExited { instance, .. } = &input {
                        if self.live.remove(instance).is_none() {
                            continue; // already exited
                        }
                        self.exits.remove(instance);
                    }
                    self.feed(input);
                }
                continue;
            }
            self.feed(Input::Tick);
        }
        let now = self.now;
        self.rec.finish(now).clone()
    }

    fn exit_at(&mut self, instance: InstanceId, at: Time, code: i32) {
        if self.exits.get(&instance).is_some_and(|t| *t <= at) {
            return;
        }
        let Some(name) = self.live.get(&instance).map(|l| l.name.clone()) else {
            return;
        };
        self.exits.insert(instance, at);
        // An earlier planned exit of the same instance goes (the new one is sooner).
        self.queue.retain(
            |_, i| !matches!(i, Input::ContainerExited { instance: x, .. } if *x == instance),
        );
        self.push(
            at,
            Input::ContainerExited {
                name,
                instance,
                exit_code: code,
                reason: None,
                message: None,
                at,
            },
        );
    }

    fn carry_out(&mut self, a: Action) {
        let now = self.now;
        match a {
            Action::CreateSandbox => self.push(now.add_millis(10), Input::SandboxReady),
            Action::StartContainer {
                name,
                instance,
                post_start,
                ..
            } => {
                let n = self.attempts.entry(name.clone()).or_insert(0);
                let runs = self.s.scripts.get(&name);
                let run = runs
                    .and_then(|r| r.get(*n).or(r.last()).copied())
                    .unwrap_or_default();
                *n += 1;
                let started = now.add_millis(run.start_ms);
                self.live.insert(
                    instance,
                    Live {
                        name: name.clone(),
                        started,
                        run,
                    },
                );
                self.push(
                    started,
                    Input::ContainerStarted {
                        name: name.clone(),
                        instance,
                        at: started,
                    },
                );
                if post_start.is_some() {
                    self.push(
                        started.add_millis(run.post_start_ms),
                        Input::PostStartDone {
                            name: name.clone(),
                            instance,
                            ok: true,
                            message: String::new(),
                        },
                    );
                }
                if let Some((after, code)) = run.exits {
                    self.exit_at(instance, started.add_millis(after), code);
                }
            }
            Action::RunProbe {
                name,
                instance,
                kind,
                ..
            } => {
                let Some(l) = self.live.get(&instance) else {
                    self.push(
                        now,
                        Input::ProbeTargetGone {
                            name,
                            instance,
                            kind,
                        },
                    );
                    return;
                };
                let age = now.millis_since(l.started);
                let (ok, took) = (self.s.probes)(&name, kind, age);
                let output = if ok {
                    String::new()
                } else {
                    format!("{} probe of {name} failed", kind_word(kind))
                };
                self.push(
                    now.add_millis(took.max(0)),
                    Input::ProbeResult {
                        name,
                        instance,
                        kind,
                        ok,
                        output,
                    },
                );
            }
            Action::RunPreStop { name, instance, .. } => {
                let d = self.live.get(&instance).map_or(0, |l| l.run.pre_stop_ms);
                self.push(
                    now.add_millis(d),
                    Input::PreStopDone {
                        name,
                        instance,
                        ok: true,
                    },
                );
            }
            Action::Signal {
                instance, signal, ..
            } => match signal {
                Signal::Term => {
                    if let Some((d, code)) = self.live.get(&instance).and_then(|l| l.run.on_term) {
                        self.exit_at(instance, now.add_millis(d), code);
                    }
                }
                Signal::Kill => self.exit_at(instance, now, 137),
            },
            Action::StopSandbox | Action::Event(_) => {}
        }
    }
}

fn kind_word(k: ProbeKind) -> &'static str {
    match k {
        ProbeKind::Startup => "startup",
        ProbeKind::Readiness => "readiness",
        ProbeKind::Liveness => "liveness",
    }
}

/// The scenarios the golden tests draw (and the docs show), by name.
pub mod library {
    use serde_json::json;

    use super::{Run, Scenario};
    use crate::model::{Timeline, Why};
    use skiff_engine::ProbeKind;

    fn exec_probe(period: i32, failures: i32) -> serde_json::Value {
        json!({"exec": {"command": ["true"]}, "periodSeconds": period, "failureThreshold": failures})
    }

    fn pod(name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    /// An init chain, a sidecar gated by its startup probe, and the app.
    pub fn init_sidecar_app() -> Timeline {
        let spec = json!({
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "migrate", "image": "busybox"},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                 "startupProbe": exec_probe(1, 30), "readinessProbe": exec_probe(5, 3)},
            ],
            "containers": [{"name": "app", "image": "app"}],
        });
        Scenario::new(pod("web", spec))
            .map(|s| {
                s.script("migrate", vec![Run::exits(1200, 0)])
                    .script("app", vec![Run::exits(6000, 0)])
                    .probes(|c, k, age| match (c, k) {
                        ("proxy", ProbeKind::Startup) => (age >= 2500, 3),
                        _ => (true, 2),
                    })
                    .play(120_000)
            })
            .unwrap_or_default()
    }

    /// A sidecar that crashes over and over while the app runs: restarts with back-off.
    pub fn sidecar_crash_loop() -> Timeline {
        let spec = json!({
            "restartPolicy": "Always",
            "initContainers": [{"name": "logship", "image": "fluent-bit", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "app"}],
        });
        Scenario::new(pod("crashy", spec))
            .map(|s| {
                s.script("logship", vec![Run::exits(3000, 1)])
                    .stop_at(100_000, Why::Deletion, None)
                    .play(300_000)
            })
            .unwrap_or_default()
    }

    /// A Job-style pod: the app finishes, the sidecars stop in reverse order, one with a
    /// preStop hook.
    pub fn job_completion() -> Timeline {
        let spec = json!({
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "vault", "image": "vault", "restartPolicy": "Always"},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                 "lifecycle": {"preStop": {"exec": {"command": ["drain"]}}}},
            ],
            "containers": [{"name": "job", "image": "batch"}],
        });
        Scenario::new(pod("batch-x7k2p", spec))
            .map(|s| {
                s.script("job", vec![Run::exits(4000, 0)])
                    .script(
                        "proxy",
                        vec![Run {
                            pre_stop_ms: 1500,
                            on_term: Some((300, 0)),
                            ..Run::default()
                        }],
                    )
                    .script(
                        "vault",
                        vec![Run {
                            on_term: Some((200, 0)),
                            ..Run::default()
                        }],
                    )
                    .play(120_000)
            })
            .unwrap_or_default()
    }

    /// A liveness probe fails three times: the app is killed and restarted.
    pub fn liveness_kill() -> Timeline {
        let spec = json!({
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "api", "image": "api",
                            "livenessProbe": exec_probe(2, 3)}],
        });
        Scenario::new(pod("api-0", spec))
            .map(|s| {
                s.script(
                    "api",
                    vec![
                        Run {
                            on_term: None,
                            ..Run::default()
                        },
                        Run::forever(),
                    ],
                )
                .probes(|_, _, age| (age < 9000, 4))
                .stop_at(26_000, Why::Deletion, None)
                .play(120_000)
            })
            .unwrap_or_default()
    }

    /// `skiff run --timeout`: the app does not stop on SIGTERM, SIGKILL after the grace.
    pub fn timeout_stop() -> Timeline {
        let spec = json!({
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 3,
            "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "app",
                            "readinessProbe": exec_probe(1, 1)}],
        });
        Scenario::new(pod("slow", spec))
            .map(|s| {
                s.script(
                    "app",
                    vec![Run {
                        on_term: None,
                        ..Run::default()
                    }],
                )
                .stop_at(10_000, Why::Timeout, Some(3))
                .play(120_000)
            })
            .unwrap_or_default()
    }

    /// A day of a pod with five containers (two sidecars, three apps) and 10 s probes: the
    /// render benchmark's input.
    pub fn day_long(hours: i64) -> Timeline {
        let probe = |p: i32| json!({"exec": {"command": ["true"]}, "periodSeconds": p});
        let spec = json!({
            "restartPolicy": "Always",
            "initContainers": [
                {"name": "mesh", "image": "envoy", "restartPolicy": "Always",
                 "startupProbe": probe(10), "readinessProbe": probe(10), "livenessProbe": probe(10)},
                {"name": "logs", "image": "fluent-bit", "restartPolicy": "Always",
                 "readinessProbe": probe(10)},
            ],
            "containers": [
                {"name": "web", "image": "web", "readinessProbe": probe(10), "livenessProbe": probe(10)},
                {"name": "worker", "image": "worker", "livenessProbe": probe(10)},
                {"name": "cron", "image": "cron", "readinessProbe": probe(10)},
            ],
        });
        let end = hours * 3_600_000;
        Scenario::new(pod("daylong", spec))
            .map(|s| {
                // A flaky hour: readiness of web fails for a while every 3 hours.
                s.probes(|c, k, age| {
                    let flaky =
                        c == "web" && k == ProbeKind::Readiness && (age / 600_000) % 18 == 5;
                    (!flaky, 3)
                })
                .script("cron", vec![Run::exits(3_600_000, 0)])
                .stop_at(end - 60_000, Why::Deletion, None)
                .play(end)
            })
            .unwrap_or_default()
    }
}
