//! Parsing of query-string parameters shared by the Jaeger, api_v3 and
//! Tempo handlers: repeated keys, Go durations, RFC 3339 times, logfmt.
//! Every failure names the parameter, so a 400 tells the caller what to fix.

use crate::error::{Error, Result};
use crate::model::TraceId;

/// The decoded query string, keeping repeated keys (`traceID=a&traceID=b`).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query_string: &str) -> Result<Params> {
        actix_web::web::Query::<Vec<(String, String)>>::from_query(query_string)
            .map(|q| Params(q.into_inner()))
            .map_err(|e| Error::InvalidArgument(format!("malformed query string: {e}")))
    }

    /// The first non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every (key, value) pair with a non-empty value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every non-empty value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| bad(key, v, "a non-negative integer"))
            })
            .transpose()
    }

    pub fn duration_ns(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                go_duration_ns(v)
                    .ok_or_else(|| bad(key, v, "a duration such as 1.2s, 100ms or 5us"))
            })
            .transpose()
    }

    pub fn rfc3339_ns(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| rfc3339_ns(v).ok_or_else(|| bad(key, v, "an RFC 3339 time")))
            .transpose()
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(bad(key, v, "true or false")),
        }
    }
}

/// A trace id parameter (hex, Jaeger and Tempo alike).
pub fn parse_trace_id(key: &str, raw: &str) -> Result<TraceId> {
    TraceId::from_hex(raw)
        .filter(|t| !t.is_zero())
        .ok_or_else(|| bad(key, raw, "a trace id (1 to 32 hex digits, not all zero)"))
}

/// Whether the client asked for protobuf (Tempo clients do).
pub fn wants_protobuf(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

/// The error for a parameter that does not parse.
pub fn bad(key: &str, value: &str, expected: &str) -> Error {
    let shown: String = value.chars().take(64).collect();
    Error::InvalidArgument(format!("parameter {key}: {shown:?} is not {expected}"))
}

/// Parses a Go `time.ParseDuration` string (`1h2m`, `1.5s`, `100ms`, `5us`,
/// `5µs`, `0`) into nanoseconds. Negative durations are rejected: no caller
/// has a use for them.
pub fn go_duration_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = int.checked_mul(scale)?;
        // The fraction is applied digit by digit so `1.5h` stays exact.
        let mut div: u128 = 1;
        for d in frac.bytes().take(18) {
            div *= 10;
            part += u128::from(d - b'0') * scale / div;
        }
        total = total.checked_add(part)?;
        rest = tail;
    }
    u64::try_from(total).ok()
}

/// A signed offset in microseconds with its sign always shown (`+12µs`).
pub fn signed_us(us: i64) -> String {
    if us >= 0 {
        format!("+{us}µs")
    } else {
        format!("{us}µs")
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time (`2024-05-01T10:00:00Z`,
/// `2024-05-01T12:00:00.123456789+02:00`) into nanoseconds since the epoch.
pub fn rfc3339_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && (tz.starts_with('+') || tz.starts_with('-'))
            && tz.as_bytes()[3] == b':' =>
        {
            let h = i64::from(num(i + 1..i + 3)?);
            let m = i64::from(num(i + 4..i + 6)?);
            let v = h * 3600 + m * 60;
            if tz.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec) - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Parses logfmt (`service.name="front end" http.status_code=500`), as
/// Tempo's legacy `tags` search parameter uses.
pub fn logfmt(s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() || key.contains('"') {
            return Err(bad("tags", s, "logfmt (key=value key2=\"quoted value\")"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad("tags", s, "logfmt (unterminated quote)"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ns("1.2s"), Some(1_200_000_000));
        assert_eq!(go_duration_ns("100ms"), Some(100_000_000));
        assert_eq!(go_duration_ns("5us"), Some(5_000));
        assert_eq!(go_duration_ns("5µs"), Some(5_000));
        assert_eq!(go_duration_ns("1h2m3s"), Some(3_723_000_000_000));
        assert_eq!(go_duration_ns("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration_ns("0"), Some(0));
        assert_eq!(go_duration_ns(".5s"), Some(500_000_000));
        for bad in ["", "1", "ms", "-1s", "1x", "1..2s", "99999999999h", "1s2"] {
            assert_eq!(go_duration_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ns("2024-01-02T03:04:05Z"),
            Some(1_704_164_645_000_000_000)
        );
        assert_eq!(
            rfc3339_ns("2024-01-02T03:04:05.5Z"),
            Some(1_704_164_645_500_000_000)
        );
        assert_eq!(
            rfc3339_ns("2024-01-02T05:04:05.000000001+02:00"),
            Some(1_704_164_645_000_000_001)
        );
        assert_eq!(
            rfc3339_ns("2024-01-02T01:04:05-02:00"),
            Some(1_704_164_645_000_000_000)
        );
        for bad in [
            "",
            "2024-01-02",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05.Z",
            "１９７０-01-01T00:00:00Z",
        ] {
            assert_eq!(rfc3339_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn logfmt_pairs() {
        let got = logfmt(r#" service.name="front end" http.status_code=500 q="a\"b" "#).unwrap();
        assert_eq!(
            got,
            vec![
                ("service.name".into(), "front end".into()),
                ("http.status_code".into(), "500".into()),
                ("q".into(), "a\"b".into()),
            ]
        );
        assert!(logfmt("novalue").is_err());
        assert!(logfmt("k=\"open").is_err());
        assert!(logfmt("").unwrap().is_empty());
    }

    #[test]
    fn params_keep_repeats_and_name_bad_values() {
        let p = Params::parse("traceID=a&traceID=b&limit=x&empty=").unwrap();
        assert_eq!(p.all("traceID"), vec!["a", "b"]);
        assert_eq!(p.get("empty"), None);
        let e = p.u64("limit").unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");
    }
}
