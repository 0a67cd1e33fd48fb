//! The actix supervision tree: receivers, writers, sealers.

pub mod es_writer;
pub mod receiver;
