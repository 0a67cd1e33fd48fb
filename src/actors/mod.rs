//! The actix supervision tree: receivers, writers, sealers.

pub mod sealer;
pub mod supervise;
pub mod writer;
