//! Documents Elasticsearch refused for good (mapping errors, other 4xx,
//! retries exhausted) go to a JSON-lines file with the reason, fsynced
//! before the backlog checkpoint passes them: nothing is dropped silently.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::format_rfc3339_nanos;
use crate::error::Result;

/// One refused document.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub status: u16,
    /// Elasticsearch's error object, or a sentence of ours.
    pub reason: Value,
    /// The `_bulk` entry (action line + document line).
    pub entry: Vec<u8>,
}

#[derive(Clone)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl DeadLetterFile {
    pub fn open(path: &Path) -> Result<DeadLetterFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(DeadLetterFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and fsyncs (blocking: call off the async threads).
    pub fn append(&self, letters: &[DeadLetter], now_ns: u64) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for l in letters {
            serde_json::to_writer(&mut buf, &line(l, now_ns))
                .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
            buf.push(b'\n');
        }
        let mut f = self.file.lock();
        f.write_all(&buf)?;
        f.sync_data()?;
        Ok(())
    }
}

/// The JSON line of one letter: where it was going, why it was refused,
/// and the document itself (parsed when possible, else as text).
fn line(l: &DeadLetter, now_ns: u64) -> Value {
    let text = String::from_utf8_lossy(&l.entry);
    let mut parts = text.splitn(2, '\n');
    let action = parts.next().unwrap_or_default();
    let doc = parts.next().unwrap_or_default().trim_end_matches('\n');
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::from(s));
    let action = parse(action);
    let meta = &action["index"];
    json!({
        "time": format_rfc3339_nanos(now_ns),
        "index": meta["_index"],
        "id": meta["_id"],
        "status": l.status,
        "reason": l.reason,
        "document": parse(doc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_json_lines_with_reason_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let f = DeadLetterFile::open(&dir.path().join("dl.jsonl")).unwrap();
        let entry = b"{\"index\":{\"_index\":\"i\",\"_id\":\"x\"}}\n{\"a\":1}\n".to_vec();
        f.append(
            &[DeadLetter {
                status: 400,
                reason: json!({"type": "mapper_parsing_exception"}),
                entry,
            }],
            0,
        )
        .unwrap();
        let text = std::fs::read_to_string(f.path()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["id"], "x");
        assert_eq!(v["index"], "i");
        assert_eq!(v["status"], 400);
        assert_eq!(v["reason"]["type"], "mapper_parsing_exception");
        assert_eq!(v["document"]["a"], 1);
    }
}
