//! Writes that must be durable in every tier before they are acknowledged.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{Span, SpanWriter};

/// Writes to every tier at once; Ok only when all of them made the spans
/// durable. A retry after a partial failure rewrites the spans everywhere:
/// tiers deduplicate by span identity.
pub struct FanoutWriter(pub Vec<Arc<dyn SpanWriter>>);

#[async_trait]
impl SpanWriter for FanoutWriter {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        match self.0.as_slice() {
            [] => Err(Error::Internal("no storage tier configured".into())),
            [one] => one.write(spans).await,
            many => {
                let writes = many.iter().map(|w| w.write(spans.clone()));
                futures::future::try_join_all(writes).await.map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanReader, TraceId};
    use crate::tiers::memory::MemoryStore;
    use crate::tiers::testutil::span;

    #[actix_rt::test]
    async fn fanout_needs_every_tier() {
        let a = Arc::new(MemoryStore::new());
        let b = Arc::new(MemoryStore::new());
        let w = FanoutWriter(vec![a.clone(), b.clone()]);
        w.write(vec![span(1, 1, 1)]).await.unwrap();
        assert_eq!(a.trace(TraceId([1; 16])).await.unwrap().len(), 1);
        assert_eq!(b.trace(TraceId([1; 16])).await.unwrap().len(), 1);
        assert!(FanoutWriter(vec![]).write(vec![]).await.is_err());
    }
}
