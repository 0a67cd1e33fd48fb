//! Pre-encoded OTLP requests. A pool of requests is generated and encoded
//! once; each send copies one and patches it in place: trace ids are XORed
//! with a per-send mask (so every send carries new, still consistent
//! traces) and timestamps are shifted to the present. The byte offsets to
//! patch are found once by walking the encoded protobuf.

use bytes::Bytes;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::topology::{kv_str, GenSpan, Topology, TopologyConfig};
use crate::model::{now_ns, TraceId};
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::proto::resource::v1 as pr;
use crate::otlp::proto::trace::v1 as pt;

const APP_WORDS: [&str; 8] = [
    "tenant",
    "region",
    "feature_flag",
    "cache_hit",
    "queue",
    "shard",
    "plan",
    "experiment",
];

/// Trims or extends a span's attributes to `n` and pads its encoded size
/// up to `target_bytes` with a realistic long attribute.
fn shape(span: &mut pt::Span, n: usize, target_bytes: usize, rng: &mut StdRng) {
    span.attributes.truncate(n);
    let mut i = 0;
    while span.attributes.len() < n {
        let word = APP_WORDS[i % APP_WORDS.len()];
        let key = if i < APP_WORDS.len() {
            format!("app.{word}")
        } else {
            format!("app.{word}_{i}")
        };
        span.attributes
            .push(kv_str(&key, format!("{word}-{}", rng.gen_range(0..50))));
        i += 1;
    }
    let len = span.encoded_len();
    // Key, value and framing of the padding attribute take about 30 bytes.
    if target_bytes > len + 30 {
        let pad = target_bytes - len - 30;
        let text: String = (0..pad)
            .map(|j| (b'a' + ((j * 7 + pad) % 26) as u8) as char)
            .collect();
        span.attributes.push(kv_str("app.request.body", text));
    }
}

