//! What to do next: the kubelet's SyncPod / computePodActions / computeInitContainerActions
//! (start order, restarts and back-off, deadlines), one step at a time.

use super::*;

impl PodEngine {
    /// Computes what to do now. Idempotent: a second call with nothing new returns nothing.
    pub fn plan(&mut self, now: Time) -> Vec<Action> {
        if self.final_status.is_none() {
            self.expire_post_starts(now);
            self.check_deadline(now);
            self.advance_kills(now);
            if self.term.is_some() {
                self.sync_terminating(now);
            } else {
                self.sync(now);
            }
            self.advance_kills(now);
            self.plan_probes(now);
            if self.term.is_some() && self.final_status.is_none() {
                // Probe results or exits handled above may have completed termination.
                self.sync_terminating(now);
            }
            self.observe(now);
        }
        std::mem::take(&mut self.pending)
    }

    /// The earliest time at which [`plan`](Self::plan) has something new to do without new input.
    pub fn wake_at(&self) -> Option<Time> {
        if self.final_status.is_some() {
            return None;
        }
        let mut best: Option<Time> = None;
        let mut consider = |t: Time| {
            best = Some(best.map_or(t, |b| b.min(t)));
        };
        if let (Some(ads), None) = (self.pod.active_deadline_s, &self.pod_failure) {
            consider(self.start_time.add_secs(ads));
        }
        for (i, c) in self.ctrs.iter().enumerate() {
            if let Some(d) = c.start.and_then(|p| p.post_start_deadline) {
                consider(d);
            }
            if self.term.is_none() {
                if let Some(t) = c.backoff_until {
                    consider(t);
                }
                if let Some(t) = c.retry_at {
                    consider(t);
                }
            }
            if let Some(k) = c.kill {
                match k.phase {
                    KillPhase::PreStop { deadline, .. } | KillPhase::WaitTurn { deadline, .. } => {
                        consider(deadline)
                    }
                    KillPhase::Signalled {
                        kill_at,
                        killed: false,
                    } => consider(kill_at),
                    KillPhase::Signalled { .. } => {}
                }
            }
            if c.running().is_some() {
                for (k, w) in ProbeKind::ALL.iter().zip(c.workers.iter()) {
                    let Some(w) = w else { continue };
                    if w.stopped || w.in_flight.is_some() || !self.worker_may_probe(i, *k) {
                        continue;
                    }
                    consider(w.next_tick_after(w.last_eval));
                }
            }
        }
        best
    }

    pub(super) fn check_deadline(&mut self, now: Time) {
        let Some(ads) = self.pod.active_deadline_s else {
            return;
        };
        if self.pod_failure.is_some() || now < self.start_time.add_secs(ads) {
            return;
        }
        // T10 (active_deadline.go ShouldEvict: duration >= allowed).
        let message = "Pod was active on the node longer than the specified deadline";
        self.pod_failure = Some(("DeadlineExceeded".into(), message.into()));
        self.event(EventType::Normal, "DeadlineExceeded", message.into(), None);
        self.begin_termination(TermCause::Deadline, None, now);
    }

    /// The node fails the pod (see [`NodeFailure`]): Warning event, phase Failed with the
    /// cause's reason and message, containers killed with the cause's grace. Only the first
    /// failure counts. [pkg/kubelet/eviction/eviction_manager.go evictPod]
    pub(super) fn fail_pod(&mut self, failure: NodeFailure, now: Time) {
        if self.pod_failure.is_some() || self.final_status.is_some() {
            return;
        }
        let (reason, message, grace) = match failure {
            // evictPod: event, then killPodFunc with the override and a status function
            // setting phase Failed, reason Evicted and the message.
            NodeFailure::Evicted { message } => {
                ("Evicted".to_string(), message, Some(EVICTION_GRACE_S))
            }
            NodeFailure::SandboxFailed { reason, message } => (reason, message, None),
        };
        self.event(EventType::Warning, &reason, message.clone(), None);
        self.pod_failure = Some((reason, message));
        self.begin_termination(TermCause::NodeFailure, grace, now);
    }

