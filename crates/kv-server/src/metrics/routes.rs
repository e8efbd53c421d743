//! What each path answers: `/metrics`, `/livez`, `/readyz`, and 404 for anything else.

use bytes::Bytes;
use hyper::StatusCode;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::negotiate::Format;

/// Content type of the replies other than `/metrics`.
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

    /// Status, content type and body for a GET of `path`; `/metrics` in `format`.
    pub fn get(&self, path: &str, format: Format) -> (StatusCode, &'static str, Bytes) {
        match path {
            "/metrics" => self.metrics(format),
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

    /// The registry in `format`, both written by prometheus-client's own encoders.
    fn metrics(&self, format: Format) -> (StatusCode, &'static str, Bytes) {
        let mut out = String::new();
        let encoded = match format {
            Format::OpenMetrics => text::encode(&mut out, &self.registry),
            Format::Text => prometheus_text::encode(&mut out, &self.registry),
        };
        match encoded {
            Ok(()) => (StatusCode::OK, format.content_type(), Bytes::from(out)),
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
