//! [`Pipeline`]: the one ordered path into the store. Every request of a connection goes
//! through it, and what became of each is told to an [`Answers`] sink in the order the
//! requests were submitted.
//!
//! A client that pipelines 32 `PUT`s should pay for one sync (durable engine) or one
//! network round trip (a networked engine), not 32, as Redis writes everything one read
//! brought with one `fsync`. So an engine may hold requests back and carry them out
//! together at a later [`Pipeline::submit`] or at [`Pipeline::flush`] (the end of what
//! arrived together). What it holds back is its own business: the in-memory engine holds
//! nothing; the durable engine holds writes and carries them out before a read; the
//! cluster engine holds everything, up to a bound. The one promise every engine keeps,
//! and tests on its own, is the order of the answers.

use std::future::Future;

use bytes::Bytes;

use crate::{StoreError, StoreReport};

/// One request on a bucket (the bucket is named beside it, in [`Pipeline::submit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// `CREATE`: makes the bucket unless it exists; [`Answer::Done`] either way.
    Create,
    /// `PUT`: sets `key` to `value`.
    Put {
        /// The key.
        key: &'a [u8],
        /// Its new value.
        value: &'a [u8],
    },
    /// `GET`: the value of `key`.
    Get {
        /// The key.
        key: &'a [u8],
    },
    /// `DELETE`: removes `key`; [`Answer::Done`] also if it was not there.
    Delete {
        /// The key.
        key: &'a [u8],
    },
}

impl Op<'_> {
    /// Whether it changes the data (what a durable engine journals).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// What became of one request, lent to [`Answers::answer`] for the call only (so that an
/// engine can hand over a value straight from its storage, under its lock, uncopied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// A `CREATE`, `PUT` or `DELETE` was carried out (visible to every connection, and in
    /// durable mode on stable storage).
    Done,
    /// A `GET` found this value (`None`: the bucket has no such key).
    Value(Option<&'a [u8]>),
    /// The request names a bucket that does not exist (never for `CREATE`).
    NoBucket,
    /// The store could not carry it out (a disk error, the memory limit, a timeout).
    Failed(&'a StoreError),
}

/// Where an engine tells what became of each request, once per request, in the order the
/// requests were submitted. The KV session encodes each as its reply.
pub trait Answers {
    /// The next request's answer.
    fn answer(&mut self, answer: Answer<'_>);
}

/// [`Answer`] owned: what a collecting sink keeps ([`crate::StoreClient`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// [`Answer::Done`].
    Done,
    /// [`Answer::Value`], copied.
    Value(Option<Bytes>),
    /// [`Answer::NoBucket`].
    NoBucket,
    /// [`Answer::Failed`].
    Failed(StoreError),
}

impl Outcome {
    /// The answer this is, lent.
    pub fn as_answer(&self) -> Answer<'_> {
        match self {
            Outcome::Done => Answer::Done,
            Outcome::Value(value) => Answer::Value(value.as_deref()),
            Outcome::NoBucket => Answer::NoBucket,
            Outcome::Failed(e) => Answer::Failed(e),
        }
    }
}

impl From<Answer<'_>> for Outcome {
    fn from(answer: Answer<'_>) -> Self {
        match answer {
            Answer::Done => Outcome::Done,
            Answer::Value(value) => Outcome::Value(value.map(Bytes::copy_from_slice)),
            Answer::NoBucket => Outcome::NoBucket,
            Answer::Failed(e) => Outcome::Failed(e.clone()),
        }
    }
}

/// Collects every answer, owned: for tests, tools and [`crate::StoreClient`].
impl Answers for Vec<Outcome> {
    fn answer(&mut self, answer: Answer<'_>) {
        self.push(answer.into());
    }
}

/// One connection's way into the store; made by [`crate::Store::pipeline`] and kept for
/// the connection's life (it keeps what it reuses: the bucket used last, its queues).
///
/// Every request submitted is answered exactly once, through the `answers` of the call
/// that carries it out (that `submit`, a later one, or `flush`), and after every request
/// submitted before it: answers come in request order, whatever the engine holds back.
/// A request sees the effect of every request submitted before it.
pub trait Pipeline: Send + 'static {
    /// Takes `op` on the bucket named `bucket`: carried out now, or held back until a
    /// later call carries it out with others. Answers go to `answers`: this request's, if
    /// it is carried out now, and those of any held back before it.
    fn submit<A: Answers + Send>(
        &mut self,
        bucket: &[u8],
        op: Op<'_>,
        answers: &mut A,
    ) -> impl Future<Output = ()> + Send;

    /// Carries out every request held back and answers them, in order. Once it completes,
    /// every write submitted is visible to every connection (and, in durable mode, on
    /// stable storage). Called at the end of what arrived together and before anything
    /// that must not wait behind the store (a reply of the machinery's own).
    fn flush<A: Answers + Send>(&mut self, answers: &mut A) -> impl Future<Output = ()> + Send;

    /// Subscribes to the changes of the bucket named `bucket` (PROTOCOL.md,
    /// "Subscriptions"): every write to it that takes effect from now on (in durable mode:
    /// once on stable storage) queues its event, in the order the writes took effect, until
    /// the [`crate::Subscription`] is dropped or ends. `buffer_bytes`: most bytes of events
    /// it may hold unsent before it ends ([`crate::Ended::Slow`]). `Ok(None)`: no such
    /// bucket. Call it after a flush: requests held back are not carried out by it.
    fn subscribe(
        &mut self,
        bucket: &[u8],
        buffer_bytes: usize,
    ) -> impl Future<Output = Result<Option<crate::Subscription>, StoreError>> + Send;

    /// How many connections of this server are subscribed to the bucket named `bucket`;
    /// `Ok(None)`: no such bucket. Call it after a flush, as [`Pipeline::subscribe`].
    fn subscribers(
        &mut self,
        bucket: &[u8],
    ) -> impl Future<Output = Result<Option<usize>, StoreError>> + Send;

    /// Begins a backup of the whole store (PROTOCOL.md, "Backup"): every bucket and key as
    /// they were at one moment in the order writes took effect, which comes after every
    /// write already answered (to any connection). Call it after a flush, as
    /// [`Pipeline::subscribe`]. Fails while another backup runs, and in an engine that
    /// cannot make one (the cluster engine's data is Redis'); the error says why.
    fn backup(&mut self) -> impl Future<Output = Result<crate::Backup, StoreError>> + Send;

    /// What the store holds and has done ([`crate::Store::report`]), for `INFO` on this
    /// connection: the pipeline holds the store, so a session need not hold it twice.
    fn report(&self) -> StoreReport;
}
