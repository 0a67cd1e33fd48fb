//! The actix supervision tree: receivers, writers, sealers.

pub mod kafka_consumer;
pub mod receiver;
