//! The `TraceQueryParameters` of Jaeger's api_v3, as a GET query string
//! (`?query.service_name=` or `?query.serviceName=`: grpc-gateway accepts
//! both the proto field names and their JSON names, and Jaeger UI releases
//! have sent either) or as a POST body (`{"query": {...}}`, again either
//! spelling). Unknown `query.*` fields and the structured `filter` are
//! refused by name rather than ignored: a dropped predicate would answer
//! with more traces than were asked for.

use std::collections::HashMap;

use serde_json::Value;

use super::params::{bad, go_duration_ns, rfc3339_ns, Params};
use crate::error::{Error, Result};
use crate::model::{now_ns, SearchQuery};

/// One field of `TraceQueryParameters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Field {
    Service,
    Operation,
    Attributes,
    StartMin,
    StartMax,
    DurationMin,
    DurationMax,
    Depth,
    Raw,
    Filter,
}

/// Every accepted spelling: proto names, their JSON (camelCase) names, and
/// the `span_name` / `num_traces` spellings other UI releases send.
const SPELLINGS: &[(&str, Field)] = &[
    ("service_name", Field::Service),
    ("serviceName", Field::Service),
    ("operation_name", Field::Operation),
    ("operationName", Field::Operation),
    ("span_name", Field::Operation),
    ("spanName", Field::Operation),
    ("attributes", Field::Attributes),
    ("start_time_min", Field::StartMin),
    ("startTimeMin", Field::StartMin),
    ("start_time_max", Field::StartMax),
    ("startTimeMax", Field::StartMax),
    ("duration_min", Field::DurationMin),
    ("durationMin", Field::DurationMin),
    ("duration_max", Field::DurationMax),
    ("durationMax", Field::DurationMax),
    ("search_depth", Field::Depth),
    ("searchDepth", Field::Depth),
    ("num_traces", Field::Depth),
    ("numTraces", Field::Depth),
    ("raw_traces", Field::Raw),
    ("rawTraces", Field::Raw),
    ("filter", Field::Filter),
];

fn field(name: &str) -> Option<Field> {
    SPELLINGS.iter().find(|(s, _)| *s == name).map(|(_, f)| *f)
}

/// A parsed api_v3 search: the store query plus `raw_traces`.
#[derive(Clone, Debug, PartialEq)]
pub struct V3Search {
    pub query: SearchQuery,
    pub raw: bool,
}

/// The fields as given: field → (the name the client used, text value).
#[derive(Default)]
pub struct Given(HashMap<Field, (String, String)>);

impl Given {
    fn put(&mut self, name: String, f: Field, value: String) -> Result<()> {
        if value.is_empty() {
            return Ok(());
        }
        if let Some((first, _)) = self.0.get(&f) {
            if *first != name {
                return Err(Error::InvalidArgument(format!(
                    "parameters {first} and {name} are the same field: give one"
                )));
            }
        }
        self.0.insert(f, (name, value));
        Ok(())
    }

    fn get(&self, f: Field) -> Option<(&str, &str)> {
        self.0.get(&f).map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// From a GET query string. Parameters outside `query.` (cache busters and
/// the like) are not api_v3's and are left alone.
pub fn from_params(p: &Params) -> Result<Given> {
    let mut given = Given::default();
    for (k, v) in p.iter() {
        let Some(name) = k.strip_prefix("query.") else {
            continue;
        };
        let f = field(name).ok_or_else(|| unknown(k))?;
        given.put(k.to_string(), f, v.to_string())?;
    }
    Ok(given)
}

/// From a POST body `{"query": {...}}`, where `attributes` is an object
/// and `searchDepth` / `rawTraces` may be JSON numbers and booleans.
pub fn from_body(body: &[u8]) -> Result<Given> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidArgument(format!("request body is not JSON: {e}")))?;
    let Value::Object(mut top) = v else {
        return Err(Error::InvalidArgument(
            "request body must be a JSON object {\"query\": {...}}".into(),
        ));
    };
    let query = top
        .remove("query")
        .unwrap_or(Value::Object(Default::default()));
    if let Some(k) = top.keys().next() {
        return Err(Error::InvalidArgument(format!(
            "request body field {k:?} is not known (expected \"query\")"
        )));
    }
    let Value::Object(fields) = query else {
        return Err(Error::InvalidArgument(
            "request body field \"query\" must be an object".into(),
        ));
    };
    let mut given = Given::default();
    for (k, v) in fields {
        let name = format!("query.{k}");
        let f = field(&k).ok_or_else(|| unknown(&name))?;
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            obj @ Value::Object(_) if f == Field::Attributes || f == Field::Filter => {
                obj.to_string()
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "parameter {name}: {other} has the wrong JSON type"
                )))
            }
        };
        given.put(name, f, text)?;
    }
    Ok(given)
}

