//! PII scrubbing at the edge: before anything is stored, string attribute
//! values (span, resource, scope, event and link attributes) are scanned for
//! credit-card numbers (Luhn-checked), e-mail addresses and `Bearer` tokens,
//! and the matches are replaced by `[REDACTED:<kind>]`. Values of keys listed
//! in `scrub.redact_keys` are replaced whole by `[REDACTED]`.
//!
//! The scanners are hand-written single passes over the bytes (no regex):
//! every boundary they cut at is an ASCII byte, so slicing is UTF-8 safe.

use crate::config::ScrubConfig;
use crate::metrics::Counter;
use crate::otlp::proto::common::v1 as pc;

pub const REDACTED: &str = "[REDACTED]";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Card,
    Email,
    Token,
}

impl Kind {
    fn replacement(self) -> &'static str {
        match self {
            Kind::Card => "[REDACTED:card]",
            Kind::Email => "[REDACTED:email]",
            Kind::Token => "[REDACTED:token]",
        }
    }
}

/// Applies the `scrub` config to OTLP attributes, counting redactions in
/// `strand_scrub_redactions_total{kind}`.
pub struct Scrubber {
    enabled: bool,
    redact_keys: Vec<String>,
    by_kind: [Counter; 4],
}

impl Scrubber {
    pub fn new(cfg: &ScrubConfig) -> Scrubber {
        let c = |k| {
            Counter::new(
                "strand_scrub_redactions_total",
                "attribute values redacted by PII scrubbing",
                &[("kind", k)],
            )
        };
        Scrubber {
            enabled: cfg.enabled,
            redact_keys: cfg
                .redact_keys
                .iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
            by_kind: [c("card"), c("email"), c("token"), c("key")],
        }
    }

    /// Scrubs attributes in place (recursing into arrays and maps); returns
    /// how many redactions were made.
    pub fn scrub_attrs(&self, attrs: &mut [pc::KeyValue]) -> u64 {
        if !self.enabled {
            return 0;
        }
        attrs.iter_mut().map(|kv| self.scrub_kv(kv)).sum()
    }

    fn scrub_kv(&self, kv: &mut pc::KeyValue) -> u64 {
        if self
            .redact_keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&kv.key))
        {
            kv.value = Some(pc::AnyValue {
                value: Some(pc::any_value::Value::StringValue(REDACTED.into())),
            });
            self.by_kind[3].inc();
            return 1;
        }
        kv.value.as_mut().map_or(0, |v| self.scrub_value(v))
    }

    fn scrub_value(&self, v: &mut pc::AnyValue) -> u64 {
        use pc::any_value::Value as V;
        match v.value.as_mut() {
            Some(V::StringValue(s)) => match scrub_text(s) {
                Some((clean, kinds)) => {
                    *s = clean;
                    for k in &kinds {
                        self.by_kind[*k as usize].inc();
                    }
                    kinds.len() as u64
                }
                None => 0,
            },
            Some(V::ArrayValue(a)) => a.values.iter_mut().map(|v| self.scrub_value(v)).sum(),
            Some(V::KvlistValue(m)) => m.values.iter_mut().map(|kv| self.scrub_kv(kv)).sum(),
            _ => 0,
        }
    }
}

/// Returns the scrubbed text and the kinds redacted, or `None` when the
/// text holds nothing to redact (the common case allocates nothing).
pub fn scrub_text(s: &str) -> Option<(String, Vec<Kind>)> {
    let b = s.as_bytes();
    let mut found: Vec<(usize, usize, Kind)> = Vec::new();
    find_cards(b, &mut found);
    if b.contains(&b'@') {
        find_emails(b, &mut found);
    }
    find_bearer_tokens(b, &mut found);
    if found.is_empty() {
        return None;
    }
    found.sort_unstable_by_key(|f| (f.0, f.1));
    let mut out = String::with_capacity(s.len());
    let mut kinds = Vec::new();
    let mut pos = 0;
    for (start, end, kind) in found {
        if start < pos {
            continue; // overlaps a previous match
        }
        out.push_str(s.get(pos..start)?);
        out.push_str(kind.replacement());
        kinds.push(kind);
        pos = end;
    }
    out.push_str(s.get(pos..)?);
    Some((out, kinds))
}

