//! cargo's and rustc's JSON (`cargo metadata`, `--message-format=json`, the fingerprint, and
//! rustc's messages in `direct_build.rs`), read with serde_json.

pub(crate) use serde_json::Value;

/// `text` as one JSON value (serde_json refuses nesting deeper than 128, more than cargo writes).
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}
