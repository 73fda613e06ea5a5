//! `skiff serve`: this machine as a single-node Kubernetes that kubectl drives unchanged.
//! Wiring only: the API server (skiff-api: store, registry, HTTP, transport), this machine as
//! its node (`serve::node`), and the kubelet loop (`serve::kubelet`) between the API and the
//! node's pod workers (skiff-node's manager — the workers `skiff run` uses).
//!
//! Stopping the daemon (SIGTERM, SIGINT) stops serving, not the pods: their monitors hold
//! them, and the next `skiff serve` on the data dir adopts them — as a restarted kubelet does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skiff_api::registry::Api;
use skiff_api::store::{Store, StoreConfig};
use skiff_node::cri::RuntimeClasses;
use skiff_node::manager::{ManagerConfig, PodManager};
use skiff_node::sandbox::PodObjects;

use crate::exit;
use crate::serve::kubelet::{Kubelet, PodRunner};
use crate::serve::node::{default_node_name, LocalNode};

/// How often the Node object's status (heartbeat, capacity) is refreshed (the kubelet's
/// `nodeStatusReportFrequency` is 5 minutes; its lease every 10 s).
const NODE_STATUS_EVERY: Duration = Duration::from_secs(60);
/// Events older than this are deleted (kube-apiserver's `--event-ttl` default).
const EVENT_TTL: Duration = Duration::from_secs(3600);
/// How often Terminating namespaces are emptied and removed (kube's namespace controller
/// reacts to changes; a short period is the simple equivalent on one node).
const NAMESPACES_EVERY: Duration = Duration::from_secs(1);
/// How often housekeeping (event expiry, store compaction, image GC) runs; the kubelet's
/// image GC period is 5 minutes.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(300);
/// How often the garbage collector looks for dependents whose owners are gone (deletions
/// themselves schedule a pass at once) and quotas are recounted (pods that became terminal or
/// passed their deletion grace stop being charged).
const COLLECT_EVERY: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the daemon keeps its store, credentials and pods (default: /var/lib/skiff as
    /// root, else $XDG_DATA_HOME/skiff; `SKIFF_DATA_DIR` overrides). One daemon per data dir.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also serve HTTPS on this address (TLS with the daemon's own CA, bearer token): what
    /// `skiff kubeconfig` points kubectl at. `none`: the unix socket only. Port 0 picks one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6443")]
    listen: String,
    /// The Node's name (default: the host name).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// Resources held back from pods at admission (kubelet `--system-reserved`), e.g.
    /// `cpu=500m,memory=1Gi`.
    #[arg(long, value_name = "LIST", default_value = "")]
    system_reserved: String,
}

/// The node's pod workers behind the kubelet loop's seam.
struct ManagerRunner(PodManager);

impl PodRunner for ManagerRunner {
    fn sync(&self, pod: k8s_openapi::api::core::v1::Pod, objects: PodObjects) {
        self.0.sync(pod, objects);
    }
    fn stop(&self, uid: &str, grace: Option<i64>) {
        self.0.stop(uid, grace);
    }
    fn forget(&self, uid: &str) {
        self.0.forget(uid);
    }
    fn orphans(&self, known: &dyn Fn(&str) -> bool) -> Vec<k8s_openapi::api::core::v1::Pod> {
        self.0.orphans(known)
    }
}

