//! The `[ui]` config section (strict like every section): correlation link
//! templates the trace page shows. Templates are compiled (and so checked)
//! when the config loads; see `ui::links`.

use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Correlation links to logs and metrics systems, each a
    /// `[[ui.links]]` table with `name`, `url` and `scope` (`"span"`, the
    /// default: on the span panel with the span's values; `"trace"`: on the
    /// trace header with the trace's). `url` placeholders: `{trace_id}`,
    /// `{span_id}` (span scope only), `{service}`, `{operation}`, `{start}`
    /// and `{end}` (Unix ms), `{start_iso}` and `{end_iso}` (RFC 3339 UTC);
    /// `{{` and `}}` are literal braces. Values are URL-encoded; an unknown
    /// placeholder is a configuration error. See docs/UI.md.
    pub links: Vec<LinkConfig>,
}

/// One `[[ui.links]]` entry as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    pub name: String,
    pub url: String,
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn default_scope() -> String {
    "span".into()
}

impl UiConfig {
    pub fn validate(&self) -> Result<()> {
        crate::ui::links::Links::compile(self).map(|_| ())
    }
}
