//! The probe workers (prober/worker.go): when each probe is due and what a result means.

use super::*;

impl PodEngine {
    /// Whether a tick of this worker could lead to a probe (used to avoid pointless wake-ups).
    pub(super) fn worker_may_probe(&self, i: usize, kind: ProbeKind) -> bool {
        let c = &self.ctrs[i];
        let Some(cur) = c.running() else { return false };
        let Some(w) = c.worker(kind) else {
            return false;
        };
        if w.instance == Some(cur.id) && w.on_hold {
            return false;
        }
        let started = self.started(i);
        match kind {
            ProbeKind::Startup => !started,
            _ => started,
        }
    }

    /// S3: running and (no startup probe or its published result is Success).
    pub(crate) fn started(&self, i: usize) -> bool {
        let c = &self.ctrs[i];
        if c.running().is_none() {
            return false;
        }
        if self.pod.containers[i].probe(ProbeKind::Startup).is_none() {
            return true;
        }
        c.probe_result(ProbeKind::Startup) == Some(true)
    }

    /// prober/worker.go run/doProbe, one tick at a time.
    pub(super) fn plan_probes(&mut self, now: Time) {
        for i in 0..self.ctrs.len() {
            let running = self.ctrs[i]
                .running()
                .and_then(|x| x.started_at.map(|s| (x.id, s)));
            for kind in ProbeKind::ALL {
                let started = self.started(i);
                let spec: &CtrSpec = &self.pod.containers[i];
                let Some(pspec) = spec.probe(kind) else {
                    continue;
                };
                let initial_delay = pspec.initial_delay_s;
                let timeout_ms = pspec.timeout_ms;
                let name = spec.name.clone();
                let Some(w) = self.ctrs[i].workers[kind.index()].as_mut() else {
                    continue;
                };
                if w.stopped {
                    continue;
                }
                // Ticks count only while the container runs (doProbe returns early otherwise).
                if let Some((_, started_at)) = running {
                    let from = w.last_eval.max(started_at);
                    if w.next_tick_after(from) <= now {
                        w.pending = true;
                    }
                } else {
                    w.pending = false;
                }
                w.last_eval = now;
                if !w.pending || w.in_flight.is_some() {
                    continue;
                }
                w.pending = false;
                let Some((id, started_at)) = running else {
                    continue;
                };
                if w.instance != Some(id) {
                    // A new container ID: reset to the initial value and resume probing (P8).
                    w.instance = Some(id);
                    w.result = initial_result(kind);
                    w.on_hold = false;
                }
                if w.on_hold {
                    continue;
                }
                // P3: whole seconds since startedAt, truncated.
                if now.whole_secs_since(started_at) < initial_delay {
                    continue;
                }
                // P4: startup gates the others; startup stops once the instance has started.
                if started == (kind == ProbeKind::Startup) {
                    continue;
                }
                w.in_flight = Some(id);
                self.pending.push(Action::RunProbe {
                    name,
                    instance: id,
                    kind,
                    timeout_ms,
                });
            }
        }
    }
}
