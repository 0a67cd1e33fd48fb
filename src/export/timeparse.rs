//! Parsing of the time, duration and tag arguments shared by the CLI and
//! the HTTP endpoint. Every failure names the bad value.

use crate::error::{Error, Result};

const NS_PER_SEC: u64 = 1_000_000_000;

/// Parses a point in time, relative to `now_ns` where relative:
/// `now`, `-1h` / `-30m` / `-15s` / `-2d` / `-500ms` (any duration, see
/// [`parse_duration`], with a leading `-`), RFC3339 (`2026-11-26T19:00:00Z`),
/// or unix time: up to 11 digits are seconds (a fraction is allowed), 17 or
/// more digits are nanoseconds. Milli/microsecond integers are ambiguous and
/// rejected rather than guessed.
pub fn parse_time(s: &str, now_ns: u64) -> Result<u64> {
    let t = s.trim();
    let bad = |why: &str| Error::InvalidArgument(format!("bad time {s:?}: {why}"));
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.eq_ignore_ascii_case("now") {
        return Ok(now_ns);
    }
    if let Some(rel) = t.strip_prefix('-') {
        let d = parse_duration(rel)
            .map_err(|_| bad("expected a relative time such as -1h, -30m, -15s"))?;
        return now_ns.checked_sub(d).ok_or_else(|| bad("before the epoch"));
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = int.len();
        if int.is_empty() || frac.contains('.') {
            return Err(bad("not a number"));
        }
        let v: u64 = int.parse().map_err(|_| bad("number too large"))?;
        if digits <= 11 {
            let frac_ns = if frac.is_empty() {
                0
            } else {
                let f: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
                f.parse::<u64>().map_err(|_| bad("bad fraction"))?
            };
            return v
                .checked_mul(NS_PER_SEC)
                .and_then(|n| n.checked_add(frac_ns))
                .ok_or_else(|| bad("out of range"));
        }
        if digits >= 17 && frac.is_empty() {
            return Ok(v);
        }
        return Err(bad(
            "unix time must be seconds (up to 11 digits) or nanoseconds (17+ digits)",
        ));
    }
    let dt =
        chrono::DateTime::parse_from_rfc3339(t).map_err(|e| bad(&format!("not RFC3339 ({e})")))?;
    let ns = dt
        .timestamp_nanos_opt()
        .ok_or_else(|| bad("out of range"))?;
    u64::try_from(ns).map_err(|_| bad("before the epoch"))
}

/// Parses a duration: a number (fraction allowed) followed by `ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h` or `d`, e.g. `250ms`, `1.5s`, `2h`.
pub fn parse_duration(s: &str) -> Result<u64> {
    let t = s.trim();
    let bad = || {
        Error::InvalidArgument(format!(
            "bad duration {s:?}: expected e.g. 250ms, 1.5s, 2m, 1h"
        ))
    };
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let unit_ns: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        _ => return Err(bad()),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let ns = v * unit_ns;
    if !ns.is_finite() || ns < 0.0 || ns > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(ns.round() as u64)
}

/// Parses one `key=value` tag.
pub fn parse_tag(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(Error::InvalidArgument(format!(
            "bad tag {s:?}: expected key=value"
        ))),
    }
}

/// Parses the `tags` query parameter: Jaeger's JSON object
/// (`{"http.status_code":"500"}`) or space-separated `key=value` pairs.
pub fn parse_tags_param(s: &str) -> Result<Vec<(String, String)>> {
    let t = s.trim();
    if t.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(t).map_err(|e| {
                Error::InvalidArgument(format!("bad tags {s:?}: not a JSON object ({e})"))
            })?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect());
    }
    t.split_whitespace().map(parse_tag).collect()
}

/// RFC3339 rendering of a nanosecond timestamp, for messages and file names.
pub fn format_time(ns: u64) -> String {
    let dt = chrono::DateTime::from_timestamp_nanos(ns.min(i64::MAX as u64) as i64);
    dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_180_000 * NS_PER_SEC;

    #[test]
    fn times_in_every_accepted_form() {
        assert_eq!(parse_time("now", NOW).unwrap(), NOW);
        assert_eq!(parse_time("-1h", NOW).unwrap(), NOW - 3600 * NS_PER_SEC);
        assert_eq!(parse_time("-500ms", NOW).unwrap(), NOW - 500_000_000);
        assert_eq!(parse_time("1764180000", NOW).unwrap(), NOW);
        assert_eq!(parse_time("1764180000.25", NOW).unwrap(), NOW + 250_000_000);
        assert_eq!(parse_time("1764180000000000000", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2025-11-26T18:00:00Z", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2025-11-26T19:00:00+01:00", NOW).unwrap(), NOW);
    }

    #[test]
    fn bad_times_are_named() {
        for s in [
            "",
            "yesterday",
            "1764180000000",
            "-1y",
            "2025-13-01T00:00:00Z",
            "1.2.3",
        ] {
            let e = parse_time(s, NOW).unwrap_err().to_string();
            assert!(e.contains("bad time"), "{s}: {e}");
        }
    }

    #[test]
    fn durations_and_tags() {
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("250us").unwrap(), 250_000);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_tag("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_tag("novalue").is_err());
        let t = parse_tags_param(r#"{"http.status_code":500,"x":"y"}"#).unwrap();
        assert!(t.contains(&("http.status_code".into(), "500".into())));
        assert_eq!(parse_tags_param("a=1 b=2").unwrap().len(), 2);
        assert_eq!(format_time(NOW), "2025-11-26T18:00:00Z");
    }
}
