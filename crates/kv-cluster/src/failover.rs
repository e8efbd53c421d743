//! Following a failover behind a master that stopped answering without dying (SPEC §12:
//! a master that hangs is handled like a dead one).
//!
//! # Why the redis client does not follow it by itself
//! redis-rs 1.8's cluster connection (`src/cluster_handling/async_connection/`) learns a new
//! layout only when a node answers `MOVED` (or an error that asks for a refresh), or when it
//! has no connection for a slot (`request.rs`, `choose_response`); a lost connection
//! (refused, reset) sends the slot's requests to its replica, which answers `MOVED` once
//! promoted. A response timeout is neither: it is `io::ErrorKind::TimedOut`, which
//! `RedisError::retry_method` maps to `RetryImmediately`, on the same node. A master that is
//! stopped, swapped out or cut off keeps its TCP connection open, so after its replica takes
//! over (Redis Cluster spec, "Replica election and promotion") every request for its slots
//! still goes to it and times out, until it comes back and answers `MOVED`. `kill -9` heals
//! because the connection is refused. Measured against a real cluster with the client alone:
//! the frozen master's keys timed out from the freeze until `SIGCONT`, 9 s later, while the
//! replica had been promoted after 2.4 s.
//!
//! The client has no periodic topology check (valkey-glide's fork of it added one, every
//! 60 s by default) and no public way to ask for a refresh; and its refresh must not run
//! while a frozen node is in the layout anyway: `refresh_slots` (`mod.rs`) holds the
//! connection map's write lock, and the connection's task polls no request until it ends
//! (`poll_flush` runs `poll_recover` before `poll_complete`), while it asks nodes one at a
//! time for `CLUSTER SLOTS` and then `PING`s every node of the new layout, each wait as long
//! as the response timeout. Measured (1.5 s response timeout): a refresh provoked (by a
//! `MOVED`) while a master was frozen held every request to the two healthy masters for 3 s;
//! provoked after the promotion, it healed the frozen master's keys at once, but only
//! because it happened to ask a live node first: the frozen one is still in its map, and
//! the first pass asks those in the map's (random) order.
//!
//! # What this does instead
//! A request that times out rings an [`Alarm`]. The [`watch`] task then asks every known
//! node for its layout ([`topology::survey`]: all at once, a fresh connection each, so a
//! frozen node holds up nothing), and again every [`CHECK_INTERVAL`] for as long as
//! requests keep timing out. When most nodes report masters other than those of the layout
//! the connections were made with, it opens new [`Links`] seeded with exactly the nodes
//! that reported it (so the new client's first `CLUSTER SLOTS` and `PING`s go to live nodes
//! that already know the new layout, and the stopped master, no longer in it, is never
//! asked) and swaps them in. Requests already sent over the old links finish or time out
//! there; the old connections close with the last of them. Nothing changes on the way of a
//! request but taking the links from a lock that is written once per failover.
//!
//! # Limits
//! - A request sent to the stopped master before the swap still times out.
//! - A master that stops answering with no replica to take over: its buckets time out
//!   until it answers again (the layout does not change).
//! - Two faults at once: if the layout changes for another reason (slots moved, `MOVED`)
//!   while a stopped master is still in it, the client's own refresh waits on that master
//!   as measured above, and so do all requests meanwhile.

