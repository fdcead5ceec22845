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

/// Shows a training run: a bar per epoch with loss and accuracy, skipped videos, each
/// epoch's and the test's record as a JSON line, on stderr.
#[derive(Default)]
pub struct TrainConsole {
    bar: Option<ProgressBar>,
}

impl TrainConsole {
    /// Shows `p`; returns every epoch record so far when `p` finishes an epoch.
    pub fn show<'a>(
        &mut self,
        p: &vidlrp_train::Progress<'a>,
    ) -> Option<&'a [vidlrp_train::EpochRecord]> {
        use vidlrp_train::Progress;
        match *p {
            Progress::EpochStarted {
                epoch,
                epochs,
                snippets,
            } => {
                let prefix = format!("epoch {epoch}/{epochs}");
                self.bar = Some(bar(&prefix, snippets as u64, "snippets"));
            }
            Progress::Batch {
                done,
                loss,
                accuracy,
            } => {
                if let Some(b) = &self.bar {
                    b.set_position(done as u64);
                    b.set_message(format!("loss {loss:.3} acc {accuracy:.2}"));
                }
            }
            Progress::Skipped { stage, ref message } => {
                let line = format!("skipped in {stage}: {message}");
                match &self.bar {
                    Some(b) => b.suspend(|| eprintln!("{line}")),
                    None => eprintln!("{line}"),
                }
            }
            Progress::EpochDone(epochs) => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                if let Some(last) = epochs.last() {
                    eprintln!("{}", serde_json::json!(last));
                }
                return Some(epochs);
            }
            Progress::Tested(t) => eprintln!("test: {}", serde_json::json!(t)),
            _ => {}
        }
        None
    }
}
