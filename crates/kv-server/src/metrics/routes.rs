//! What each path answers: `/metrics`, `/livez`, `/readyz`, and 404 for anything else.

use bytes::Bytes;
use hyper::StatusCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Content type of `/metrics`: what prometheus-client's text encoder writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the other replies.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The endpoint's state: the registry to encode and whether the server is shutting down.
#[derive(Debug)]
pub struct Routes {
    registry: Registry,
    /// The server's shutdown token: once cancelled, `/readyz` answers 503.
    shutdown: CancellationToken,
}

impl Routes {
    /// Routes over `registry`, ready until `shutdown` is cancelled.
    pub fn new(registry: Registry, shutdown: CancellationToken) -> Self {
        Self { registry, shutdown }
    }

    /// Status, content type and body for a GET of `path`.
    pub fn get(&self, path: &str) -> (StatusCode, &'static str, Bytes) {
        match path {
            "/metrics" => self.metrics(),
            "/livez" => (StatusCode::OK, TEXT, Bytes::from_static(b"ok\n")),
            "/readyz" if self.shutdown.is_cancelled() => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                Bytes::from_static(b"shutting down\n"),
            ),
            "/readyz" => (StatusCode::OK, TEXT, Bytes::from_static(b"ready\n")),
            _ => (
                StatusCode::NOT_FOUND,
                TEXT,
                Bytes::from_static(b"not found\n"),
            ),
        }
    }

    fn metrics(&self) -> (StatusCode, &'static str, Bytes) {
        let mut text = String::new();
        match encode(&mut text, &self.registry) {
            Ok(()) => (StatusCode::OK, OPENMETRICS, Bytes::from(text)),
            Err(e) => {
                // Only a metric's own encoding can fail (fmt::Error): a bug, not the client's.
                warn!("metrics: cannot encode: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    Bytes::from_static(b"cannot encode the metrics\n"),
                )
            }
        }
    }
}

/// The reply to anything the endpoint does not serve.
pub fn not_found() -> (StatusCode, &'static str, Bytes) {
    (
        StatusCode::NOT_FOUND,
        TEXT,
        Bytes::from_static(b"not found\n"),
    )
}
