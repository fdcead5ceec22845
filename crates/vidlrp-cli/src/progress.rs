//! Progress bars on stderr, one style for every command.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `len` units of `what`, prefixed with `prefix`.
pub fn bar(prefix: &str, len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {what}  {{per_sec}}  ETA {{eta}}  {{msg}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}
