//! vidlrp-dataset: the temporal analysis of method.md §3 over a data set, as a library.
//!
//! - [`Manifest`]: the videos (`path,label` CSV) and a content hash of the file;
//! - [`Shard`]: which items one run takes (`i/n`, or the Slurm / Kubernetes variables);
//! - [`Condition`] and [`AnalysisMethod`]: what is measured on every video (method, offset, step);
//! - [`run`]: the per-video runner on any [`vidlrp_core::Backend`], recording one typed
//!   [`Outcome`] per video and condition (ok, skipped, failed: nothing is dropped);
//! - [`Journal`]: finished videos appended durably, so a killed run resumes where it stopped;
//! - [`Records`]: everything a run measured; [`merge`] combines shards exactly and refuses
//!   shards that do not belong together; [`Records::check`] rejects corrupt or edited records;
//! - [`summarize`]: `summary.json`, `conditions.csv`, `shares.csv`, `records.json` and the
//!   figures, written into a directory (the CLI stages it and publishes it whole).
//!
//! Every statistic is computed from the per-video observations in item order, so a merge of
//! shards gives exactly the statistics of one unsharded run.

mod batch;
mod condition;
mod evaluation;
mod journal;
mod manifest;
mod records;
mod report;
mod runner;
mod shard;

pub use batch::BatchSize;
pub use condition::{AnalysisMethod, Condition, Network};
pub use evaluation::{
    evaluate, merge_evaluations, summarize_evaluation, AnyRecords, AopcResult, ClipRecord,
    ClipSource, Curve, EvaluationOptions, EvaluationProgress, EvaluationRecords, EvaluationRun,
    EvaluationSummary, EvaluationTiming, RecordsKind, EVALUATION_FORMAT,
};
pub use journal::{ItemRecord, Journal};
pub use manifest::{labels_for, read_labels, Item, Manifest};
pub use records::{merge, Outcome, Records, RunConfig, Status, RECORDS_FORMAT};
pub use report::{summarize, ConditionSummary, Missed, Summary, SUMMARY_FORMAT};
pub use runner::{run, Progress, RunOptions};
pub use shard::Shard;

use std::path::PathBuf;

/// Errors of the data-set analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The manifest or a label file is unreadable or malformed.
    #[error("{path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A shard specification is malformed or out of range.
    #[error("shard: {0}")]
    Shard(String),
    /// Records are corrupt, edited, or do not belong to the same run.
    #[error("{0}")]
    Records(String),
    /// Nothing to do, or nothing could be analysed.
    #[error("{0}")]
    Empty(String),
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// The system error.
        cause: std::io::Error,
    },
    /// Weight or tensor files.
    #[error(transparent)]
    Io(#[from] vidlrp_io::IoError),
    /// A model records a preprocessing preset vidlrp does not know.
    #[error("{path}: recorded preset {preset:?}: {cause}")]
    Preset {
        /// The weight file.
        path: PathBuf,
        /// The recorded name.
        preset: String,
        /// Why it is not a preset.
        cause: vidlrp_snippet::UnknownPreset,
    },
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] vidlrp_c3d::C3dError),
    /// The weights could not be loaded as a supported network, or it could not be built.
    #[error(transparent)]
    Network(#[from] vidlrp_model::ModelError),
    /// The engine failed.
    #[error(transparent)]
    Core(#[from] vidlrp_core::Error),
    /// A statistic could not be computed.
    #[error(transparent)]
    Stats(#[from] vidlrp_stats::StatsError),
    /// A figure could not be drawn.
    #[error(transparent)]
    Viz(#[from] vidlrp_viz::VizError),
    /// A perturbation analysis could not be run.
    #[error(transparent)]
    Evaluate(#[from] vidlrp_evaluate::EvalError),
}

/// Result alias of this crate.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// Runs `f`, turning a panic inside it into an error message: the boundary around each video
/// (and each clip of `evaluate`), so that a bug or a hostile file met by one item fails that
/// item, with the message, and the run goes on.
pub(crate) fn contain_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("internal error (a panic, please report it as a bug): {message}")
    })
}

/// The preset of a model: `given` if any, else the one recorded in the weights' safetensors
/// metadata under `vidlrp_c3d::PRESET_KEY` (models from `vidlrp train`, e.g. `caffe@64`), else
/// the network family's ([`vidlrp_model::preset_of`]: `caffe` for C3D, `kinetics` for video
/// ResNets).
///
/// **Errors** if the recorded preset is not one vidlrp knows, or the file cannot be read as a
/// model where its header does not tell.
pub fn resolve_preset(
    given: Option<&vidlrp_snippet::Preprocess>,
    weights: &std::path::Path,
) -> Result<vidlrp_snippet::Preprocess> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let preset = vidlrp_model::preset_of(weights)?;
    preset.parse().map_err(|cause| DatasetError::Preset {
        path: weights.to_path_buf(),
        preset,
        cause,
    })
}

/// The SHA-256 of a file's bytes, in hex, read in 1 MiB blocks.
///
/// **Errors** if the file cannot be read.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let file_err = |cause| DatasetError::File {
        path: path.to_path_buf(),
        cause,
    };
    let mut f = std::fs::File::open(path).map_err(file_err)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(file_err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_the_items_error_message() {
        assert_eq!(super::contain_panic(|| 7), Ok(7));
        let err =
            super::contain_panic(|| -> usize { panic!("slice index 9 out of range") }).unwrap_err();
        assert!(
            err.contains("slice index 9 out of range") && err.contains("bug"),
            "{err}"
        );
        let owned = format!("overflow at {}", 3);
        let err = super::contain_panic(move || -> () { panic!("{owned}") }).unwrap_err();
        assert!(err.contains("overflow at 3"), "{err}");
    }
}