    /// kuberuntime_manager.go computePodActions + SyncPod, one step at a time: the kubelet's sync
    /// blocks on each start (postStart included) and each kill, so the engine issues nothing new
    /// while one is in flight and recomputes when it finishes.
    pub(super) fn sync(&mut self, now: Time) {
        if self
            .ctrs
            .iter()
            .any(|c| c.start.is_some() || c.kill.is_some())
        {
            return;
        }
        if let Some(stage) = self.recreate {
            self.sync_sandbox_changed(stage, now);
            return;
        }
        match self.sandbox {
            Sandbox::None => {
                self.pending.push(Action::CreateSandbox);
                self.sandbox = Sandbox::Creating;
                return;
            }
            Sandbox::Creating | Sandbox::Stopped | Sandbox::Lost => return,
            Sandbox::Ready => {}
        }
        let mut kills: Vec<KillReq> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        let (initialized, kill_pod) = self.compute_init_actions(&mut kills, &mut starts);
        if kill_pod {
            // S7: regular init failed (or is Unknown) under Never.
            self.begin_termination(TermCause::InitFailed, None, now);
            self.sync_terminating(now);
            return;
        }
        if initialized {
            self.initialized = true;
            let mut keep = 0usize;
            let mut app_starts = Vec::new();
            let restart_on_kill = self.pod.restart_policy != RestartPolicy::Never;
            for i in self.pod.apps() {
                let c = &self.ctrs[i];
                let spec = &self.pod.containers[i];
                let name = &spec.name;
                let Some(cur) = c.running() else {
                    if c.force_restart.is_some() || self.should_restart(i) {
                        // R3: an Unknown record may still run; kill it before the restart.
                        if c.current().is_some_and(Inst::unknown) {
                            kills.push((
                                i,
                                "Container is in \"unknown\" state, try killing it before restart"
                                    .into(),
                                KillCause::Unknown,
                                true,
                            ));
                        }
                        app_starts.push(i);
                    }
                    continue;
                };
                let (msg, cause, restart) = if cur.image != spec.image {
                    // S10 (containerChanged): restart regardless of the restart policy.
                    (
                        format!("Container {name} definition changed"),
                        KillCause::SpecChanged,
                        true,
                    )
                } else if c.probe_result(ProbeKind::Liveness) == Some(false) {
                    (
                        format!("Container {name} failed liveness probe"),
                        KillCause::Liveness,
                        restart_on_kill,
                    )
                } else if c.probe_result(ProbeKind::Startup) == Some(false) {
                    (
                        format!("Container {name} failed startup probe"),
                        KillCause::Startup,
                        restart_on_kill,
                    )
                } else {
                    keep += 1;
                    continue;
                };
                if restart {
                    kills.push((i, format!("{msg}, will be restarted"), cause, true));
                    app_starts.push(i);
                } else {
                    kills.push((i, msg, cause, false));
                }
            }
            if keep == 0 && app_starts.is_empty() {
                // T6 / P6 exception: nothing left to run — kill the pod (generic message, TGPS).
                // Ephemeral containers never count (keepCount covers spec.containers only).
                self.begin_termination(TermCause::Completed, None, now);
                self.sync_terminating(now);
                return;
            }
            starts.extend(app_starts);
        }
        let mut killed_any = false;
        for (i, msg, cause, restart) in kills {
            let Some(inst) = self.ctrs[i].killable().map(|x| x.id) else {
                continue;
            };
            let grace = self.single_kill_grace(i, cause);
            self.begin_kill(i, grace, false, Some(msg), cause.stop_reason(), now);
            if restart || self.pod.containers[i].kind == ContainerKind::Sidecar {
                self.ctrs[i].force_restart = Some(inst);
            }
            killed_any = true;
        }
        if killed_any {
            return;
        }
        // S12 (SyncPod step 5): ephemeral containers start before init containers, whether or not
        // initialization is done, and only if they have no record at all (never restarted).
        let ephemeral = (self.pod.n_main..self.pod.containers.len())
            .filter(|&i| self.ctrs[i].current().is_none());
        let mut seen = Vec::new();
        for i in ephemeral.collect::<Vec<_>>().into_iter().chain(starts) {
            if seen.contains(&i) || self.ctrs[i].running().is_some() {
                continue;
            }
            seen.push(i);
            match self.try_start(i, now) {
                StartOutcome::Started => return,
                StartOutcome::Waiting => {
                    // S11: a regular init container that cannot start ends the pass.
                    if self.pod.containers[i].kind == ContainerKind::RegularInit {
                        return;
                    }
                }
            }
        }
    }

