//! skiff's workload controllers (issue 12): kube-controller-manager's Job, CronJob, ReplicaSet
//! and Deployment controllers for one node, as **pure decision code** like the lifecycle engine.
//!
//! A controller reads the objects it owns and the objects they own (a consistent snapshot taken
//! by its caller), and the time, and returns a [`Decision`]: objects to create, update or delete,
//! events to record, and when to look again. It does no I/O and reads no clock, so tests drive it
//! on a simulated clock. Two callers carry decisions out: `skiff serve` against the API store, and
//! `skiff run -f job.yaml` against local pod workers.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

pub mod cronjob;
pub mod deployment;
pub mod job;
pub mod replicaset;

/// The wall-clock time a decision is made at (metav1.Time precision is seconds on the wire, but
/// decisions may use sub-second times, e.g. back-off expiry).
pub type Now = Timestamp;

/// An object a controller creates or writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    ReplicaSet(Box<ReplicaSet>),
    Deployment(Box<Deployment>),
}

/// The kind of an object named in a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pod,
    Job,
    CronJob,
    ReplicaSet,
    Deployment,
}

/// `DeleteOptions.propagationPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// One write a controller asks for. Updates carry the object as read (its resourceVersion), so
/// the caller's write fails with a conflict if it changed meanwhile; the caller then reconciles
/// again.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create (metadata.generateName or name set by the controller).
    Create(Object),
    /// Replace the object's spec/metadata (e.g. a ReplicaSet's replicas, a pod's finalizers).
    Update(Object),
    /// Replace the object's status (the `/status` subresource).
    UpdateStatus(Object),
    /// Delete an object, with a UID precondition when given.
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
        uid: Option<String>,
        propagation: Option<Propagation>,
    },
}

/// An Event the controller records (kube-controller-manager's recorder), e.g. `Normal
/// SuccessfulCreate Created pod: x`, `Warning BackoffLimitExceeded Job has reached the
/// specified backoff limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// The object the event is about.
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: String,
    pub message: String,
}

/// What a controller decided for one object at one time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub events: Vec<EventNote>,
    /// Look again after this long even if nothing changes (back-off expiry, deadlines, TTL,
    /// schedules, minReadySeconds). `None`: only when a watched object changes.
    pub requeue_after: Option<Duration>,
}