fn unknown(name: &str) -> Error {
    Error::InvalidArgument(format!(
        "parameter {name} is not a field of api_v3 TraceQueryParameters"
    ))
}

/// The attributes map, as a JSON object of attribute → string (numbers and
/// booleans are taken as their text, as Jaeger's tag search does).
fn attributes(name: &str, raw: &str) -> Result<Vec<(String, String)>> {
    let expected = "a JSON object of attribute to string value";
    let map: serde_json::Map<String, Value> =
        serde_json::from_str(raw).map_err(|_| bad(name, raw, expected))?;
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(n) => Ok((k, n.to_string())),
            Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(bad(name, raw, expected)),
        })
        .collect()
}

impl Given {
    fn time(&self, f: Field) -> Result<Option<u64>> {
        self.get(f)
            .map(|(n, v)| rfc3339_ns(v).ok_or_else(|| bad(n, v, "an RFC 3339 time")))
            .transpose()
    }

    fn duration(&self, f: Field) -> Result<Option<u64>> {
        self.get(f)
            .map(|(n, v)| {
                go_duration_ns(v).ok_or_else(|| bad(n, v, "a duration such as 1.5s or 100ms"))
            })
            .transpose()
    }

    /// The search this names. Unlike Jaeger, the time bounds are optional:
    /// the end defaults to now and the start to one hour before the end.
    pub fn search(&self, cfg: &crate::config::QueryConfig) -> Result<V3Search> {
        if let Some((n, _)) = self.get(Field::Filter) {
            return Err(Error::InvalidArgument(format!(
                "parameter {n}: structured filters are not supported; use the other query fields"
            )));
        }
        let depth = self
            .get(Field::Depth)
            .map(|(n, v)| {
                v.parse::<u64>()
                    .map_err(|_| bad(n, v, "a non-negative integer"))
            })
            .transpose()?;
        let raw = match self.get(Field::Raw) {
            None | Some((_, "false" | "0")) => false,
            Some((_, "true" | "1")) => true,
            Some((n, v)) => return Err(bad(n, v, "true or false")),
        };
        let mut q = SearchQuery {
            service: self.get(Field::Service).map(|(_, v)| v.to_string()),
            operation: self.get(Field::Operation).map(|(_, v)| v.to_string()),
            min_duration_ns: self.duration(Field::DurationMin)?,
            max_duration_ns: self.duration(Field::DurationMax)?,
            limit: super::clamp_limit(cfg, depth),
            ..Default::default()
        };
        if let Some((n, v)) = self.get(Field::Attributes) {
            q.tags = attributes(n, v)?;
        }
        if let (Some(a), Some(b)) = (q.min_duration_ns, q.max_duration_ns) {
            if a > b {
                let (n, _) = self.get(Field::DurationMin).unwrap_or_default();
                return Err(Error::InvalidArgument(format!(
                    "parameter {n}: must not exceed the maximum duration"
                )));
            }
        }
        // start_time_max is exclusive in api_v3; the store's window is
        // inclusive.
        let end = match self.time(Field::StartMax)? {
            Some(t) => t.saturating_sub(1),
            None => now_ns(),
        };
        let start = self
            .time(Field::StartMin)?
            .unwrap_or(end.saturating_sub(super::jaeger::DEFAULT_LOOKBACK_NS));
        if start > end {
            let (n, _) = self.get(Field::StartMin).unwrap_or_default();
            return Err(Error::InvalidArgument(format!(
                "parameter {n}: must be before the end of the time range"
            )));
        }
        q.start_ns = Some(start);
        q.end_ns = Some(end);
        Ok(V3Search { query: q, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(qs: &str) -> Result<V3Search> {
        from_params(&Params::parse(qs)?)?.search(&Default::default())
    }

    #[test]
    fn both_spellings_name_the_same_fields() {
        let snake = "query.service_name=a&query.operation_name=op&query.start_time_min=2024-01-02T03:04:05Z&query.start_time_max=2024-01-02T04:04:05Z&query.duration_min=1ms&query.duration_max=1.5s&query.search_depth=7&query.attributes=%7B%22k%22%3A1%7D&query.raw_traces=true";
        let camel = "query.serviceName=a&query.operationName=op&query.startTimeMin=2024-01-02T03:04:05Z&query.startTimeMax=2024-01-02T04:04:05Z&query.durationMin=1ms&query.durationMax=1.5s&query.searchDepth=7&query.attributes=%7B%22k%22%3A1%7D&query.rawTraces=true";
        let a = get(snake).unwrap();
        assert_eq!(a, get(camel).unwrap());
        let q = &a.query;
        assert_eq!(q.service.as_deref(), Some("a"));
        assert_eq!(q.operation.as_deref(), Some("op"));
        assert_eq!(q.start_ns, Some(1_704_164_645_000_000_000));
        assert_eq!(q.end_ns, Some(1_704_168_245_000_000_000 - 1));
        assert_eq!(
            (q.min_duration_ns, q.max_duration_ns),
            (Some(1_000_000), Some(1_500_000_000))
        );
        assert_eq!(q.limit, 7);
        assert_eq!(q.tags, vec![("k".to_string(), "1".to_string())]);
        assert!(a.raw);
        let other = get("query.span_name=op&query.num_traces=3").unwrap();
        assert_eq!(
            (other.query.operation.as_deref(), other.query.limit),
            (Some("op"), 3)
        );
    }

    #[test]
    fn a_post_body_reads_like_the_query_string() {
        let body = br#"{"query":{"serviceName":"a","attributes":{"k":"1"},"searchDepth":7,"rawTraces":true,"startTimeMin":"2024-01-02T03:04:05Z","startTimeMax":"2024-01-02T04:04:05Z"}}"#;
        let post = from_body(body)
            .unwrap()
            .search(&Default::default())
            .unwrap();
        let qs = "query.service_name=a&query.attributes=%7B%22k%22%3A%221%22%7D&query.search_depth=7&query.raw_traces=true&query.start_time_min=2024-01-02T03:04:05Z&query.start_time_max=2024-01-02T04:04:05Z";
        assert_eq!(post, get(qs).unwrap());
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        for (qs, name) in [
            ("query.serviceNam=a", "query.serviceNam"),
            ("query.filter=%7B%7D", "query.filter"),
            ("query.start_time_min=yesterday", "query.start_time_min"),
            ("query.durationMax=1y", "query.durationMax"),
            ("query.durationMin=-1s", "query.durationMin"),
            ("query.searchDepth=many", "query.searchDepth"),
            ("query.attributes=%5B%5D", "query.attributes"),
            ("query.rawTraces=maybe", "query.rawTraces"),
            (
                "query.durationMin=2s&query.durationMax=1s",
                "query.durationMin",
            ),
            (
                "query.service_name=a&query.serviceName=b",
                "query.serviceName",
            ),
            (
                "query.startTimeMin=2024-01-02T05:00:00Z&query.startTimeMax=2024-01-02T04:00:00Z",
                "query.startTimeMin",
            ),
        ] {
            let e = get(qs).unwrap_err().to_string();
            assert!(e.contains(name), "{qs}: {e}");
        }
        for (body, what) in [
            (&b"[]"[..], "JSON object"),
            (b"{\"query\":{\"nope\":1}}", "query.nope"),
            (b"{\"q\":{}}", "\"q\""),
            (b"{\"query\":{\"serviceName\":[1]}}", "query.serviceName"),
            (b"not json", "not JSON"),
        ] {
            let e = from_body(body).and_then(|g| g.search(&Default::default()));
            let e = e.unwrap_err().to_string();
            assert!(e.contains(what), "{}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn other_parameters_are_not_api_v3_fields_and_the_window_defaults() {
        let s = get("_=123&query.serviceName=a").unwrap();
        let (start, end) = (s.query.start_ns.unwrap(), s.query.end_ns.unwrap());
        assert_eq!(end - start, super::super::jaeger::DEFAULT_LOOKBACK_NS);
        assert!(!s.raw);
    }
}
