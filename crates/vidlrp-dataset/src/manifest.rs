//! [`Manifest`]: the videos of a data set, from a CSV file `path,label`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{DatasetError, Result};

/// One manifest row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Row index (0-based, header and blank rows excluded).
    pub index: usize,
    /// The video as written in the manifest.
    pub path: String,
    /// The path resolved against the manifest's directory.
    pub resolved: PathBuf,
    /// True class, if given.
    pub label: Option<usize>,
}

/// The videos of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes: shards of one run must agree on it.
    pub sha256: String,
    /// The rows in order.
    pub items: Vec<Item>,
}

fn invalid(path: &Path, message: impl Into<String>) -> DatasetError {
    DatasetError::Manifest {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads class names, one per line (e.g. the Sports-1M `labels.txt`).
///
/// **Errors** if the file cannot be read.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(path, format!("cannot read the labels: {e}")))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// The class names of the data set of `manifest`: read from `explicit`, else from
/// `labels.txt` next to the manifest if there is one, else `None`.
///
/// **Errors** if the file to read cannot be read.
pub fn labels_for(manifest: &Path, explicit: Option<&Path>) -> Result<Option<Vec<String>>> {
    let beside = manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join("labels.txt");
    match explicit {
        Some(p) => read_labels(p).map(Some),
        None if beside.is_file() => read_labels(&beside).map(Some),
        None => Ok(None),
    }
}

impl Manifest {
    /// Reads a manifest: CSV rows `path,label` (label: a class index, or a class name found
    /// in `labels`, case-insensitive; may be empty), paths relative to the manifest's
    /// directory, an optional header row `path,label`, blank rows ignored.
    ///
    /// **Errors** on an unreadable or empty manifest, a malformed row, or an unknown label.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("vidlrp-doc-manifest-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("videos.csv");
    /// std::fs::write(&path, "path,label\na.mp4,3\nclips/b.mp4,tennis\n").unwrap();
    /// let labels = vec!["golf".to_string(), "tennis".to_string()];
    /// let m = vidlrp_dataset::Manifest::read(&path, Some(&labels)).unwrap();
    /// assert_eq!(m.items[1].label, Some(1));
    /// assert_eq!(m.items[1].resolved, dir.join("clips/b.mp4"));
    /// ```
    pub fn read(path: &Path, labels: Option<&[String]>) -> Result<Self> {
        let sha256 = crate::sha256_file(path)?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| invalid(path, format!("cannot read the manifest: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut items = Vec::new();
        for (row, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| invalid(path, format!("row {}: {e}", row + 1)))?;
            let Some(p) = rec.get(0).filter(|p| !p.is_empty()) else {
                continue;
            };
            if row == 0 && p == "path" {
                continue;
            }
            let label = match rec.get(1).filter(|l| !l.is_empty()) {
                None => None,
                Some(l) => Some(match l.parse::<usize>() {
                    Ok(c) => c,
                    Err(_) => labels
                        .and_then(|names| names.iter().position(|n| n.eq_ignore_ascii_case(l)))
                        .ok_or_else(|| {
                            invalid(
                                path,
                                format!(
                                    "row {}: unknown label {l:?}{}",
                                    row + 1,
                                    if labels.is_none() {
                                        " (class names need a list of labels)"
                                    } else {
                                        ""
                                    }
                                ),
                            )
                        })?,
                }),
            };
            let resolved = if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                base.join(p)
            };
            items.push(Item {
                index: items.len(),
                path: p.to_string(),
                resolved,
                label,
            });
        }
        if items.is_empty() {
            return Err(invalid(path, "the manifest lists no videos"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            sha256,
            items,
        })
    }

    /// Every row as `(resolved path, label)`: a manifest of labelled videos, for training.
    ///
    /// **Errors** naming the first row without a label.
    pub fn labelled(&self) -> Result<Vec<(PathBuf, usize)>> {
        self.items
            .iter()
            .map(|i| {
                i.label
                    .map(|l| (i.resolved.clone(), l))
                    .ok_or_else(|| invalid(&self.path, format!("{} has no label", i.path)))
            })
            .collect()
    }
}
