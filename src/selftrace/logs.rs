//! Log output: text or JSON (`--log-format`, `STRAND_LOG_FORMAT`), ANSI
//! colours only on a terminal, and on each line emitted inside a sampled
//! self-trace span its `trace_id` and `span_id`, so logs and strand's own
//! traces correlate. Set up before the config is read: none of it depends
//! on the config (the ids come from the OpenTelemetry context).

use std::fmt;
use std::io::IsTerminal as _;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Adds the current self-span's ids to what `inner` writes.
struct Correlated<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for Correlated<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = super::current_ids() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&splice(&line, self.json, &trace_id, &span_id))
    }
}

/// The line with the ids added: as two more members of the JSON object,
/// or as `key=value` fields at the end of a text line.
fn splice(line: &str, json: bool, trace_id: &str, span_id: &str) -> String {
    let body = line.trim_end_matches('\n');
    match body.strip_suffix('}') {
        Some(open) if json => {
            format!("{open},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}\n")
        }
        _ => format!("{body} trace_id={trace_id} span_id={span_id}\n"),
    }
}

/// Installs the global subscriber (`RUST_LOG` filter, default `info`).
pub fn init(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Where the fmt subscriber writes; a file or pipe gets no escapes.
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder
            .event_format(Correlated {
                inner: tracing_subscriber::fmt::format().with_target(false),
                json: false,
            })
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(Correlated {
                inner: tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_target(false),
                json: true,
            })
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_join_json_objects_and_text_lines() {
        let j = splice("{\"level\":\"INFO\",\"message\":\"x\"}\n", true, "ab", "cd");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["trace_id"], "ab");
        assert_eq!(v["span_id"], "cd");
        assert_eq!(v["message"], "x");
        let t = splice("2026 INFO segment sealed rows=3\n", false, "ab", "cd");
        assert_eq!(
            t,
            "2026 INFO segment sealed rows=3 trace_id=ab span_id=cd\n"
        );
    }
}