/// Builds one request of about `spans` spans (whole traces), grouped into
/// one ResourceSpans per service, traces starting around `start_ns`.
pub fn generate_request(
    topo: &Topology,
    rng: &mut StdRng,
    spans: usize,
    start_ns: u64,
) -> ExportTraceServiceRequest {
    let mut by_service: Vec<Vec<pt::Span>> = vec![Vec::new(); topo.services.len()];
    let mut count = 0;
    while count < spans.max(1) {
        let t0 = start_ns + rng.gen_range(0..1_000_000_000);
        for GenSpan { service, mut span } in topo.trace(rng, t0) {
            shape(&mut span, topo.cfg.attributes, topo.cfg.span_bytes, rng);
            by_service[service].push(span);
            count += 1;
        }
    }
    let resource_spans = by_service
        .into_iter()
        .enumerate()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(i, spans)| {
            let svc = &topo.services[i];
            pt::ResourceSpans {
                resource: Some(pr::Resource {
                    attributes: svc.resource.clone(),
                    ..Default::default()
                }),
                scope_spans: vec![pt::ScopeSpans {
                    scope: Some(svc.scope.clone()),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// About `n` realistic spans (whole traces) as the model holds them, with
/// traces starting within a second of `start_ns`: for export benches and
/// tests.
pub fn synthetic_spans(
    cfg: &TopologyConfig,
    n: usize,
    seed: u64,
    start_ns: u64,
) -> Vec<crate::model::Span> {
    let topo = Topology::new(cfg.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + topo.spans_per_trace());
    while out.len() < n {
        let req = generate_request(&topo, &mut rng, 1024.min(n - out.len()), start_ns);
        out.extend(crate::otlp::convert::spans_from_proto(&req.resource_spans));
    }
    out
}

/// One encoded request and the places to patch in it.
#[derive(Clone, Debug)]
pub struct PooledRequest {
    pub bytes: Bytes,
    pub spans: usize,
    trace_id_offsets: Vec<u32>,
    time_offsets: Vec<u32>,
}

/// Encoded requests to send in rotation.
#[derive(Clone, Debug)]
pub struct RequestPool {
    pub requests: Vec<PooledRequest>,
    /// The time the pool's timestamps are relative to.
    pub base_ns: u64,
}

impl RequestPool {
    pub fn total_spans(&self) -> usize {
        self.requests.iter().map(|r| r.spans).sum()
    }
    pub fn avg_span_bytes(&self) -> f64 {
        let bytes: usize = self.requests.iter().map(|r| r.bytes.len()).sum();
        bytes as f64 / self.total_spans().max(1) as f64
    }
}

/// Generates and encodes `requests` requests of about `spans_per_request`
/// spans each (deterministic for a given seed).
pub fn build_request_pool(
    cfg: &TopologyConfig,
    requests: usize,
    spans_per_request: usize,
    seed: u64,
) -> RequestPool {
    let topo = Topology::new(cfg.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    let base_ns = now_ns();
    let requests = (0..requests.max(1))
        .map(|_| {
            let req = generate_request(&topo, &mut rng, spans_per_request, base_ns);
            let spans = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            let bytes = req.encode_to_vec();
            let mut p = PooledRequest {
                bytes: Bytes::new(),
                spans,
                trace_id_offsets: Vec::new(),
                time_offsets: Vec::new(),
            };
            find_patch_offsets(&bytes, &mut p);
            p.bytes = Bytes::from(bytes);
            p
        })
        .collect();
    RequestPool { requests, base_ns }
}

/// Mixes a send sequence number into a 64-bit mask (a bijection, so
/// different sends get different masks).
pub fn mask(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl PooledRequest {
    /// A copy with fresh trace ids (XORed with `mask(key)`; give every send
    /// its own key) and timestamps moved forward by `shift_ns`.
    pub fn patched(&self, key: u64, shift_ns: u64) -> Vec<u8> {
        let mut buf = self.bytes.to_vec();
        let m = mask(key).to_le_bytes();
        for &o in &self.trace_id_offsets {
            let o = o as usize;
            if let Some(id) = buf.get_mut(o..o + 8) {
                for (b, k) in id.iter_mut().zip(m) {
                    *b ^= k;
                }
            }
        }
        for &o in &self.time_offsets {
            let o = o as usize;
            if let Some(t) = buf.get_mut(o..o + 8) {
                let mut v = [0u8; 8];
                v.copy_from_slice(t);
                t.copy_from_slice(&u64::from_le_bytes(v).wrapping_add(shift_ns).to_le_bytes());
            }
        }
        buf
    }

    /// The trace id of the first span of an encoded (patched) request.
    pub fn first_trace_id(&self, buf: &[u8]) -> Option<TraceId> {
        let o = *self.trace_id_offsets.first()? as usize;
        TraceId::from_slice(buf.get(o..o + 16)?)
    }
}

// --- a minimal protobuf walker, just enough to find the offsets ---

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Calls `f(field, wire_type, start, end)` for each field of a message.
fn fields(buf: &[u8], mut f: impl FnMut(u64, u64, usize, usize)) -> Option<()> {
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (field, wt) = (tag >> 3, tag & 7);
        let start = match wt {
            0 => {
                varint(buf, &mut pos)?;
                continue;
            }
            1 => pos,
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let s = pos;
                pos = pos.checked_add(len).filter(|&e| e <= buf.len())?;
                f(field, wt, s, pos);
                continue;
            }
            5 => {
                pos += 4;
                continue;
            }
            _ => return None,
        };
        pos += 8;
        if pos > buf.len() {
            return None;
        }
        f(field, wt, start, pos);
    }
    (pos == buf.len()).then_some(())
}

fn find_patch_offsets(buf: &[u8], p: &mut PooledRequest) {
    let (mut ids, mut times) = (Vec::new(), Vec::new());
    let _ = fields(buf, |f, _, s, e| {
        if f != 1 {
            return;
        }
        let _ = fields(&buf[s..e], |f, _, s2, e2| {
            if f != 2 {
                return;
            }
            let (s2, e2) = (s + s2, s + e2);
            let _ = fields(&buf[s2..e2], |f, _, s3, e3| {
                if f != 2 {
                    return;
                }
                let (s3, e3) = (s2 + s3, s2 + e3);
                let _ = fields(&buf[s3..e3], |f, wt, a, b| match (f, wt) {
                    (1, 2) if b - a == 16 => ids.push((s3 + a) as u32),
                    (7, 1) | (8, 1) => times.push((s3 + a) as u32),
                    (11, 2) => {
                        let _ = fields(&buf[s3 + a..s3 + b], |f, wt, x, _| {
                            if (f, wt) == (1, 1) {
                                times.push((s3 + a + x) as u32);
                            }
                        });
                    }
                    (13, 2) => {
                        let _ = fields(&buf[s3 + a..s3 + b], |f, wt, x, y| {
                            if (f, wt) == (1, 2) && y - x == 16 {
                                ids.push((s3 + a + x) as u32);
                            }
                        });
                    }
                    _ => {}
                });
            });
        });
    });
    p.trace_id_offsets = ids;
    p.time_offsets = times;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::convert::spans_from_proto;
    use std::collections::HashSet;

    fn decode(buf: &[u8]) -> Vec<crate::model::Span> {
        spans_from_proto(
            &ExportTraceServiceRequest::decode(buf)
                .unwrap()
                .resource_spans,
        )
    }

    #[test]
    fn patching_renews_trace_ids_consistently_and_shifts_time() {
        let pool = build_request_pool(&TopologyConfig::default(), 2, 200, 7);
        let r = &pool.requests[0];
        let orig = decode(&r.bytes);
        assert_eq!(orig.len(), r.spans);
        let patched = decode(&r.patched(5, 1_000));
        assert_eq!(patched.len(), orig.len());
        for (a, b) in orig.iter().zip(&patched) {
            assert_ne!(a.trace_id, b.trace_id);
            assert_eq!(a.span_id, b.span_id);
            assert_eq!(a.parent_span_id, b.parent_span_id);
            assert_eq!(a.start_ns + 1_000, b.start_ns);
            assert_eq!(a.end_ns + 1_000, b.end_ns);
            for (ea, eb) in a.events.iter().zip(&b.events) {
                assert_eq!(ea.time_ns + 1_000, eb.time_ns);
            }
        }
        // Spans of one trace keep sharing one (new) id.
        let old: HashSet<_> = orig.iter().map(|s| s.trace_id).collect();
        let new: HashSet<_> = patched.iter().map(|s| s.trace_id).collect();
        assert_eq!(old.len(), new.len());
        assert_eq!(
            r.first_trace_id(&r.patched(5, 0)),
            Some(patched[0].trace_id)
        );
        assert_ne!(r.patched(5, 0), r.patched(6, 0));
    }

    #[test]
    fn spans_are_padded_to_the_target_size() {
        for target in [300usize, 1000] {
            let cfg = TopologyConfig {
                span_bytes: target,
                ..Default::default()
            };
            let pool = build_request_pool(&cfg, 1, 500, 1);
            let avg = pool.avg_span_bytes();
            assert!(
                avg > target as f64 * 0.9 && avg < target as f64 * 1.25,
                "target {target}: {avg}"
            );
        }
    }
}
