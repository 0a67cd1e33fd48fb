//! Retention: deletes daily span indices older than `retention_days`, as
//! Jaeger's es-index-cleaner does. With retention N, the N most recent UTC
//! days (today included) are kept. The decision is a pure function of the
//! index names and the clock; only names of the exact daily form are ever
//! considered, so nothing else in the cluster can be deleted.

use elasticsearch::cat::CatIndicesParts;
use elasticsearch::indices::IndicesDeleteParts;
use elasticsearch::Elasticsearch;
use serde_json::Value;

use super::{check_status, client_error, day_of, index_day, index_pattern};
use crate::error::Result;

/// The indices among `names` to delete at `now_ns`: those whose day is
/// before the first of the `retention_days` most recent days.
pub fn indices_to_delete(
    prefix: &str,
    names: &[String],
    now_ns: u64,
    retention_days: u32,
) -> Vec<String> {
    let today = day_of(now_ns);
    let first_kept = today.saturating_sub(u64::from(retention_days.max(1)) - 1);
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| index_day(prefix, n).is_some_and(|d| d < first_kept))
        .cloned()
        .collect();
    out.sort();
    out
}

/// Names of the existing span indices of `prefix`.
pub async fn list_indices(client: &Elasticsearch, prefix: &str) -> Result<Vec<String>> {
    let pattern = index_pattern(prefix);
    let resp = client
        .cat()
        .indices(CatIndicesParts::Index(&[&pattern]))
        .format("json")
        .h(&["index"])
        .expand_wildcards(&[elasticsearch::params::ExpandWildcards::All])
        .send()
        .await
        .map_err(|e| client_error("cat indices", e))?;
    let resp = check_status("cat indices", resp).await?;
    let rows: Value = resp
        .json()
        .await
        .map_err(|e| client_error("cat indices response", e))?;
    Ok(rows
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["index"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// One janitor pass; returns the indices it deleted.
pub async fn run_once(
    client: &Elasticsearch,
    prefix: &str,
    retention_days: u32,
    now_ns: u64,
) -> Result<Vec<String>> {
    let names = list_indices(client, prefix).await?;
    let doomed = indices_to_delete(prefix, &names, now_ns, retention_days);
    // Chunked so the request line stays short.
    for chunk in doomed.chunks(50) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let resp = client
            .indices()
            .delete(IndicesDeleteParts::Index(&refs))
            .ignore_unavailable(true)
            .send()
            .await
            .map_err(|e| client_error("delete index", e))?;
        check_status("delete index", resp).await?;
        tracing::info!(indices = ?chunk, "elasticsearch janitor: deleted indices past retention");
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400 * 1_000_000_000;

    fn names(days: &[&str]) -> Vec<String> {
        days.iter().map(|d| format!("p-spans-{d}")).collect()
    }

    #[test]
    fn keeps_the_last_n_days_including_today() {
        // 2024-03-10T12:00:00Z
        let now = super::super::days_from_civil(2024, 3, 10) * DAY + DAY / 2;
        let all = names(&[
            "2024.03.02",
            "2024.03.03",
            "2024.03.04",
            "2024.03.05",
            "2024.03.09",
            "2024.03.10",
            "2024.03.11",
        ]);
        assert_eq!(
            indices_to_delete("p", &all, now, 7),
            names(&["2024.03.02", "2024.03.03"])
        );
        assert_eq!(indices_to_delete("p", &all, now, 1).len(), 5);
    }

    #[test]
    fn midnight_utc_is_the_cutover() {
        let midnight = super::super::days_from_civil(2024, 1, 8) * DAY;
        let all = names(&["2024.01.01", "2024.01.02"]);
        // One nanosecond before midnight of Jan 8: Jan 1 is still 7 days in.
        assert!(indices_to_delete("p", &all, midnight - 1, 7).is_empty());
        // At midnight Jan 1 falls out of the window; Jan 2 stays.
        assert_eq!(
            indices_to_delete("p", &all, midnight, 7),
            names(&["2024.01.01"])
        );
        // Across a year boundary and a leap day.
        let mar1 = super::super::days_from_civil(2024, 3, 1) * DAY;
        let leap = names(&["2024.02.28", "2024.02.29"]);
        assert_eq!(
            indices_to_delete("p", &leap, mar1, 2),
            names(&["2024.02.28"])
        );
    }

    #[test]
    fn foreign_and_malformed_names_are_never_deleted() {
        let now = super::super::days_from_civil(2024, 6, 1) * DAY;
        let all: Vec<String> = [
            "q-spans-2020.01.01",
            "p-spans-2020.01.01-restored",
            "p-spans-2020.13.01",
            "p-spans-20200101",
            "p-other-2020.01.01",
            "p-spans-2020.01.01",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            indices_to_delete("p", &all, now, 7),
            vec!["p-spans-2020.01.01".to_string()]
        );
    }
}
