//! The Elasticsearch tier: span documents in daily indices for 7-day tag
//! search. See docs/ELASTICSEARCH.md.
//!
//! - [`mapping`]: the composable index template (what is indexed, and how).
//! - [`document`]: span → document; [`span_json`]: the full span in `_source`.
//! - [`backlog`]: the durable on-disk queue between `write` and `_bulk`.
//! - [`writer`]: drains the backlog with `_bulk`, retries, dead-letters.
//! - [`reader`]: [`reader::EsStore`], the `SpanReader` over the indices.
//! - [`janitor`]: deletes daily indices past the retention window.
//! - [`retry`]: what is retried and what is not, decided once for the sink.
//! - [`sink`]: the writer and janitor stages of the supervision tree.

pub mod backlog;
pub mod config;
pub mod deadletter;
pub mod document;
pub mod janitor;
pub mod mapping;
pub mod query;
pub mod reader;
pub mod retry;
pub mod sink;
pub mod span_json;
pub mod writer;
pub mod writer_metrics;

use std::time::Duration;

use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::Elasticsearch;

use crate::config::ElasticsearchConfig;
use crate::error::{Error, Result};

pub use reader::EsStore;
pub(crate) use retry::{check_status, client_error};

const NS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// A client for the configured node.
pub fn client(cfg: &ElasticsearchConfig) -> Result<Elasticsearch> {
    let url = Url::parse(&cfg.url)
        .map_err(|e| Error::config("elasticsearch.url", format!("{:?}: {e}", cfg.url)))?;
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
        .timeout(Duration::from_millis(cfg.request_timeout_ms))
        .disable_proxy()
        .build()
        .map_err(|e| Error::config("elasticsearch.url", e.to_string()))?;
    Ok(Elasticsearch::new(transport))
}

/// Every span index of a prefix.
pub fn index_pattern(prefix: &str) -> String {
    format!("{prefix}-spans-*")
}

/// The daily index (UTC day of the span's start) a span goes to.
pub fn daily_index(prefix: &str, start_ns: u64) -> String {
    let (y, m, d) = civil_from_days(start_ns / NS_PER_SEC / SECS_PER_DAY);
    format!("{prefix}-spans-{y:04}.{m:02}.{d:02}")
}

/// Days since the epoch of the UTC day holding `ns`.
pub fn day_of(ns: u64) -> u64 {
    ns / NS_PER_SEC / SECS_PER_DAY
}

/// Parses the date suffix of `<prefix>-spans-YYYY.MM.DD` into days since
/// the epoch; `None` for any other name.
pub fn index_day(prefix: &str, index: &str) -> Option<u64> {
    let date = index.strip_prefix(prefix)?.strip_prefix("-spans-")?;
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'.' || b[7] != b'.' {
        return None;
    }
    let num = |s: &str| -> Option<u64> {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, m, d) = (
        num(date.get(0..4)?)?,
        num(date.get(5..7)?)?,
        num(date.get(8..10)?)?,
    );
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || y < 1970 {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Index names of the UTC days from `from_ns` to `to_ns` inclusive, or
/// `None` when the span of days is too long to list (use the pattern).
pub fn daily_indices(prefix: &str, from_ns: u64, to_ns: u64, max_days: u64) -> Option<Vec<String>> {
    let (a, b) = (day_of(from_ns), day_of(to_ns));
    if b < a || b - a >= max_days {
        return None;
    }
    Some(
        (a..=b)
            .map(|day| daily_index(prefix, day * SECS_PER_DAY * NS_PER_SEC))
            .collect(),
    )
}

/// RFC 3339 with nanoseconds, as `date_nanos` takes it.
pub fn format_rfc3339_nanos(ns: u64) -> String {
    let secs = ns / NS_PER_SEC;
    let (y, m, d) = civil_from_days(secs / SECS_PER_DAY);
    let sod = secs % SECS_PER_DAY;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ns % NS_PER_SEC
    )
}

fn is_leap(y: u64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm, restricted to dates after the epoch).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01; the inverse of
/// [`civil_from_days`] for dates on or after the epoch.
pub fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        for day in (0..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn index_names_follow_the_utc_day() {
        let ns = 1_704_067_200 * NS_PER_SEC; // 2024-01-01T00:00:00Z
        assert_eq!(daily_index("s", ns), "s-spans-2024.01.01");
        assert_eq!(daily_index("s", ns - 1), "s-spans-2023.12.31");
        assert_eq!(index_day("s", "s-spans-2024.01.01"), Some(19_723));
        assert_eq!(index_day("s", "s-spans-2024.02.30"), None);
        assert_eq!(index_day("s", "s-spans-2024.1.01"), None);
        assert_eq!(index_day("s", "other-spans-2024.01.01"), None);
        assert_eq!(index_day("s", "s-spans-2024.01.01-x"), None);
        assert_eq!(index_day("s", "s-spans-+024.01.01"), None);
        let days = daily_indices("s", ns - 1, ns + 1, 10).unwrap();
        assert_eq!(days, vec!["s-spans-2023.12.31", "s-spans-2024.01.01"]);
        assert!(daily_indices("s", 0, ns, 10).is_none());
    }

    #[test]
    fn rfc3339_keeps_nanoseconds() {
        assert_eq!(
            format_rfc3339_nanos(1_704_067_200_123_456_789),
            "2024-01-01T00:00:00.123456789Z"
        );
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339_nanos(86_399 * NS_PER_SEC + 5),
            "1970-01-01T23:59:59.000000005Z"
        );
    }
}
