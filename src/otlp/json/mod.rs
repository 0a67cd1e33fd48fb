//! OTLP/JSON, both ways. The encoding follows the OTLP spec rather than
//! plain proto3 JSON: trace and span ids are hex (not base64), field names
//! are lowerCamelCase, 64-bit integers are decimal strings and enums are
//! integers. The decoder is lenient where the spec allows: snake_case field
//! names, 64-bit integers as numbers, enum names, unknown fields ignored.

mod decode;
mod encode;
mod scalar;

pub use decode::decode_request;
pub use encode::{attribute_to_json, response_to_json, traces_to_otlp_json, OtlpTraces};
