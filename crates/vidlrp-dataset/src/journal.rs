//! [`Journal`]: a run's finished videos on disk, one JSON line each, appended and flushed to
//! the disk (fsync) as each video finishes, so that a run killed at any moment (a signal,
//! SIGKILL, a lost machine) resumes without recomputing them.
//!
//! The first line names the run (command, options, conditions, shard); a resumed run must
//! match it. A last line cut short by the kill is dropped (and cut from the file), so only
//! whole videos count as done.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vidlrp_stats::Observation;

use crate::{DatasetError, Outcome, Result};

/// The version of the journal layout.
const JOURNAL_FORMAT: u32 = 1;

/// Everything one video gave under every condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The manifest row.
    pub item: usize,
    /// One outcome per condition, in condition order.
    pub outcomes: Vec<Outcome>,
    /// The observations of the conditions that gave one: `(condition key, observation)`.
    pub observations: Vec<(String, Observation)>,
}

/// An open journal, ready for appending.
pub struct Journal {
    file: File,
    path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |cause| DatasetError::File {
        path: path.to_path_buf(),
        cause,
    }
}

impl Journal {
    /// Where the commands keep the journal of a run into the directory `out`:
    /// `OUT.journal.jsonl` beside it.
    ///
    /// ```
    /// use std::path::{Path, PathBuf};
    /// let p = vidlrp_dataset::Journal::beside(Path::new("runs/profile"));
    /// assert_eq!(p, PathBuf::from("runs/profile.journal.jsonl"));
    /// ```
    pub fn beside(out: &Path) -> PathBuf {
        let name = out
            .file_name()
            .map_or("vidlrp-run".into(), |n| n.to_string_lossy().into_owned());
        out.with_file_name(format!("{name}.journal.jsonl"))
    }

    /// Opens the journal at `path` for the run described by `run` (anything serializable
    /// naming the command, options, conditions and shard; its JSON, keys sorted, heads the
    /// journal). With `resume`, an existing journal of the same
    /// run is continued and its finished videos returned; without, or if there is none, a new
    /// journal is started.
    ///
    /// **Errors** if resuming a journal written by another run, or on I/O errors.
    pub fn open<R: serde::de::DeserializeOwned>(
        path: &Path,
        run: &impl serde::Serialize,
        resume: bool,
    ) -> Result<(Self, Vec<R>)> {
        let run = serde_json::to_value(run).map_err(|e| {
            DatasetError::Records(format!("the run cannot be described as JSON: {e}"))
        })?;
        let header = serde_json::json!({"journal": JOURNAL_FORMAT, "run": run}).to_string();
        let planted = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if resume && planted {
            return Err(DatasetError::Records(format!(
                "{}: the journal is a symbolic link; vidlrp does not resume through one (it \
                 writes its journals itself)",
                path.display()
            )));
        }
        if resume && path.exists() {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(io(path))?;
            let mut reader = BufReader::new(&mut file);
            let mut line = String::new();
            let mut good_end = 0u64;
            reader.read_line(&mut line).map_err(io(path))?;
            if line.trim_end() != header {
                return Err(DatasetError::Records(format!(
                    "{}: the journal belongs to another run (other options, weights, manifest \
                     or shard); run without resuming to start over",
                    path.display()
                )));
            }
            good_end += line.len() as u64;
            let mut done = Vec::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(io(path))?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                match serde_json::from_str::<R>(&line) {
                    Ok(r) => done.push(r),
                    Err(_) => break,
                }
                good_end += n as u64;
            }
            // Cut a torn last line, so appends start on a line of their own.
            file.set_len(good_end).map_err(io(path))?;
            file.seek(SeekFrom::End(0)).map_err(io(path))?;
            return Ok((
                Self {
                    file,
                    path: path.to_path_buf(),
                },
                done,
            ));
        }
        // A new journal: written under an unpredictable name created exclusively, then renamed
        // into place (replacing whatever is at `path`, a planted symbolic link included,
        // without writing through it).
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let stem = path
            .file_name()
            .map_or("journal".into(), |n| n.to_string_lossy().into_owned());
        let (mut file, tmp) = vidlrp_io::create_exclusive(dir, &stem, "new").map_err(io(path))?;
        let written = file
            .write_all(format!("{header}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(path)(e));
        }
        Ok((
            Self {
                file,
                path: path.to_path_buf(),
            },
            Vec::new(),
        ))
    }

    /// Appends one finished video's record (an [`ItemRecord`], or another run's record type)
    /// and flushes it to the disk.
    ///
    /// **Errors** on I/O errors.
    pub fn append(&mut self, record: &impl Serialize) -> Result<()> {
        let line =
            serde_json::to_string(record).map_err(|e| DatasetError::Records(e.to_string()))?;
        self.file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io(&self.path))
    }

    /// Removes the journal (after the run's outputs are published).
    ///
    /// **Errors** on I/O errors.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path).map_err(io(&self.path))
    }
}
