//! The actix supervision tree: receivers, writers, sealers.