    /// S9: computePodActions with `createPodSandbox` set, then SyncPod's KillPod, purge of the
    /// init containers and CreateSandbox. Runs once no start or kill is in flight.
    pub(super) fn sync_sandbox_changed(&mut self, stage: Recreate, now: Time) {
        if stage == Recreate::Due {
            let policy = self.pod.restart_policy;
            let any_record = self.ctrs.iter().any(|c| !c.instances.is_empty());
            if policy == RestartPolicy::Never && any_record {
                // Should not restart the pod: no new sandbox, just kill it.
                self.recreate = None;
                self.begin_termination(TermCause::SandboxLost, None, now);
                self.sync_terminating(now);
                return;
            }
            // OnFailure: app containers that already succeeded are not started again.
            let to_start = self.pod.apps().filter(|&i| {
                let succeeded = self.ctrs[i]
                    .current()
                    .and_then(|x| x.exit.as_ref())
                    .is_some_and(|e| e.code == 0);
                !(policy == RestartPolicy::OnFailure && succeeded)
            });
            // hasAnyRegularContainerCreated: a Created, running or exited app record.
            let initialized = self.pod.apps().any(|i| {
                self.ctrs[i]
                    .current()
                    .is_some_and(|x| x.exit.is_some() || x.running() || x.created())
            });
            if to_start.count() == 0 && initialized {
                self.recreate = None;
                self.begin_termination(TermCause::SandboxLost, None, now);
                self.sync_terminating(now);
                return;
            }
            self.event(
                EventType::Normal,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
                None,
            );
            // killPodWithSyncResult(nil): every running container, ordered when there are
            // sidecars, grace TGPS, generic message.
            let ordered = self.pod.has_sidecars();
            for i in 0..self.ctrs.len() {
                self.cancel_post_start(i);
                if self.ctrs[i].running().is_some() && self.ctrs[i].kill.is_none() {
                    let why = StopReason::SandboxChanged;
                    self.begin_kill(i, self.pod.tgps, ordered, None, why, now);
                }
            }
            self.recreate = Some(Recreate::Killing);
            self.advance_kills(now);
            if self.ctrs.iter().any(|c| c.kill.is_some()) {
                return;
            }
        }
        // Everything is stopped: stop the old sandbox, purge the init containers (a new sandbox
        // generation makes every old init record invisible to decisions and back-off) and create
        // the new sandbox.
        self.pending.push(Action::StopSandbox);
        self.recreate = None;
        self.sandbox_seq = self.sandbox_seq.saturating_add(1);
        self.initialized = false;
        for c in &mut self.ctrs {
            c.force_restart = None;
            c.backoff_until = None;
        }
        self.pending.push(Action::CreateSandbox);
        self.sandbox = Sandbox::Creating;
    }

    /// T1 for a single-container kill: deletion grace (not reachable here) → probe grace for
    /// liveness/startup kills → TGPS (kuberuntime_container.go setTerminationGracePeriod).
    pub(super) fn single_kill_grace(&self, i: usize, cause: KillCause) -> i64 {
        let spec = &self.pod.containers[i];
        let probe = match cause {
            KillCause::Liveness => spec.probe(ProbeKind::Liveness),
            KillCause::Startup => spec.probe(ProbeKind::Startup),
            KillCause::PostStart | KillCause::Unknown | KillCause::SpecChanged => None,
        };
        probe
            .and_then(|p| p.termination_grace_s)
            .unwrap_or(self.pod.tgps)
    }

