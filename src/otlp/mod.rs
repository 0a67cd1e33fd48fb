//! OTLP: generated protobuf types, conversion to and from the span model.

pub mod convert;
pub mod json;
pub mod validate;

use crate::error::{Error, Result};
use proto::collector::trace::v1::ExportTraceServiceRequest;

/// Decodes an OTLP protobuf body; errors are `InvalidArgument`.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    <ExportTraceServiceRequest as prost::Message>::decode(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid OTLP protobuf body: {e}")))
}

/// Types generated from the vendored protos (see build.rs).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("opentelemetry.proto.common.v1");
        }
    }
    pub mod resource {
        pub mod v1 {
            tonic::include_proto!("opentelemetry.proto.resource.v1");
        }
    }
    pub mod trace {
        pub mod v1 {
            tonic::include_proto!("opentelemetry.proto.trace.v1");
        }
    }
    pub mod collector {
        pub mod trace {
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
            }
        }
    }
}
