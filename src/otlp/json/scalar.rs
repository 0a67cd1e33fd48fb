//! Typed scalars of OTLP/JSON: 64-bit integers as strings or numbers,
//! enums as integers or names, hex ids, base64 bytes, `null` as default.

use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// `null` reads as the default, as proto3 JSON requires.
pub(super) fn nd<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Accepts a JSON number or a decimal string (proto3 JSON writes 64-bit
/// integers as strings; many encoders write numbers).
struct IntVisitor;

impl<'de> Visitor<'de> for IntVisitor {
    type Value = i128;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or a decimal string")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(v.into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1.8e19 {
            Ok(v as i128)
        } else {
            Err(E::custom(format!("{v} is not an integer")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
        v.trim()
            .parse::<i128>()
            .map_err(|_| E::custom(format!("{v:?} is not an integer")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<i128, E> {
        Ok(0)
    }
}

pub(super) fn int_in<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    d: D,
    what: &str,
) -> Result<T, D::Error> {
    let v = d.deserialize_any(IntVisitor)?;
    T::try_from(v).map_err(|_| de::Error::custom(format!("{v} is out of range for {what}")))
}

pub(super) fn u64_any<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    int_in(d, "uint64")
}

pub(super) fn u32_any<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int_in(d, "uint32")
}

pub(super) fn opt_i64_any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int_in(d, "int64").map(Some)
}

pub(super) fn opt_f64_any<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, or \"NaN\", \"Infinity\", \"-Infinity\"")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            match v {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => v
                    .parse()
                    .map_err(|_| E::custom(format!("{v:?} is not a number"))),
            }
        }
    }
    d.deserialize_any(V).map(Some)
}

/// Enums as integers (the OTLP encoding) or by name.
pub(super) fn enum_any<'de, D: Deserializer<'de>>(
    d: D,
    by_name: fn(&str) -> Option<i32>,
) -> Result<i32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum E {
        Int(i64),
        Name(String),
        Null(()),
    }
    match E::deserialize(d)? {
        E::Int(i) => {
            i32::try_from(i).map_err(|_| de::Error::custom(format!("enum value {i} out of range")))
        }
        E::Name(s) => s
            .parse::<i32>()
            .ok()
            .or_else(|| by_name(&s))
            .ok_or_else(|| de::Error::custom(format!("unknown enum value {s:?}"))),
        E::Null(()) => Ok(0),
    }
}

pub(super) fn span_kind<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enum_any(d, |s| crate::model::SpanKind::parse(s).map(|k| k as i32))
}

pub(super) fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enum_any(d, |s| {
        match s.to_ascii_uppercase().trim_start_matches("STATUS_CODE_") {
            "UNSET" => Some(0),
            "OK" => Some(1),
            "ERROR" => Some(2),
            _ => None,
        }
    })
}

/// Ids are hex in OTLP/JSON. Base64 (what a generic proto3 JSON encoder
/// writes) is accepted when the text is not hex. Wrong lengths pass through
/// to validation, which rejects the span rather than the request.
pub(super) fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s: String = nd(d)?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(b) = hex::decode(&s) {
        return Ok(b);
    }
    base64::engine::general_purpose::STANDARD
        .decode(&s)
        .map_err(|_| de::Error::custom(format!("id {s:?} is neither hex nor base64")))
}

pub(super) fn opt_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let s: String = nd(d)?;
    let e = &base64::engine::general_purpose::STANDARD;
    let r = e
        .decode(&s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&s));
    r.map(Some)
        .map_err(|_| de::Error::custom("bytesValue is not base64"))
}
