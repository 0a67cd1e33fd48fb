//! Correlation link templates (`[[ui.links]]`): parsed once at start-up,
//! so a typo in a placeholder stops strand with the key named instead of
//! producing dead links; rendered per trace or span for the trace page.

use super::config::{LinkConfig, UiConfig};
use crate::error::{Error, Result};

/// Where a link is shown, and so which values it is filled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The span panel: the span's service, operation and interval.
    Span,
    /// The trace header: the root's service and operation, the trace's interval.
    Trace,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "span" => Some(Scope::Span),
            "trace" => Some(Scope::Trace),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    TraceId,
    SpanId,
    Service,
    Operation,
    StartMs,
    EndMs,
    StartIso,
    EndIso,
}

const VARS: &[(&str, Var)] = &[
    ("trace_id", Var::TraceId),
    ("span_id", Var::SpanId),
    ("service", Var::Service),
    ("operation", Var::Operation),
    ("start", Var::StartMs),
    ("end", Var::EndMs),
    ("start_iso", Var::StartIso),
    ("end_iso", Var::EndIso),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(Var),
}

/// Splits a URL template into literal text and placeholders.
pub fn parse(template: &str) -> std::result::Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            lit.push(c);
            rest = &rest[2..];
        } else if c == '{' {
            let Some(end) = rest.find('}') else {
                return Err(format!("unclosed `{{` in {template:?}"));
            };
            let name = &rest[1..end];
            let Some(&(_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = VARS.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: {}; write {{{{ and }}}} for literal braces)",
                    known.join(", ")
                ));
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(var));
            rest = &rest[end + 1..];
        } else if c == '}' {
            return Err(format!(
                "unmatched `}}` in {template:?} (write }}}} for a literal brace)"
            ));
        } else {
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

/// What a link is filled with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values {
    pub trace_id: String,
    /// `None` for trace-scoped links (which cannot use `{span_id}`).
    pub span_id: Option<String>,
    pub service: String,
    pub operation: String,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub name: String,
    pub scope: Scope,
    parts: Vec<Part>,
}

