//! The actix supervision tree: receivers, writers, sealers.

pub mod es_writer;
pub mod kafka_consumer;
pub mod receiver;
pub mod sealer;
pub mod supervise;
pub mod writer;
