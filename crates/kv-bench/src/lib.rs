//! kv-bench: the load generator for kv-server and the peers it is compared with.
//!
//! # Layout
//! - [`cli`]: flags → run configuration; nothing else parses arguments.
//! - [`conn`]: opening connections, plain TCP or TLS, and reading and writing them.
//! - [`workload`]: every request and its exact expected reply, per protocol.
//! - [`verify`]: comparing a reply with the expected bytes, and framing a wrong one.
//! - [`load`]: the closed-loop run (threads, connections, coordinated-omission-aware timing).
//! - [`idle`]: idle connections and the server's memory per connection.
//! - [`fanout`]: subscribers of one bucket (or Redis channel) and writers publishing to
//!   it: events per second, publish-to-delivery latency, slow subscribers dropped.
//! - [`stats`]: histograms, reports, the results-file record.
//! - [`report`]: medians and ratios over a results file, as Markdown.
//! - [`chart`]: the SVG charts (by connection count; by the server's cores).
//! - [`limits`]: the generator's own open-file limit.
//! - [`cpu`]: who used the CPUs during the run (generator, server, others), and the
//!   server's CPU time and context switches per request.
//! - [`affinity`]: CPU lists and pinning generator threads (`--pin`).
//! - [`scaling`]: throughput and CPU per request by the server's core count.

pub mod affinity;
pub mod chart;
pub mod cli;
pub mod conn;
pub mod cpu;
pub mod fanout;
pub mod idle;
pub mod limits;
pub mod load;
pub mod report;
pub mod scaling;
pub mod stats;
pub mod verify;
pub mod workload;
