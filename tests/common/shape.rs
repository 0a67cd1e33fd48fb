//! Checks a JSON answer against a shape written from another tool's own
//! definitions (tests/fixtures/apiv3/shapes.json describes the language):
//! required and optional fields, scalar kinds, arrays, nested objects.

use std::path::Path;

use serde_json::Value;

/// The named shape from a shapes file under tests/fixtures/.
pub fn load(file: &str, name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    all.get(name)
        .unwrap_or_else(|| panic!("{file} has no shape {name:?}"))
        .clone()
}

/// Panics naming the first place where `v` does not fit `shape`.
pub fn assert_fits(v: &Value, shape: &Value) {
    if let Err(e) = fits(v, shape, "$") {
        panic!("{e}\nin {v}");
    }
}

/// `Err` names where `v` departs from `shape` (`at` is the path so far).
pub fn fits(v: &Value, shape: &Value, at: &str) -> Result<(), String> {
    match shape {
        Value::String(kind) => scalar(v, kind).map_err(|e| format!("{at}: {e}")),
        Value::Array(item) => {
            let [item] = item.as_slice() else {
                return Err(format!("{at}: an array shape has one item shape"));
            };
            let list = v
                .as_array()
                .ok_or_else(|| format!("{at}: expected an array, got {v}"))?;
            list.iter()
                .enumerate()
                .try_for_each(|(i, x)| fits(x, item, &format!("{at}[{i}]")))
        }
        Value::Object(fields) => {
            let obj = v
                .as_object()
                .ok_or_else(|| format!("{at}: expected an object, got {v}"))?;
            for (name, field_shape) in fields {
                let (key, optional) = match name.strip_suffix('?') {
                    Some(k) => (k, true),
                    None => (name.as_str(), false),
                };
                match obj.get(key) {
                    Some(x) => fits(x, field_shape, &format!("{at}.{key}"))?,
                    None if optional => {}
                    None => return Err(format!("{at}: required field {key:?} is missing")),
                }
            }
            Ok(())
        }
        other => Err(format!("{at}: bad shape {other}")),
    }
}

fn scalar(v: &Value, kind: &str) -> Result<(), String> {
    let ok = match kind {
        "string" => v.is_string(),
        "int" => v.is_u64(),
        "bool" => v.is_boolean(),
        "decimal-string" => v.as_str().is_some_and(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
        }),
        "trace-id" => v.as_str().is_some_and(|s| {
            s.len() == 32
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && s.bytes().any(|b| b != b'0')
        }),
        "number" => v.is_number(),
        "number-or-null" => v.is_number() || v.is_null(),
        "proto-double" => {
            v.is_number() || matches!(v.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
        }
        "rfc3339" => v.as_str().is_some_and(is_proto_timestamp),
        "span-id" => v.as_str().is_some_and(|s| {
            s.len() == 16
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }),
        other => return Err(format!("unknown scalar kind {other:?}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {kind}, got {v}"))
    }
}

/// `2021-06-03T09:12:06Z`, `2021-09-10T11:52:27.520Z`: the proto3 JSON
/// form of a `google.protobuf.Timestamp` (UTC, 0/3/6/9 fractional digits).
fn is_proto_timestamp(s: &str) -> bool {
    let Some(body) = s.strip_suffix('Z') else {
        return false;
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    let b = secs.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && [0, 3, 6, 9].contains(&frac.len())
        && frac.bytes().all(|c| c.is_ascii_digit())
        && (frac.is_empty() != body.contains('.'))
}
