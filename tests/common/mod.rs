//! Support shared by the integration tests: fixtures, the conformance
//! suite, a real `strand` child process on free loopback ports, start-up
//! failures of the binary, clients, harnesses for in-process servers, the
//! real Kafka and Elasticsearch services, Python clients, and polling with
//! deadlines.
#![allow(dead_code)]

pub mod conformance;
pub mod es;
pub mod fixtures;
pub mod http;
pub mod ingest;
pub mod jaeger;
pub mod kafka;
pub mod load;
pub mod otel;
pub mod otlp;
pub mod process;
pub mod python;
pub mod query;
pub mod sampling;
pub mod shape;
pub mod span_metrics;
pub mod store;
pub mod tail;
pub mod tls;
pub mod wait;
