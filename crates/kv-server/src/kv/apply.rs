//! Running a parsed request: the server's half of each command. The other half, the grammar
//! (parsing, reply bytes), is `kv_protocol`'s; carrying requests out is the store's.
//!
//! Every bucket request goes into the connection's [`Pipeline`], which answers each, in
//! request order, through [`Replies`]: the engine decides what it holds back so that
//! requests that arrived together travel together (PROTOCOL.md, "Pipelining"). A request
//! the server answers itself (`PING`, `INFO`, `QUIT`) first has the pipeline answer
//! everything before it.

use bytes::BytesMut;
use kv_protocol::{Reply, Request};
use kv_store::{Answer, Answers, Op, Pipeline, Store, StoreError};
use line_server::Flow;

use super::backup::Sending;
use super::counters::{self, ErrorKind};
use super::subscriber::Subscribed;
use super::{KvSession, Pushing};

impl<S: Store> KvSession<S> {
    /// Runs `request`: its reply is appended to `out` now, or by a later call that carries
    /// it out (a flush), after the replies of the requests before it.
    pub(super) async fn apply(&mut self, request: Request<'_>, out: &mut BytesMut) -> Flow {
        counters::count_verb(request.verb());
        let (bucket, op) = match request {
            Request::Create(create) => (create.bucket, Op::Create),
            Request::Put(put) => (
                put.bucket,
                Op::Put {
                    key: put.key,
                    value: put.value,
                },
            ),
            Request::Get(get) => (get.bucket, Op::Get { key: get.key }),
            Request::Delete(delete) => (delete.bucket, Op::Delete { key: delete.key }),
            Request::Ping => {
                self.flush_into(out).await;
                Reply::Pong.encode(out);
                return Flow::Continue;
            }
            Request::Quit => {
                self.flush_into(out).await;
                Reply::Ok.encode(out);
                return Flow::Close;
            }
            Request::Info { section } => {
                self.flush_into(out).await;
                let report = self.pipeline.report();
                let server = &self.shared.server;
                let machinery = (&server.snapshot(), &server.connections_per_loop()[..]);
                super::info::report(section, machinery, &report, out);
                return Flow::Continue;
            }
            Request::Subscribe { bucket } => {
                self.flush_into(out).await;
                self.subscribe(bucket, out).await;
                return Flow::Continue;
            }
            Request::Unsubscribe => {
                // Not subscribed (a subscribed session's lines go to `subscriber.rs`).
                self.flush_into(out).await;
                Reply::Ok.encode(out);
                return Flow::Continue;
            }
            Request::CountSubscriptions { bucket } => {
                self.flush_into(out).await;
                let count = self.pipeline.subscribers(bucket).await;
                answer_count(count, out);
                return Flow::Continue;
            }
            Request::Backup => {
                // After every write before it, this connection's included.
                self.flush_into(out).await;
                match self.pipeline.backup().await {
                    Ok(backup) => {
                        self.pushing = Some(Box::new(Pushing::Backup(Sending::new(backup))))
                    }
                    Err(e) => Replies(out).answer(Answer::Failed(&e)),
                }
                return Flow::Continue;
            }
        };
        self.pipeline.submit(bucket, op, &mut Replies(out)).await;
        Flow::Continue
    }

    /// `SUBSCRIBE bucket`: no reply when it takes (SPEC §14); the session is a subscriber
    /// from now on.
    async fn subscribe(&mut self, bucket: &[u8], out: &mut BytesMut) {
        let buffer = self.shared.subscriber_buffer_bytes;
        match self.pipeline.subscribe(bucket, buffer).await {
            Ok(Some(subscription)) => {
                self.pushing = Some(Box::new(Pushing::Events(Subscribed::new(subscription))));
            }
            Ok(None) => Replies(out).answer(Answer::NoBucket),
            Err(e) => Replies(out).answer(Answer::Failed(&e)),
        }
    }

    /// Has the pipeline carry out what it holds back and append the replies, in order.
    pub(super) async fn flush_into(&mut self, out: &mut BytesMut) {
        self.pipeline.flush(&mut Replies(out)).await;
    }
}

/// `COUNT SUBSCRIPTIONS bucket`: the number as a value line, then `OK`.
fn answer_count(count: Result<Option<usize>, StoreError>, out: &mut BytesMut) {
    match count {
        Ok(Some(count)) => {
            Reply::Value(Some(count.to_string().as_bytes())).encode(out);
        }
        Ok(None) => Replies(out).answer(Answer::NoBucket),
        Err(e) => Replies(out).answer(Answer::Failed(&e)),
    }
}

/// The store's answers, encoded as replies (and counted) into the output buffer. Made per
/// call: it is the buffer, borrowed, and nothing else.
pub(super) struct Replies<'a>(pub(super) &'a mut BytesMut);

impl Answers for Replies<'_> {
    fn answer(&mut self, answer: Answer<'_>) {
        let out = &mut *self.0;
        match answer {
            Answer::Done => Reply::Ok.encode(out),
            Answer::Value(value) => {
                counters::count_lookup(value.is_some());
                if let Some(value) = value {
                    out.extend_from_slice(value);
                }
                Reply::encode_value_end(out);
            }
            Answer::NoBucket => {
                counters::count_error(ErrorKind::NotFound);
                Reply::NotFound.encode(out);
            }
            Answer::Failed(e) => {
                counters::count_error(ErrorKind::Store);
                Reply::Error(e.message().as_bytes()).encode(out);
            }
        }
    }
}