pub fn run(args: &Args) -> u8 {
    match serve(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

fn parse_listen(text: &str) -> anyhow::Result<Option<SocketAddr>> {
    if text == "none" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("--listen {text:?}: not an IP:PORT address (or `none`)"))
}

fn serve(args: &Args) -> anyhow::Result<()> {
    let listen = parse_listen(&args.listen)?;
    let reserved = skiff_model::admission::parse_reserved(&args.system_reserved)
        .map_err(|e| anyhow::anyhow!("--system-reserved: {e}"))?;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => skiff_node::store::default_data_dir()?,
    };
    skiff_node::store::prepare_data_dir(&data_dir)?;
    let lock = skiff_api::transport::DaemonLock::acquire(&data_dir)?;
    raise_nofile();
    let node_name = args.node_name.clone().unwrap_or_else(default_node_name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let classes = tokio::task::spawn_blocking(RuntimeClasses::detect)
            .await
            .unwrap_or_else(|_| RuntimeClasses::host_only());
        let node = Arc::new(LocalNode::new(
            node_name.clone(),
            data_dir.clone(),
            reserved,
            classes,
        ));
        let store_dir = data_dir.join("api");
        std::fs::create_dir_all(&store_dir)
            .with_context(|| format!("creating {}", store_dir.display()))?;
        let store = Store::open(&store_dir, StoreConfig::default())
            .with_context(|| format!("opening the store in {}", store_dir.display()))?;
        let api = Api::open(store, node.clone())
            .await
            .map_err(|e| anyhow::anyhow!("starting the API: {e}"))?;
        // Pods get the ServiceAccount admission's token volume as on a cluster: the node
        // projects it with skiff's signer and CA (PodObjects::with_cluster_identity).
        api.set_token_volumes(true);

        let (manager, reports) = PodManager::new(ManagerConfig {
            data_dir: data_dir.clone(),
            engine: skiff_engine::EngineConfig::default(),
            image_pulls: skiff_node::worker::PullQueue::node(),
        });
        node.set_pods(manager.clone());
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let metrics = skiff_api::metrics::Metrics::new();
        let node_metrics = crate::serve::metrics::NodeMetrics::new(&metrics);
        let runner = Arc::new(node_metrics.runner(ManagerRunner(manager)));
        let kubelet = Kubelet::new(api.clone(), runner, &node_name).with_data_dir(data_dir.clone());
        let kubelet_task =
            tokio::spawn(kubelet.run(node_metrics.tap(reports), shutdown_rx.clone()));
        tokio::spawn(housekeeping(api.clone(), shutdown_rx.clone()));
        let controllers_task = tokio::spawn(crate::serve::controllers::run(
            api.clone(),
            crate::serve::controllers::all(),
            shutdown_rx.clone(),
        ));

        let serve_cfg = skiff_api::transport::ServeConfig::new(data_dir.clone(), listen);
        let creds = skiff_api::transport::Credentials::load_or_create(&serve_cfg)
            .context("the daemon's TLS credentials")?;
        // Cancelled at the signal: long requests (watches, followed logs) end at once.
        let cancel = tokio_util::sync::CancellationToken::new();
        let router = skiff_api::http::router_with_metrics(api.clone(), cancel.clone(), metrics);
        tracing::info!("serving node {node_name} from {}", data_dir.display());
        let served = skiff_api::transport::serve(router, &serve_cfg, creds, &lock, async move {
            wait_for_signal().await;
            tracing::info!("stopping: pods keep running; the next `skiff serve` adopts them");
            cancel.cancel();
        })
        .await;
        let _ = shutdown_tx.send(true);
        let _ = kubelet_task.await;
        let _ = controllers_task.await;
        served.map_err(|e| anyhow::anyhow!("serving: {e}"))
    })
}

/// Periodic work: the Node's status, namespace deletion, garbage collection, quota usage,
/// event expiry, store compaction.
async fn housekeeping(api: Api, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut node_tick = tokio::time::interval(NODE_STATUS_EVERY);
    let mut house_tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    let mut ns_tick = tokio::time::interval(NAMESPACES_EVERY);
    let mut collect_tick = tokio::time::interval(COLLECT_EVERY);
    loop {
        tokio::select! {
            _ = ns_tick.tick() => {
                if let Err(e) = api.reconcile_namespaces().await {
                    tracing::warn!("the namespace controller: {e}");
                }
            }
            _ = collect_tick.tick() => {
                if let Err(e) = api.collect_garbage().await {
                    tracing::warn!("the garbage collector: {e}");
                }
                if let Err(e) = api.reconcile_quotas().await {
                    tracing::warn!("recounting quotas: {e}");
                }
            }
            _ = node_tick.tick() => {
                if let Err(e) = api.refresh_node().await {
                    tracing::warn!("refreshing the Node object: {e}");
                }
            }
            _ = house_tick.tick() => {
                api.expire_events(EVENT_TTL).await;
                if let Err(e) = api.store().compact_now().await {
                    tracing::warn!("compacting the store: {e}");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The soft descriptor limit raised to the hard one (no privilege needed): a thousand watches
/// and a hundred pods need more than the usual 1024, and the transport sizes its connection
/// bound from it. Containers started by the daemon inherit it, as containerd's do its own.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("raising the descriptor limit: {e}");
        }
    }
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default action (exit) applies; serve until then.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
