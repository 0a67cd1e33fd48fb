//! Support shared by the integration tests: fixtures, the conformance
//! suite, a real `strand` child process on free loopback ports, clients,
//! and harnesses for in-process servers, Kafka and Elasticsearch.
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
pub mod query;
pub mod store;
pub mod wait;
