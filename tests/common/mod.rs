//! Support shared by the integration tests: fixtures, the conformance
//! suite, and a real `strand` child process on free loopback ports.
#![allow(dead_code)]

pub mod conformance;
pub mod fixtures;
pub mod process;
