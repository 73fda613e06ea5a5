//! Pod and container termination: killContainer with preStop hooks, one grace budget, the
//! 2 s floor and the sidecar ordering of kuberuntime_termination_order.go (T1–T12).

use super::*;

impl PodEngine {
    pub(super) fn begin_termination(
        &mut self,
        cause: TermCause,
        override_s: Option<i64>,
        now: Time,
    ) {
        if let Some(t) = self.term.as_mut() {
            // Already terminating: the grace can only shrink (pod_workers.go calculateEffectiveGracePeriod).
            if let Some(g) = override_s {
                if t.override_s.is_none_or(|o| g < o) {
                    t.override_s = Some(g);
                    self.shrink_kills(g, now);
                }
            }
            return;
        }
        self.term = Some(Termination { cause, override_s });
        // A pending sandbox re-creation (S9) is moot once the pod is torn down.
        self.recreate = None;
        // P11: app liveness/startup workers stop; readiness and sidecar workers keep running.
        for (spec, c) in self.pod.containers.iter().zip(self.ctrs.iter_mut()) {
            if spec.kind == ContainerKind::App {
                for k in [ProbeKind::Liveness, ProbeKind::Startup] {
                    if let Some(w) = c.workers[k.index()].as_mut() {
                        w.stopped = true;
                    }
                }
            }
            c.backoff_until = None;
            c.retry_at = None;
            c.force_restart = None;
        }
        if let Some(g) = override_s {
            self.shrink_kills(g, now);
        }
    }

    /// pod_workers.go UpdatePod: a pod that becomes terminating cancels the sync in progress,
    /// so a postStart hook still running in it fails with the cancelled context (T9's event and
    /// PostStartHookError) and the container is then killed by the pod termination like any
    /// running one — termination never waits for the hook. A late `PostStartDone` is ignored.
    pub(super) fn cancel_post_start(&mut self, i: usize) {
        let c = &self.ctrs[i];
        let Some(p) = c.start else { return };
        if p.phase != StartPhase::PostStart || c.running().is_none_or(|x| x.id != p.instance) {
            return;
        }
        self.ctrs[i].start = None;
        self.ctrs[i].reason_cache = Some(("PostStartHookError".into(), "context canceled".into()));
        let name = self.pod.containers[i].name.clone();
        self.event(
            EventType::Warning,
            "FailedPostStartHook",
            "PostStartHook failed".into(),
            Some(&name),
        );
    }

    /// A smaller pod-level grace applies to kills already under way (measured from now).
    pub(super) fn shrink_kills(&mut self, g: i64, now: Time) {
        let limit = now.add_secs(g);
        for c in &mut self.ctrs {
            let Some(k) = c.kill.as_mut() else { continue };
            let elapsed = now.whole_secs_since(k.began);
            k.grace_s = k.grace_s.min(elapsed + g);
            k.phase = match k.phase {
                KillPhase::PreStop { since, deadline } => KillPhase::PreStop {
                    since,
                    deadline: deadline.min(limit),
                },
                KillPhase::WaitTurn { since, deadline } => KillPhase::WaitTurn {
                    since,
                    deadline: deadline.min(limit),
                },
                KillPhase::Signalled { kill_at, killed } => KillPhase::Signalled {
                    kill_at: kill_at.min(limit),
                    killed,
                },
            };
        }
    }

    /// kuberuntime_manager.go killPodWithSyncResult / killContainersWithSyncResult: every running
    /// container is killed at once; with sidecars, ordering applies (T3, T4).
    pub(super) fn sync_terminating(&mut self, now: Time) {
        let Some(term) = self.term else { return };
        let ordered = self.pod.has_sidecars();
        for i in 0..self.ctrs.len() {
            self.cancel_post_start(i);
        }
        for i in 0..self.ctrs.len() {
            let c = &self.ctrs[i];
            if c.running().is_some() && c.kill.is_none() && c.start.is_none() {
                let grace = term.override_s.unwrap_or(self.pod.tgps);
                let why = term.cause.stop_reason();
                self.begin_kill(i, grace, ordered, None, why, now);
            }
        }
        self.advance_kills(now);
        let busy = self.ctrs.iter().any(|c| c.alive() || c.kill.is_some());
        if busy {
            return;
        }
        if matches!(
            self.sandbox,
            Sandbox::Creating | Sandbox::Ready | Sandbox::Lost
        ) {
            self.pending.push(Action::StopSandbox);
        }
        self.sandbox = Sandbox::Stopped;
        for c in &mut self.ctrs {
            for w in c.workers.iter_mut().flatten() {
                w.stopped = true;
            }
        }
        self.finalize(now);
    }