    /// kuberuntime_container.go computeInitContainerActions. Returns (pod initialized, kill pod).
    pub(super) fn compute_init_actions(
        &self,
        kills: &mut Vec<KillReq>,
        starts: &mut Vec<usize>,
    ) -> (bool, bool) {
        let n = self.pod.n_init;
        if n == 0 {
            return (true, false);
        }
        // Any app container record in this sandbox (any state) proves initialization; exited ones
        // count too (the k8s PR #136969 fix), and the result is latched per sandbox.
        let seq = self.sandbox_seq;
        let mut initialized = self.initialized
            || self
                .pod
                .apps()
                .any(|i| self.ctrs[i].current().is_some_and(|x| x.sandbox == seq));
        let mut prev_initialized = initialized;
        let mut to_start = Vec::new();
        for i in (0..n).rev() {
            let spec = &self.pod.containers[i];
            let c = &self.ctrs[i];
            let Some(cur) = c.current().filter(|x| x.sandbox == seq) else {
                if prev_initialized && spec.kind == ContainerKind::Sidecar {
                    to_start.push(i);
                }
                continue;
            };
            if prev_initialized && spec.kind == ContainerKind::RegularInit {
                continue;
            }
            let unknown_msg = || {
                "Init container is in \"unknown\" state, try killing it before restart".to_string()
            };
            if cur.created() {
                // R3: created but never started (the runtime likely failed to start it).
                to_start.push(i);
            } else if cur.unknown() {
                // R3/S7: kill it first, then restart — a regular init under Never kills the pod.
                if spec.kind == ContainerKind::RegularInit
                    && self.pod.restart_policy == RestartPolicy::Never
                {
                    return (false, true);
                }
                kills.push((i, unknown_msg(), KillCause::Unknown, true));
                to_start.push(i);
            } else if cur.running() {
                if spec.kind == ContainerKind::Sidecar {
                    let startup = if spec.probe(ProbeKind::Startup).is_some() {
                        c.probe_result(ProbeKind::Startup)
                    } else {
                        Some(true)
                    };
                    match startup {
                        // S5: not run yet → wait.
                        None => {}
                        Some(false) => {
                            kills.push((
                                i,
                                format!("Init container {} failed startup probe", spec.name),
                                KillCause::Startup,
                                true,
                            ));
                            to_start.push(i);
                        }
                        Some(true) => {
                            if i == n - 1 {
                                initialized = true;
                            } else if !prev_initialized {
                                to_start.push(i + 1);
                            }
                            if cur.image != spec.image {
                                // S10: a started sidecar whose definition changed is restarted
                                // (the kubelet's message has no ", will be restarted").
                                kills.push((
                                    i,
                                    format!("Init container {} definition changed", spec.name),
                                    KillCause::SpecChanged,
                                    true,
                                ));
                                to_start.push(i);
                            } else if c.probe_result(ProbeKind::Liveness) == Some(false) {
                                kills.push((
                                    i,
                                    format!("Init container {} failed liveness probe", spec.name),
                                    KillCause::Liveness,
                                    true,
                                ));
                                to_start.push(i);
                            }
                        }
                    }
                }
            } else if spec.kind == ContainerKind::Sidecar || c.force_restart == Some(cur.id) {
                // S6: a sidecar is restarted after any exit. A regular init container killed for
                // a restart (R3) is restarted whatever its exit code: the kubelet starts it in
                // the same sync as the kill.
                to_start.push(i);
            } else if cur.exit.as_ref().is_some_and(|e| e.code != 0) {
                if self.pod.restart_policy == RestartPolicy::Never {
                    return (false, true);
                }
                to_start.push(i);
            } else if i == n - 1 {
                initialized = true;
            } else {
                to_start.push(i + 1);
            }
            prev_initialized = true;
        }
        if !prev_initialized {
            to_start.push(0);
        }
        to_start.reverse();
        starts.extend(to_start);
        (initialized, false)
    }