use std::collections::BTreeSet;
use std::sync::{PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::topology::{self, Layout};
use crate::{ClusterOptions, Shared};

/// How long to wait between two surveys while requests keep timing out.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The longest wait for one node's `CLUSTER SLOTS` in a survey (a live node answers in
/// about a millisecond; the survey does not wait for it once most nodes agree).
const PATIENCE: Duration = Duration::from_millis(500);

/// The redis client's connections to the cluster, replaced together after a failover.
pub(crate) struct Links {
    /// The connection every request goes over: a handle to its task, cheap to clone.
    pub(crate) main: ClusterConnection,
    /// With `--cluster-wait-replicas`: a second one, for the pipelines that end in `WAIT`
    /// (Redis blocks a connection while its `WAIT` is pending; reads and other buckets'
    /// requests must not queue behind it).
    pub(crate) wait: Option<ClusterConnection>,
}

impl Links {
    /// Connects to the cluster through `nodes` (`redis://HOST:PORT` each), each connection
    /// within `patience`.
    pub(crate) async fn open(
        nodes: &[String],
        options: &ClusterOptions,
        patience: Duration,
    ) -> Result<Links, String> {
        let client = client(nodes, options.timeout)?;
        let connect = || async {
            tokio::time::timeout(patience, client.get_async_connection())
                .await
                .map_err(|_| format!("no answer within {} ms", patience.as_millis()))?
                .map_err(|e| e.to_string())
        };
        let main = connect().await?;
        let wait = match options.wait_replicas {
            0 => None,
            _ => Some(connect().await?),
        };
        Ok(Links { main, wait })
    }
}

/// The redis client for the cluster `nodes` (`redis://HOST:PORT` each) belong to.
pub(crate) fn client(nodes: &[String], timeout: Duration) -> Result<ClusterClient, String> {
    ClusterClient::builder(nodes.to_vec())
        // Each attempt gets the whole budget; the retries of redirects, `TRYAGAIN` and
        // lost connections go on until it is spent (the caller's deadline ends them).
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .overall_response_timeout(Some(timeout))
        .retries(64)
        .min_retry_wait(10)
        .max_retry_wait(200)
        .build()
        .map_err(|e| e.to_string())
}

/// Rung by a request that timed out; wakes [`watch`]. Rings that come while one is pending
/// are one.
pub(crate) struct Alarm(mpsc::Sender<()>);

impl Alarm {
    /// A request timed out.
    pub(crate) fn ring(&self) {
        let _ = self.0.try_send(());
    }
}

/// An alarm and what [`watch`] listens to; dropping the alarm (with the store) ends it.
pub(crate) fn alarm() -> (Alarm, mpsc::Receiver<()>) {
    let (sender, receiver) = mpsc::channel(1);
    (Alarm(sender), receiver)
}

/// The layout the links in use were opened with (as most nodes reported it then), and
/// where to ask for the next one.
pub(crate) struct Watched {
    /// `None` if no node answered at start: the first layout seen counts as a change.
    pub(crate) layout: Option<Layout>,
    /// `HOST:PORT` of the seeds given; asked every time, with the nodes of the last layout.
    pub(crate) seeds: Vec<String>,
}

impl Watched {
    /// Surveys the seeds for the layout the links just opened from them see.
    pub(crate) async fn start(seeds: Vec<String>, timeout: Duration) -> Watched {
        let nodes = seeds.iter().cloned().collect();
        let layout = topology::survey(&nodes, PATIENCE.min(timeout))
            .await
            .map(|s| s.layout);
        Watched { layout, seeds }
    }

    fn nodes(&self) -> BTreeSet<String> {
        let known = self.layout.iter().flat_map(Layout::nodes);
        self.seeds
            .iter()
            .map(String::as_str)
            .chain(known)
            .map(str::to_string)
            .collect()
    }
}

/// Waits for an alarm; then surveys the layout every [`CHECK_INTERVAL`] (and replaces the
/// links when it moved to other masters) until no request has timed out for longer than a
/// request can take. Ends when the store is dropped.
pub(crate) async fn watch(
    shared: Weak<Shared>,
    mut alarms: mpsc::Receiver<()>,
    mut watched: Watched,
) {
    while alarms.recv().await.is_some() {
        let mut last_alarm = Instant::now();
        loop {
            let Some(store) = shared.upgrade() else {
                return;
            };
            // A request sent to a stopped master rings once per timeout: past this, none is
            // waiting on one any more.
            let quiet = store.options.timeout + CHECK_INTERVAL;
            check(&store.links, &store.options, &mut watched).await;
            drop(store);
            tokio::time::sleep(CHECK_INTERVAL).await;
            loop {
                match alarms.try_recv() {
                    Ok(()) => last_alarm = Instant::now(),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if last_alarm.elapsed() > quiet {
                break;
            }
        }
    }
}

/// One survey; new links if most nodes say other masters serve some slots now.
async fn check(links: &RwLock<Links>, options: &ClusterOptions, watched: &mut Watched) {
    let patience = PATIENCE.min(options.timeout);
    let Some(survey) = topology::survey(&watched.nodes(), patience).await else {
        return;
    };
    let change = match &watched.layout {
        Some(before) if before.same_masters(&survey.layout) => return,
        Some(before) => format!(
            "{} slot range(s) on other masters",
            survey.layout.moved_since(before)
        ),
        None => "it was not known".to_string(),
    };
    let seeds: Vec<String> = survey
        .agreeing
        .iter()
        .map(|node| format!("redis://{node}"))
        .collect();
    // The new client PINGs every node of the layout and waits a response timeout for one
    // that does not answer (it then leaves it out): allow for that on top of the timeout.
    match Links::open(&seeds, options, options.timeout * 2).await {
        Ok(new) => {
            *links.write().unwrap_or_else(PoisonError::into_inner) = new;
            info!(
                "the cluster's layout changed while requests timed out ({change}): \
                 reconnected through {}",
                survey.agreeing.join(",")
            );
            watched.layout = Some(survey.layout);
        }
        Err(e) => warn!(
            "the cluster's layout changed while requests timed out, but reconnecting through \
             {} failed: {e}",
            survey.agreeing.join(",")
        ),
    }
}
