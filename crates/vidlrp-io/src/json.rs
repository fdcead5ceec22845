//! Versioned JSON documents: every summary, log and description vidlrp writes names its
//! `format`, and what reads it back checks that number first.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{IoError, Result};

/// A JSON document of one kind that names its format: `{"format": N, ...}`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Note { format: u32, text: String }
/// impl vidlrp_io::Versioned for Note {
///     const FORMAT: u32 = 1;
///     const WHAT: &'static str = "note";
/// }
/// # let dir = std::env::temp_dir().join(format!("vidlrp-doc-json-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("note.json");
/// let note = Note { format: 1, text: "hello".into() };
/// vidlrp_io::write_json(&path, &note).unwrap();
/// assert_eq!(vidlrp_io::read_versioned::<Note>(&path).unwrap(), note);
/// std::fs::write(&path, r#"{"format": 2, "text": "from a newer vidlrp"}"#).unwrap();
/// let e = vidlrp_io::read_versioned::<Note>(&path).unwrap_err().to_string();
/// assert!(e.contains("note format 2 (this build reads 1)"), "{e}");
/// ```
pub trait Versioned: Serialize + DeserializeOwned {
    /// The format this build writes and reads.
    const FORMAT: u32;
    /// What the document is, for messages (`"training log"`).
    const WHAT: &'static str;
    /// The format of files written before the format was recorded (`None`: such a file is
    /// refused).
    const UNVERSIONED: Option<u32> = None;
}

/// Just the `format` field of a document (the rest skipped unread).
#[derive(Deserialize)]
struct Probe {
    format: Option<u32>,
}

/// Reads `path` as a `T`, checking its `format` before the rest, so a file of another version
/// says so instead of failing on some field.
///
/// **Errors** if the file cannot be read, is not JSON, has another or no format, or is not a
/// `T` (the message names [`Versioned::WHAT`]).
pub fn read_versioned<T: Versioned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
    let bad = |m: String| IoError::format(path, m);
    let probe: Probe = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a {} (not a JSON object: {e})", T::WHAT)))?;
    match probe.format.or(T::UNVERSIONED) {
        Some(f) if f == T::FORMAT => {}
        Some(f) => {
            return Err(bad(format!(
                "{} format {f} (this build reads {})",
                T::WHAT,
                T::FORMAT
            )))
        }
        None => return Err(bad(format!("not a {} (no format number)", T::WHAT))),
    }
    serde_json::from_str(&text).map_err(|e| bad(format!("not a {}: {e}", T::WHAT)))
}

/// Writes `value` as pretty JSON with a final newline, atomically ([`crate::atomic_write`]).
///
/// **Errors** if it cannot be serialised (a map with non-string keys) or written.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| IoError::format(path, format!("cannot be written as JSON: {e}")))?;
    crate::atomic_write(path, |w| {
        use std::io::Write;
        w.write_all(text.as_bytes())?;
        w.write_all(b"\n")
    })
}