    /// kuberuntime_container.go killContainer: Killing event, preStop, turn wait, stop.
    pub(super) fn begin_kill(
        &mut self,
        i: usize,
        grace_s: i64,
        ordered: bool,
        message: Option<String>,
        why: StopReason,
        now: Time,
    ) {
        let Some(inst) = self.ctrs[i].killable().map(|x| x.id) else {
            return;
        };
        let spec = &self.pod.containers[i];
        let name = spec.name.clone();
        let pre_stop = spec.pre_stop;
        let msg = message.unwrap_or_else(|| format!("Stopping container {name}"));
        self.event(EventType::Normal, "Killing", msg, Some(&name));
        let mut kill = Kill {
            instance: inst,
            why,
            grace_s,
            ordered,
            began: now,
            phase: KillPhase::Signalled {
                kill_at: now,
                killed: false,
            },
        };
        if self.kill_now {
            self.ctrs[i].kill = Some(kill);
            self.kill_at_once(i, now);
        } else if pre_stop && grace_s > 0 {
            kill.phase = KillPhase::PreStop {
                since: now,
                deadline: now.add_secs(grace_s),
            };
            self.ctrs[i].kill = Some(kill);
            self.pending.push(Action::RunPreStop {
                name,
                instance: inst,
                timeout_ms: grace_s.saturating_mul(1000),
                why,
            });
        } else {
            self.ctrs[i].kill = Some(kill);
            self.after_pre_stop(i, now);
        }
    }

    pub(super) fn finish_pre_stop(&mut self, i: usize, since: Time, now: Time) {
        if let Some(k) = self.ctrs[i].kill.as_mut() {
            // executePreStopHook returns whole seconds elapsed.
            k.grace_s -= now.whole_secs_since(since);
        }
        self.after_pre_stop(i, now);
    }

    pub(super) fn after_pre_stop(&mut self, i: usize, now: Time) {
        let Some(k) = self.ctrs[i].kill.as_mut() else {
            return;
        };
        if k.ordered && k.grace_s > 0 {
            k.phase = KillPhase::WaitTurn {
                since: now,
                deadline: now.add_secs(k.grace_s),
            };
            if self.turn_ready(i) {
                self.signal_term(i, now);
            }
        } else {
            self.signal_term(i, now);
        }
    }

    /// kuberuntime_termination_order.go: a sidecar waits for every app container and for the
    /// nearest sidecar declared after it; containers that are not running count as terminated.
    pub(super) fn turn_ready(&self, i: usize) -> bool {
        if self.pod.containers[i].kind != ContainerKind::Sidecar {
            return true;
        }
        let apps_gone = self.pod.apps().all(|j| !self.ctrs[j].alive());
        let next_sidecar = (i + 1..self.pod.n_init)
            .find(|&j| self.pod.containers[j].kind == ContainerKind::Sidecar);
        apps_gone && next_sidecar.is_none_or(|j| !self.ctrs[j].alive())
    }

    pub(super) fn signal_term(&mut self, i: usize, now: Time) {
        let name = self.pod.containers[i].name.clone();
        let Some(k) = self.ctrs[i].kill.as_mut() else {
            return;
        };
        if let KillPhase::WaitTurn { since, .. } = k.phase {
            k.grace_s -= now.whole_secs_since(since);
        }
        k.grace_s = k.grace_s.max(MIN_GRACE_S);
        k.phase = KillPhase::Signalled {
            kill_at: now.add_secs(k.grace_s),
            killed: false,
        };
        let (instance, why) = (k.instance, k.why);
        self.pending.push(Action::Signal {
            name,
            instance,
            signal: Signal::Term,
            why,
        });
    }

    /// [`Input::KillNow`]: the kill of container `i`, whatever phase it is in (preStop, turn
    /// wait, stop signal sent), becomes an immediate SIGKILL. A late `PreStopDone` is then
    /// ignored, as after a preStop deadline.
    pub(super) fn kill_at_once(&mut self, i: usize, now: Time) {
        let name = self.pod.containers[i].name.clone();
        let Some(k) = self.ctrs[i].kill.as_mut() else {
            return;
        };
        if matches!(k.phase, KillPhase::Signalled { killed: true, .. }) {
            return;
        }
        k.phase = KillPhase::Signalled {
            kill_at: now,
            killed: true,
        };
        let instance = k.instance;
        self.pending.push(Action::Signal {
            name,
            instance,
            signal: Signal::Kill,
            why: StopReason::KillNow,
        });
    }

    pub(super) fn advance_kills(&mut self, now: Time) {
        // Each signal can release a waiter only after an exit, so one pass per call suffices.
        for i in 0..self.ctrs.len() {
            let Some(k) = self.ctrs[i].kill else { continue };
            match k.phase {
                KillPhase::PreStop { since, deadline } if now >= deadline => {
                    self.finish_pre_stop(i, since, now)
                }
                KillPhase::WaitTurn { deadline, .. } if now >= deadline || self.turn_ready(i) => {
                    self.signal_term(i, now)
                }
                KillPhase::Signalled {
                    kill_at,
                    killed: false,
                } if now >= kill_at => {
                    let name = self.pod.containers[i].name.clone();
                    if let Some(k) = self.ctrs[i].kill.as_mut() {
                        k.phase = KillPhase::Signalled {
                            kill_at,
                            killed: true,
                        };
                    }
                    self.pending.push(Action::Signal {
                        name,
                        instance: k.instance,
                        signal: Signal::Kill,
                        why: k.why,
                    });
                }
                _ => {}
            }
        }
    }
}