    /// container/helpers.go ShouldContainerBeRestarted (sidecars always, until termination).
    pub(crate) fn should_restart(&self, i: usize) -> bool {
        if self.term.is_some() && self.deleted {
            return false;
        }
        let c = &self.ctrs[i];
        let Some(cur) = c.current() else { return true };
        if self.pod.containers[i].kind == ContainerKind::Ephemeral {
            // S12: started only while it has no record at all.
            return false;
        }
        if cur.observed.is_some() && cur.exit.is_none() {
            // R3: Created or Unknown is always restarted, whatever the restart policy.
            return self.term.is_none();
        }
        let Some(exit) = &cur.exit else { return false };
        if self.pod.containers[i].kind == ContainerKind::Sidecar {
            return self.term.is_none();
        }
        match self.pod.restart_policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => exit.code != 0,
            RestartPolicy::Always => true,
        }
    }

    /// SyncPod's `start` with doBackOff (kuberuntime_manager.go).
    pub(super) fn try_start(&mut self, i: usize, now: Time) -> StartOutcome {
        let name = self.pod.containers[i].name.clone();
        if self.ctrs[i].retry_at.is_some_and(|t| now < t) {
            return StartOutcome::Waiting;
        }
        // The re-queue is due: consumed here, so that a crash back-off that now holds the start
        // (a failed start after an exit advances it, as the kubelet's doBackOff does) is not
        // woken for again and again.
        self.ctrs[i].retry_at = None;
        let cfg = &self.cfg;
        let fmt_pod = self.pod.format_pod();
        let seq = self.sandbox_seq;
        let spec = &self.pod.containers[i];
        let image = spec.image.clone();
        // Init container records of an earlier sandbox were purged (S9).
        let purged = spec.kind.is_init();
        let c = &mut self.ctrs[i];
        let skip = c.force_restart;
        // The newest exited record, ignoring the instance killed in "the same sync" (R9).
        let last_exit = c
            .instances
            .iter()
            .rev()
            .filter(|x| Some(x.id) != skip && !(purged && x.sandbox != seq))
            .find_map(|x| x.exit.as_ref().map(|e| e.at));
        if let Some(ts) = last_exit {
            // R4: the key includes hash(name, image); a changed image has its own entry.
            let slot = c.backoff.iter().position(|(k, _)| *k == image);
            let live_entry = slot
                .map(|k| c.backoff[k].1)
                .filter(|e| ts.millis_since(e.last_update) <= cfg.backoff_reset_ms);
            if let Some(e) = live_entry {
                if now.millis_since(ts) < e.dur_ms {
                    let until = ts.add_millis(e.dur_ms);
                    let msg = format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(e.dur_ms),
                        name,
                        fmt_pod
                    );
                    c.reason_cache = Some(("CrashLoopBackOff".into(), msg));
                    if c.backoff_until != Some(until) {
                        c.backoff_until = Some(until);
                        self.event(
                            EventType::Warning,
                            "BackOff",
                            format!("Back-off restarting failed container {name} in pod {fmt_pod}"),
                            Some(&name),
                        );
                    }
                    return StartOutcome::Waiting;
                }
            }
            // flowcontrol.Backoff.Next
            let next = match live_entry {
                Some(e) => BackoffEntry {
                    dur_ms: (e.dur_ms.saturating_mul(2)).min(cfg.backoff_max_ms),
                    last_update: now,
                },
                None => BackoffEntry {
                    dur_ms: cfg.backoff_initial_ms,
                    last_update: now,
                },
            };
            match slot {
                Some(k) => c.backoff[k].1 = next,
                None => c.backoff.push((image.clone(), next)),
            }
        }
        c.backoff_until = None;
        c.force_restart = None;
        c.retry_at = None;
        let id = InstanceId(self.next_id);
        self.next_id += 1;
        let spec = &self.pod.containers[i];
        let post_start = spec.post_start;
        let c = &mut self.ctrs[i];
        c.start = Some(PendingStart {
            instance: id,
            phase: StartPhase::Starting,
            post_start,
            post_start_deadline: None,
        });
        c.start_image = image.clone();
        c.start_image_id = None;
        let attempt = c.records;
        let timeout_ms = self.cfg.post_start_timeout_ms.max(0);
        let plan = ImagePlan {
            pull_backoff: self.image_in_backoff(&image, now),
            image,
            policy: spec.pull_policy,
        };
        self.pending.push(Action::StartContainer {
            name,
            kind: spec.kind,
            instance: id,
            attempt,
            post_start: post_start.then_some(PostStart { timeout_ms }),
            image: plan,
        });
        StartOutcome::Started
    }
}
