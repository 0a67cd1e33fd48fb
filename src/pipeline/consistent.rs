//! OpenTelemetry consistent probability sampling (the `th`/`rv` scheme of
//! the tracestate probability-sampling specification): a 56-bit rejection
//! threshold `T` and a 56-bit randomness `R`; a span is kept iff `R >= T`.
//!
//! `R` is the explicit `ot=rv:` value when the span carries one, else the
//! trace id's 56 low bits (W3C Trace Context Level 2 randomness). Every
//! stage that derives `T` from its own probability and tests the same `R`
//! keeps a subset of what any stage with a higher probability keeps, so
//! ratios nest instead of multiplying.

/// 2^56: thresholds and randomness values are below it.
pub const MAX: u64 = 1 << 56;

/// W3C trace flags bit 1: the trace id's low 56 bits are random.
pub const RANDOM_FLAG: u32 = 0x02;

/// The rejection threshold for probability `p`: `round((1 - p) × 2^56)`,
/// computed as `2^56 - round(p × 2^56)` so that tiny probabilities keep
/// their precision. `p <= 0` (or NaN) rejects everything.
pub fn threshold(p: f64) -> u64 {
    if p.is_nan() || p <= 0.0 {
        return MAX;
    }
    if p >= 1.0 {
        return 0;
    }
    let kept = (p * MAX as f64).round() as u64;
    MAX - kept.clamp(1, MAX)
}

/// The probability a threshold keeps.
pub fn probability(t: u64) -> f64 {
    (MAX - t.min(MAX)) as f64 / MAX as f64
}

/// The trace id's 56 low bits (its last 7 bytes, big-endian).
pub fn trace_id_randomness(trace_id: &[u8]) -> u64 {
    let n = trace_id.len();
    let tail = &trace_id[n.saturating_sub(7)..];
    tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The OpenTelemetry sub-keys of a W3C `tracestate` that sampling reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OtState {
    /// `th`: the threshold an earlier stage (usually the SDK) applied.
    pub th: Option<u64>,
    /// `rv`: explicit randomness, which overrides the trace id's bits.
    pub rv: Option<u64>,
}

/// Reads `ot=th:...;rv:...` out of `tracestate`. Malformed values are
/// ignored (treated as absent): the specification asks samplers to erase
/// what they cannot trust rather than fail the span.
pub fn parse_tracestate(tracestate: &str) -> OtState {
    let mut out = OtState::default();
    let Some(ot) = tracestate
        .split(',')
        .map(str::trim)
        .find_map(|m| m.strip_prefix("ot="))
    else {
        return out;
    };
    for field in ot.split(';') {
        if let Some(v) = field.strip_prefix("th:") {
            out.th = parse_th(v);
        } else if let Some(v) = field.strip_prefix("rv:") {
            out.rv = parse_rv(v);
        }
    }
    out
}

/// `th`: 1 to 14 hex digits, trailing zeros omitted (`8` is 0x80000000000000).
pub fn parse_th(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 14 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let n = u64::from_str_radix(v, 16).ok()?;
    Some(n << (4 * (14 - v.len())))
}

/// `rv`: exactly 14 hex digits.
pub fn parse_rv(v: &str) -> Option<u64> {
    if v.len() != 14 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(v, 16).ok()
}

/// `th` text for a threshold: 14 hex digits with trailing zeros removed
/// (`0` for keep-everything).
pub fn format_th(t: u64) -> String {
    if t == 0 {
        return "0".into();
    }
    let s = format!("{:014x}", t.min(MAX - 1));
    s.trim_end_matches('0').to_string()
}

/// Where a span's randomness came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `ot=rv:` in tracestate.
    Explicit,
    /// The trace id, flagged random by its SDK.
    FlaggedTraceId,
    /// The trace id, not flagged: randomness presumed, as the specification
    /// tells a TraceIdRatioBased sampler to do (and to warn about).
    PresumedTraceId,
}

/// One span's sampling inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Randomness {
    pub r: u64,
    pub source: Source,
    pub state: OtState,
}

impl Randomness {
    pub fn of(trace_id: &[u8], flags: u32, tracestate: &str) -> Randomness {
        let state = parse_tracestate(tracestate);
        let (r, source) = match state.rv {
            Some(rv) => (rv, Source::Explicit),
            None if flags & RANDOM_FLAG != 0 => {
                (trace_id_randomness(trace_id), Source::FlaggedTraceId)
            }
            None => (trace_id_randomness(trace_id), Source::PresumedTraceId),
        };
        Randomness { r, source, state }
    }

    /// The equalizing downstream decision at threshold `t`: keep iff
    /// `R >= t`. An upstream `th` above `t` (the SDK sampled harder) is
    /// already satisfied by any consistent span; a `th` the span's own
    /// randomness contradicts (`R < th`) is inconsistent and ignored.
    pub fn keep(&self, t: u64) -> bool {
        self.r >= t
    }

