//! The HTTP side of the metrics endpoint: hyper's HTTP/1 server on connections accepted
//! here, bounded so that no scraper — slow, huge or many — can take resources from the
//! clients the server is for.
//!
//! - At most [`MAX_CONNECTIONS`] at once; one more is closed at accept, unanswered.
//! - A request's headers must arrive within [`HEADER_TIMEOUT`] (hyper's
//!   `header_read_timeout`), and a connection lives at most [`CONNECTION_TIMEOUT`] in all.
//! - Headers are read into a buffer of at most [`MAX_BUFFER`] bytes and [`MAX_HEADERS`]
//!   headers; a bigger request is answered 431 by hyper and closed. Bodies are never read.
//! - One request per connection (no keep-alive); only GET and HEAD reach the routes, HEAD
//!   with the same headers as GET (the format negotiated alike), its body left out by hyper.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

use super::negotiate;
use super::routes::{self, Routes};

/// Connections served at once; a scraper needs one, a person with curl another.
pub const MAX_CONNECTIONS: usize = 4;
/// Time allowed for a request's headers to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a whole connection: the request, the encoding, and writing the reply.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Hyper's read buffer, the most a request's head may take (hyper's smallest allowed).
pub const MAX_BUFFER: usize = 8192;
/// Headers allowed in a request.
pub const MAX_HEADERS: usize = 32;

/// Accepts connections on `listener` for as long as the task runs (the process's life).
pub async fn serve(listener: TcpListener, routes: Arc<Routes>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, or a client that reset before accept: wait a little
                // rather than spin, as the KV acceptor does.
                debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            debug!("metrics: {MAX_CONNECTIONS} connections already served; closing one more");
            continue;
        };
        let routes = Arc::clone(&routes);
        tokio::spawn(async move {
            serve_connection(stream, routes).await;
            drop(slot);
        });
    }
}

/// One connection, one request, within [`CONNECTION_TIMEOUT`].
async fn serve_connection(stream: TcpStream, routes: Arc<Routes>) {
    let service = service_fn(move |request| {
        let routes = Arc::clone(&routes);
        async move { Ok::<_, Infallible>(answer(&routes, &request)) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUFFER)
        .max_headers(MAX_HEADERS)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!("metrics: connection ended: {e}"),
        Err(_) => debug!("metrics: connection cut after {CONNECTION_TIMEOUT:?}"),
    }
}

/// The reply to `request`: GET (and HEAD, its body left out by hyper) go to the routes,
/// `/metrics` in the format its `Accept` headers negotiate (a value that is not visible
/// ASCII is skipped); any other method is "anything else" to SPEC §11, so 404 like an
/// unknown path.
fn answer(routes: &Routes, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match *request.method() {
        Method::GET | Method::HEAD => {
            let accept = request.headers().get_all(ACCEPT);
            let format = negotiate::negotiate(accept.iter().filter_map(|v| v.to_str().ok()));
            routes.get(request.uri().path(), format)
        }
        _ => routes::not_found(),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
