//! The daemon's event recorder: the engine's events about a pod become `v1` Event objects as
//! the kubelet's recorder writes them (client-go tools/record: `events.go` makeEvent,
//! `events_cache.go` EventCorrelator). An event identical to one recorded before (same
//! source, object, type, reason and message) updates that object — `count` + 1 and a new
//! `lastTimestamp` — instead of making another, so a crash-looping container shows
//! `BackOff (x12 over 3m)` in `kubectl describe`, not twelve lines.
//!
//! Not done: the correlator's "similar events" aggregation (more than 10 events with one
//! reason and different messages within 10 minutes become one "(combined from similar
//! events)") and its spam filter; the CLI's `events` module has neither either.

use std::collections::{HashMap, VecDeque};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_engine::{EventType, Time};

/// Identical events remembered for aggregation (client-go's `maxLruCacheEntries` is 4096).
const REMEMBERED: usize = 4096;

/// What identifies "the same event" (client-go `getEventKey`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EventKey {
    namespace: String,
    pod: String,
    uid: String,
    field_path: String,
    type_: &'static str,
    reason: String,
    message: String,
}

/// Turns engine events into Event objects, aggregating identical ones.
pub struct EventRecorder {
    node: String,
    seen: HashMap<EventKey, Event>,
    order: VecDeque<EventKey>,
}

/// The pod an event is about (the parts the Event's `involvedObject` names).
#[derive(Clone, Debug)]
pub struct Involved {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.initContainers` or `spec.containers` per container name, for `fieldPath`.
    pub init_containers: Vec<String>,
    pub resource_version: Option<String>,
}

impl Involved {
    pub fn of(pod: &Pod) -> Involved {
        Involved {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            init_containers: pod
                .spec
                .iter()
                .flat_map(|s| s.init_containers.iter().flatten())
                .map(|c| c.name.clone())
                .collect(),
            resource_version: pod.metadata.resource_version.clone(),
        }
    }

    /// The kubelet's `fieldPath` for a container (`spec.containers{app}`).
    fn field_path(&self, container: Option<&str>) -> String {
        match container {
            None => String::new(),
            Some(c) if self.init_containers.iter().any(|i| i == c) => {
                format!("spec.initContainers{{{c}}}")
            }
            Some(c) => format!("spec.containers{{{c}}}"),
        }
    }
}

impl EventRecorder {
    pub fn new(node: &str) -> EventRecorder {
        EventRecorder {
            node: node.to_string(),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The Event object to write for `event` about `pod` at `at`: a new one, or the earlier
    /// identical one with its count raised.
    pub fn record(&mut self, pod: &Involved, event: &skiff_engine::Event, at: Time) -> Event {
        let type_ = match event.type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let field_path = pod.field_path(event.container.as_deref());
        let key = EventKey {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            uid: pod.uid.clone(),
            field_path: field_path.clone(),
            type_,
            reason: event.reason.clone(),
            message: event.message.clone(),
        };
        let now = at.to_meta();
        if let Some(prev) = self.seen.get_mut(&key) {
            prev.count = Some(prev.count.unwrap_or(1) + 1);
            prev.last_timestamp = Some(now);
            return prev.clone();
        }
        // client-go names events `<object name>.<unix nanoseconds in hex>`.
        let nanos = i128::from(at.millis()) * 1_000_000;
        let name = format!("{}.{:x}", pod.name, nanos);
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(pod.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()),
                resource_version: pod.resource_version.clone(),
                field_path: (!field_path.is_empty()).then_some(field_path),
            },
            reason: Some(event.reason.clone()),
            message: Some(event.message.clone()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            type_: Some(type_.into()),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        if self.order.len() >= REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.seen.insert(key, ev.clone());
        ev
    }

    /// Forgets a pod's events (it is gone).
    pub fn forget(&mut self, uid: &str) {
        self.seen.retain(|k, _| k.uid != uid);
        self.order.retain(|k| k.uid != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn involved() -> Involved {
        Involved {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            init_containers: vec!["proxy".into()],
            resource_version: None,
        }
    }

    fn ev(reason: &str, message: &str, container: Option<&str>) -> skiff_engine::Event {
        skiff_engine::Event {
            type_: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
            container: container.map(str::to_string),
        }
    }

    #[test]
    fn identical_events_raise_the_count_of_one_object() {
        let mut r = EventRecorder::new("node1");
        let p = involved();
        let back_off = ev(
            "BackOff",
            "Back-off restarting failed container",
            Some("app"),
        );
        let first = r.record(&p, &back_off, Time::from_millis(1_000));
        let second = r.record(&p, &back_off, Time::from_millis(11_000));
        assert_eq!(first.metadata.name, second.metadata.name);
        assert_eq!(second.count, Some(2));
        assert_eq!(second.first_timestamp, first.first_timestamp);
        assert_ne!(second.last_timestamp, first.last_timestamp);
        let other = r.record(
            &p,
            &ev("Failed", "x", Some("app")),
            Time::from_millis(2_000),
        );
        assert_ne!(other.metadata.name, first.metadata.name);
        assert_eq!(other.count, Some(1));
    }

    #[test]
    fn field_paths_name_the_container_list() {
        let mut r = EventRecorder::new("node1");
        let p = involved();
        let side = r.record(&p, &ev("Started", "s", Some("proxy")), Time::from_millis(1));
        let app = r.record(&p, &ev("Started", "s", Some("app")), Time::from_millis(1));
        let pod = r.record(&p, &ev("Scheduled", "s", None), Time::from_millis(1));
        assert_eq!(
            side.involved_object.field_path.as_deref(),
            Some("spec.initContainers{proxy}")
        );
        assert_eq!(
            app.involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(pod.involved_object.field_path, None);
        assert_eq!(app.source.and_then(|s| s.host).as_deref(), Some("node1"));
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = EventRecorder::new("n");
        let p = involved();
        for i in 0..(REMEMBERED + 10) {
            r.record(&p, &ev("X", &i.to_string(), None), Time::from_millis(1));
        }
        assert_eq!(r.seen.len(), REMEMBERED);
        assert_eq!(r.order.len(), REMEMBERED);
    }
}