    /// The threshold to record on a kept span: the larger of the upstream
    /// one (when consistent) and ours, as an equalizing stage must.
    pub fn outbound(&self, t: u64) -> u64 {
        match self.state.th {
            Some(th) if self.r >= th => th.max(t),
            _ => t,
        }
    }
}

/// `tracestate` with the `ot` member's `th` set to `th`, other members
/// and other `ot` sub-keys kept in order (an `ot` member is added first,
/// as W3C asks of a new or updated member).
pub fn with_threshold(tracestate: &str, th: u64) -> String {
    let th_field = format!("th:{}", format_th(th));
    let mut others = Vec::new();
    let mut ot_fields: Vec<String> = Vec::new();
    for m in tracestate
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        match m.strip_prefix("ot=") {
            Some(ot) => ot_fields.extend(
                ot.split(';')
                    .filter(|f| !f.is_empty() && !f.starts_with("th:"))
                    .map(str::to_string),
            ),
            None => others.push(m.to_string()),
        }
    }
    ot_fields.insert(0, th_field);
    let mut out = format!("ot={}", ot_fields.join(";"));
    for m in others {
        out.push(',');
        out.push_str(&m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_the_specification_examples() {
        assert_eq!(threshold(1.0), 0);
        assert_eq!(threshold(0.5), 0x80_0000_0000_0000);
        assert_eq!(format_th(threshold(0.5)), "8");
        assert_eq!(format_th(threshold(0.25)), "c");
        assert_eq!(format_th(threshold(1.0)), "0");
        // 1 in 10: the spec's table starts e666...
        assert!(format_th(threshold(0.1)).starts_with("e666666"));
        assert_eq!(threshold(0.0), MAX);
        assert_eq!(threshold(f64::NAN), MAX);
        assert!(
            threshold(1e-17) < MAX,
            "the smallest probability keeps 2^-56"
        );
        assert!((probability(threshold(0.3)) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn th_and_rv_parse_and_round_trip() {
        let s = parse_tracestate("vendor=x, ot=th:c;rv:0123456789abcd;zz:1 ,k=v");
        assert_eq!(s.th, Some(0xc0_0000_0000_0000));
        assert_eq!(s.rv, Some(0x01_2345_6789_abcd));
        assert_eq!(parse_th("0"), Some(0));
        assert_eq!(parse_th(""), None);
        assert_eq!(parse_th("123456789abcdef"), None, "15 digits");
        assert_eq!(parse_th("zz"), None);
        assert_eq!(parse_rv("abc"), None, "rv is exactly 14 digits");
        assert_eq!(parse_tracestate(""), OtState::default());
        for p in [0.5, 0.1, 0.01, 0.75, 1.0] {
            let t = threshold(p);
            assert_eq!(parse_th(&format_th(t)), Some(t), "p={p}");
        }
    }

    #[test]
    fn randomness_prefers_rv_then_the_trace_id() {
        let id = [0xffu8; 16];
        let r = Randomness::of(&id, RANDOM_FLAG, "");
        assert_eq!((r.r, r.source), (MAX - 1, Source::FlaggedTraceId));
        let r = Randomness::of(&id, 0, "");
        assert_eq!(r.source, Source::PresumedTraceId);
        let r = Randomness::of(&id, RANDOM_FLAG, "ot=rv:00000000000001");
        assert_eq!((r.r, r.source), (1, Source::Explicit));
        // Only the low 7 bytes count.
        let mut id = [0u8; 16];
        id[8] = 0xff;
        id[15] = 7;
        assert_eq!(trace_id_randomness(&id), 7);
    }

    #[test]
    fn lower_probabilities_keep_subsets() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&state.to_be_bytes());
            let r = Randomness::of(&id, RANDOM_FLAG, "");
            for (lo, hi) in [(0.05, 0.1), (0.1, 0.5), (0.5, 1.0)] {
                if r.keep(threshold(lo)) {
                    assert!(r.keep(threshold(hi)));
                }
            }
        }
    }

    #[test]
    fn outbound_threshold_equalizes_and_tracestate_is_rewritten() {
        let id = [0xffu8; 16];
        let r = Randomness::of(&id, RANDOM_FLAG, "ot=th:e");
        assert_eq!(r.outbound(threshold(0.5)), 0xe0_0000_0000_0000);
        let r = Randomness::of(&id, RANDOM_FLAG, "ot=th:4");
        assert_eq!(r.outbound(threshold(0.5)), threshold(0.5));
        // Inconsistent upstream th (R below it) is dropped.
        let r = Randomness::of(&[0u8; 16], RANDOM_FLAG, "ot=th:8");
        assert_eq!(r.outbound(0), 0);
        assert_eq!(
            with_threshold("a=1,ot=th:4;rv:0123456789abcd,b=2", threshold(0.5)),
            "ot=th:8;rv:0123456789abcd,a=1,b=2"
        );
        assert_eq!(with_threshold("", threshold(0.25)), "ot=th:c");
    }
}