fn is_alnum(b: Option<&u8>) -> bool {
    b.is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Runs of 13–19 digits, optionally grouped by single spaces or dashes, not
/// glued to letters or digits, starting with 2–6 (every major card network;
/// this also spares 19-digit nanosecond timestamps, which start with 1),
/// and passing the Luhn check.
fn find_cards(b: &[u8], out: &mut Vec<(usize, usize, Kind)>) {
    let mut i = 0;
    while i < b.len() {
        let starts_run = b[i].is_ascii_digit() && (i == 0 || !is_alnum(b.get(i - 1)));
        if !starts_run {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits: Vec<u8> = Vec::with_capacity(19);
        let mut j = i;
        let mut end = i;
        loop {
            match b.get(j) {
                Some(c) if c.is_ascii_digit() => {
                    if digits.len() <= 19 {
                        digits.push(c - b'0');
                    }
                    j += 1;
                    end = j;
                }
                Some(b' ' | b'-') if b.get(j + 1).is_some_and(u8::is_ascii_digit) => j += 1,
                _ => break,
            }
        }
        let n = digits.len();
        if (13..=19).contains(&n)
            && (2..=6).contains(&digits[0])
            && !is_alnum(b.get(end))
            && luhn(&digits)
        {
            out.push((start, end, Kind::Card));
        }
        i = end.max(i + 1);
    }
}

pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// `local@domain.tld`: a non-empty local part, a domain of non-empty labels
/// with at least one dot and an alphabetic top-level label of 2+ letters.
fn find_emails(b: &[u8], out: &mut Vec<(usize, usize, Kind)>) {
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'@' {
            i += 1;
            continue;
        }
        let mut l = i;
        while l > 0 && is_local(b[l - 1]) {
            l -= 1;
        }
        while l < i && b[l] == b'.' {
            l += 1;
        }
        let mut r = i + 1;
        while r < b.len() && is_domain(b[r]) {
            r += 1;
        }
        while r > i + 1 && matches!(b[r - 1], b'.' | b'-') {
            r -= 1;
        }
        let domain = &b[i + 1..r];
        let labels_ok = domain.split(|c| *c == b'.').all(|l| !l.is_empty());
        let tld_ok = domain
            .rsplit(|c| *c == b'.')
            .next()
            .is_some_and(|t| t.len() >= 2 && t.iter().all(u8::is_ascii_alphabetic));
        if l < i && domain.contains(&b'.') && labels_ok && tld_ok {
            out.push((l, r, Kind::Email));
            i = r;
        } else {
            i += 1;
        }
    }
}

fn is_token(c: u8) -> bool {
    // RFC 6750 b64token characters.
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Minimum token length: real tokens are long, and prose such as
/// "bearer of bad news" must not be mangled.
const MIN_TOKEN_LEN: usize = 8;

/// `Bearer <token>` (any case): the token is replaced, the word kept.
fn find_bearer_tokens(b: &[u8], out: &mut Vec<(usize, usize, Kind)>) {
    const WORD: &[u8] = b"bearer";
    let mut i = 0;
    while i + WORD.len() < b.len() {
        let at_word =
            b[i..i + WORD.len()].eq_ignore_ascii_case(WORD) && (i == 0 || !is_alnum(b.get(i - 1)));
        if !at_word {
            i += 1;
            continue;
        }
        let mut j = i + WORD.len();
        let spaces = j;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        let start = j;
        while j < b.len() && is_token(b[j]) {
            j += 1;
        }
        if start > spaces && j - start >= MIN_TOKEN_LEN {
            out.push((start, j, Kind::Token));
        }
        i = j.max(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> String {
        scrub_text(t)
            .map(|(s, _)| s)
            .unwrap_or_else(|| t.to_string())
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_typos() {
        let d = |s: &str| s.bytes().map(|c| c - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(luhn(&d("5500005555555559")));
        assert!(luhn(&d("378282246310005")));
        assert!(!luhn(&d("4111111111111112")));
    }

    #[test]
    fn cards_redacted_with_separators_not_other_numbers() {
        assert_eq!(s("card 4111 1111 1111 1111 ok"), "card [REDACTED:card] ok");
        assert_eq!(s("4111-1111-1111-1111"), "[REDACTED:card]");
        assert_eq!(s("amex=378282246310005;"), "amex=[REDACTED:card];");
        // Luhn fails.
        assert_eq!(s("4111111111111112"), "4111111111111112");
        // Nanosecond timestamp (starts with 1), too short, glued to letters.
        assert_eq!(s("1700000000000000000"), "1700000000000000000");
        assert_eq!(s("411111111111"), "411111111111");
        assert_eq!(s("id4111111111111111"), "id4111111111111111");
        // Too many digits: not a card.
        assert_eq!(s("41111111111111111111111"), "41111111111111111111111");
    }

    #[test]
    fn emails_and_tokens_redacted() {
        assert_eq!(
            s("mail jane.doe+x@example.co.uk."),
            "mail [REDACTED:email]."
        );
        assert_eq!(s("a@b"), "a@b");
        assert_eq!(s("@example.com"), "@example.com");
        assert_eq!(s("user@host.c0m"), "user@host.c0m");
        assert_eq!(
            s("Authorization: Bearer eyJhbGciOi.J9x_y-z"),
            "Authorization: Bearer [REDACTED:token]"
        );
        assert_eq!(s("bearer of bad news"), "bearer of bad news");
        assert_eq!(
            s("BEARER abcdefgh12 and x@y.io"),
            "BEARER [REDACTED:token] and [REDACTED:email]"
        );
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(s("é 4111111111111111 ü"), "é [REDACTED:card] ü");
        assert_eq!(s("ünïcödé@ëxample.com"), "ünïcödé@ëxample.com");
        assert_eq!(s("ü"), "ü");
        assert_eq!(s("bearer"), "bearer");
    }

    #[test]
    fn attributes_scrubbed_recursively_and_keys_redacted() {
        use pc::any_value::Value as V;
        let sv = |s: &str| {
            Some(pc::AnyValue {
                value: Some(V::StringValue(s.into())),
            })
        };
        let mut attrs = vec![
            pc::KeyValue {
                key: "Password".into(),
                value: sv("hunter2"),
                ..Default::default()
            },
            pc::KeyValue {
                key: "list".into(),
                value: Some(pc::AnyValue {
                    value: Some(V::ArrayValue(pc::ArrayValue {
                        values: vec![sv("x@y.io").unwrap_or_default()],
                    })),
                }),
                ..Default::default()
            },
            pc::KeyValue {
                key: "plain".into(),
                value: sv("nothing here"),
                ..Default::default()
            },
        ];
        let scrubber = Scrubber::new(&ScrubConfig::default());
        assert_eq!(scrubber.scrub_attrs(&mut attrs), 2);
        assert_eq!(attrs[0].value, sv(REDACTED));
        let Some(V::ArrayValue(a)) = attrs[1].value.as_ref().and_then(|v| v.value.clone()) else {
            panic!()
        };
        assert_eq!(
            a.values[0].value,
            Some(V::StringValue("[REDACTED:email]".into()))
        );
        assert_eq!(attrs[2].value, sv("nothing here"));
        let off = Scrubber::new(&ScrubConfig {
            enabled: false,
            ..Default::default()
        });
        assert_eq!(off.scrub_attrs(&mut attrs), 0);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_always_catches_a_separated_card(
            text in "\\PC{0,64}",
            card in proptest::sample::select(vec!["4111111111111111", "5500-0055-5555-5559", "3782 822463 10005"]),
        ) {
            let _ = scrub_text(&text);
            let out = s(&format!("{text}, {card} ;{text}"));
            proptest::prop_assert!(!out.contains(card), "{}", out);
        }
    }
}
