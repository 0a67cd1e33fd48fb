//! The actix supervision tree: receivers, writers, sealers.

pub mod receiver;
