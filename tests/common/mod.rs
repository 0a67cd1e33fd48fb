//! Support shared by the integration tests: fixtures, the conformance
//! suite, a real `strand` child process on free loopback ports, start-up
//! failures of the binary, the real Kafka and Elasticsearch services, and
//! polling with deadlines.
#![allow(dead_code)]

pub mod conformance;
pub mod fixtures;
pub mod poll;
pub mod process;
pub mod services;
pub mod startup;
