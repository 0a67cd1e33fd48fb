//! Zipkin v2 ingest: `POST /api/v2/spans` on `ingest.zipkin_addr` (:9411),
//! a JSON list of spans or a protobuf `ListOfSpans` (`proto/zipkin.proto`),
//! optionally gzipped. The HTTP thread only admits and reads the body; a
//! receiver worker decodes it ([`decode_json`], [`decode_protobuf`]) into an
//! OTLP request ([`convert::to_otlp`]) that then goes through the same
//! validation, scrubbing, sampling and metering as OTLP. The mapping is in
//! docs/INGEST.md ("Zipkin").

pub mod convert;
pub mod http;
pub mod json;

use crate::error::{Error, Result};
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

/// Types generated from `proto/zipkin.proto` (see build.rs).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("zipkin.proto3");
}

pub use http::{zipkin_server_on, SPANS_PATH};

/// A Zipkin v2 JSON body as an OTLP request; errors are `InvalidArgument`.
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    convert::to_otlp(json::parse(body)?)
}

/// A Zipkin `ListOfSpans` protobuf body as an OTLP request.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let list = <proto::ListOfSpans as prost::Message>::decode(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid Zipkin protobuf body: {e}")))?;
    convert::to_otlp(list.spans)
}