impl Template {
    /// The URL with every placeholder replaced by its URL-encoded value.
    pub fn render(&self, v: &Values) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(var) => {
                    let value = match var {
                        Var::TraceId => v.trace_id.clone(),
                        Var::SpanId => v.span_id.clone().unwrap_or_default(),
                        Var::Service => v.service.clone(),
                        Var::Operation => v.operation.clone(),
                        Var::StartMs => v.start_ms.to_string(),
                        Var::EndMs => v.end_ms.to_string(),
                        Var::StartIso => iso(v.start_ms),
                        Var::EndIso => iso(v.end_ms),
                    };
                    encode_into(&mut out, &value);
                }
            }
        }
        out
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-12-02T15:04:05.123Z`.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// value is safe in a path segment, a query value or a fragment alike.
fn encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Every configured template, compiled.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Links(pub Vec<Template>);

impl Links {
    pub fn compile(cfg: &UiConfig) -> Result<Links> {
        cfg.links
            .iter()
            .enumerate()
            .map(|(i, l)| compile_one(i, l))
            .collect::<Result<Vec<_>>>()
            .map(Links)
    }

    /// The links of one scope, rendered, in config order.
    pub fn render(&self, scope: Scope, v: &Values) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|t| t.scope == scope)
            .map(|t| (t.name.clone(), t.render(v)))
            .collect()
    }
}

fn compile_one(i: usize, l: &LinkConfig) -> Result<Template> {
    let key = |k: &str| format!("ui.links[{i}].{k}");
    if l.name.trim().is_empty() {
        return Err(Error::config(key("name"), "must not be empty"));
    }
    let scope = Scope::parse(&l.scope).ok_or_else(|| {
        Error::config(
            key("scope"),
            format!("must be \"span\" or \"trace\", got {:?}", l.scope),
        )
    })?;
    let parts = parse(&l.url).map_err(|m| Error::config(key("url"), m))?;
    // The scheme must be written out: a link never becomes javascript: or
    // data: through a substituted value.
    let scheme_ok = matches!(parts.first(), Some(Part::Lit(s))
        if s.starts_with("http://") || s.starts_with("https://"));
    if !scheme_ok {
        return Err(Error::config(
            key("url"),
            format!("must start with http:// or https://, got {:?}", l.url),
        ));
    }
    if scope == Scope::Trace && parts.contains(&Part::Var(Var::SpanId)) {
        return Err(Error::config(
            key("url"),
            "{span_id} needs scope = \"span\" (a trace-scoped link has no span)",
        ));
    }
    Ok(Template {
        name: l.name.clone(),
        scope,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, url: &str, scope: &str) -> LinkConfig {
        LinkConfig {
            name: name.into(),
            url: url.into(),
            scope: scope.into(),
        }
    }

    fn compile(links: Vec<LinkConfig>) -> Result<Links> {
        Links::compile(&UiConfig { links })
    }

    fn values() -> Values {
        Values {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: Some("b7ad6b7169203331".into()),
            service: "check out/α".into(),
            operation: "GET /cart?x=1&y".into(),
            start_ms: 1_764_689_045_123,
            end_ms: 1_764_689_046_000,
        }
    }

    #[test]
    fn parses_literals_placeholders_and_escaped_braces() {
        let p = parse("https://l/{{a}}?t={trace_id}&s={start}{end}").unwrap();
        assert_eq!(
            p,
            vec![
                Part::Lit("https://l/{a}?t=".into()),
                Part::Var(Var::TraceId),
                Part::Lit("&s=".into()),
                Part::Var(Var::StartMs),
                Part::Var(Var::EndMs),
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let e = parse("https://x/{traceid}").unwrap_err();
        assert!(e.contains("{traceid}") && e.contains("{trace_id}"), "{e}");
        assert!(parse("https://x/{trace_id")
            .unwrap_err()
            .contains("unclosed"));
        assert!(parse("https://x/}").unwrap_err().contains("unmatched"));
        assert!(parse("https://x/{}")
            .unwrap_err()
            .contains("unknown placeholder {}"));
    }

    #[test]
    fn substitutes_url_encoded_values_in_both_time_units() {
        let t = compile(vec![link(
            "Logs",
            "https://kibana/app?q=trace.id:{trace_id}%20span:{span_id}&svc={service}&op={operation}&from={start}&to={end}&iso={start_iso},{end_iso}",
            "span",
        )])
        .unwrap();
        let url = t.0[0].render(&values());
        assert_eq!(
            url,
            "https://kibana/app?q=trace.id:0af7651916cd43dd8448eb211c80319c%20span:b7ad6b7169203331\
             &svc=check%20out%2F%CE%B1&op=GET%20%2Fcart%3Fx%3D1%26y\
             &from=1764689045123&to=1764689046000\
             &iso=2025-12-02T15%3A24%3A05.123Z,2025-12-02T15%3A24%3A06.000Z"
        );
    }

    #[test]
    fn render_keeps_config_order_within_a_scope() {
        let l = compile(vec![
            link("A", "https://a/{trace_id}", "trace"),
            link("B", "https://b/{span_id}", "span"),
            link("C", "https://c/{service}", "trace"),
        ])
        .unwrap();
        let v = Values {
            span_id: None,
            ..values()
        };
        let names: Vec<String> = l
            .render(Scope::Trace, &v)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(names, vec!["A", "C"]);
        let span = l.render(Scope::Span, &values());
        assert_eq!(
            span,
            vec![("B".into(), "https://b/b7ad6b7169203331".into())]
        );
    }

    #[test]
    fn compile_rejects_with_the_key_named() {
        let cases = [
            (link("", "https://x", "span"), "ui.links[0].name"),
            (link("x", "https://x/{nope}", "span"), "ui.links[0].url"),
            (link("x", "https://x", "page"), "ui.links[0].scope"),
            (
                link("x", "javascript:alert(1)", "span"),
                "must start with http",
            ),
            (link("x", "{service}", "span"), "must start with http"),
            (link("x", "https://x/{span_id}", "trace"), "needs scope"),
        ];
        for (l, want) in cases {
            let e = compile(vec![link("ok", "https://ok", "span"), l.clone()])
                .unwrap_err()
                .to_string();
            let want = want.replace("[0]", "[1]");
            assert!(e.contains(&want), "{l:?}: {e}");
        }
    }

    #[test]
    fn the_documented_examples_compile() {
        // docs/UI.md, "Correlation links".
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/UI.md")).unwrap();
        let start = doc
            .find("```toml\n[[ui.links]]")
            .expect("example in docs/UI.md");
        let toml = &doc[start + 8..];
        let toml = &toml[..toml.find("```").unwrap()];
        let c = crate::config::Config::from_sources(toml, &[]).unwrap();
        assert_eq!(c.ui.links.len(), 2);
        let l = Links::compile(&c.ui).unwrap();
        let v = Values {
            span_id: None,
            ..values()
        };
        let kibana = &l.render(Scope::Trace, &v)[0].1;
        assert!(
            kibana.contains("from:'2025-12-02T15%3A24%3A05.123Z'")
                && kibana.contains("trace.id:0af7651916cd43dd8448eb211c80319c"),
            "{kibana}"
        );
    }

    #[test]
    fn config_file_loads_links_and_rejects_unknown_placeholders_at_start_up() {
        use crate::config::Config;
        let toml = "[[ui.links]]\nname = \"Logs\"\nurl = \"https://loki/{trace_id}\"\n\
                    [[ui.links]]\nname = \"Trace logs\"\nurl = \"https://k/{start_iso}\"\nscope = \"trace\"\n";
        let c = Config::from_sources(toml, &[]).unwrap();
        assert_eq!(c.ui.links.len(), 2);
        assert_eq!(c.ui.links[0].scope, "span");
        let e = Config::from_sources(
            "[[ui.links]]\nname = \"L\"\nurl = \"https://l/{trace}\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("ui.links[0].url") && e.contains("{trace}"),
            "{e}"
        );
        let e = Config::from_sources(
            "[[ui.links]]\nname = \"L\"\nurl = \"https://l\"\ncolor = 1\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("color"), "{e}");
    }
}
