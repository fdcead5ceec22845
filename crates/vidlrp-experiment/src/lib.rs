//! vidlrp-experiment: the paper's experiment as a library.
//!
//! - [`paired`]: paired bootstrap intervals of a statistic of condition means, on one model
//!   and pooled over models (training seeds) by a two-level bootstrap;
//! - [`mod@claims`]: the paper's claims, each one statistic over measured conditions, and the one
//!   decision rule that judges them all ([`verdict`]);
//! - [`document`]: a report as blocks, rendered to Markdown and to HTML;
//! - [`report`]: the claims, Table 1 and the step table as report sections;
//! - [`plan`], [`run`], [`study`]: the whole experiment as typed stages (data set, training
//!   of several models, untrained twins, analyses, examples), resumable, with the report
//!   (REPORT.md, report.html) written from the typed results; the work of each stage is done
//!   by a [`run::Lab`] (the `vidlrp` CLI runs its commands on the chosen device); a study runs
//!   it at each level of one factor.
//!
//! ```
//! use std::collections::BTreeMap;
//! use vidlrp_experiment::{pooled, verdict, Bootstrap, Paired, Side, Statistic, Verdict};
//! // DTD's and DTD-u's border strength on the same 30 snippets: DTD's is higher on each.
//! let dtd: BTreeMap<usize, f64> = (0..30).map(|i| (i, 0.010 + 0.001 * (i % 7) as f64)).collect();
//! let dtd_u: BTreeMap<usize, f64> = (0..30).map(|i| (i, 0.002 + 0.001 * (i % 7) as f64)).collect();
//! let p = Paired::new(&[&dtd, &dtd_u]).unwrap();
//! let b = Bootstrap { resamples: 1000, level: 0.95, seed: 1 };
//! let e = pooled(&[p], &Statistic::Difference, b).unwrap();
//! assert!((e.value - 0.008).abs() < 1e-12);
//! assert_eq!(verdict(e.interval, Side::Positive), Verdict::Holds);
//! ```

pub mod claims;
pub mod document;
pub mod paired;
pub mod plan;
pub mod report;
mod report_data;
mod report_run;
pub mod run;
pub mod study;

pub use claims::{
    claims, judge, judge_paired, verdict, Claim, ClaimResult, ConditionRef, Design, Judged,
    ModelRuns, Quantity, Run, Side, Verdict,
};
pub use paired::{per_model, pooled, Bootstrap, Estimate, Interval, Paired, Statistic};
pub use plan::Plan;

/// Errors of the experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// Missing or inconsistent measurements or settings.
    #[error("{0}")]
    Data(String),
    /// A statistic failed.
    #[error(transparent)]
    Stats(#[from] vidlrp_stats::StatsError),
    /// A stage failed.
    #[error("stage {name} failed: {source}")]
    Stage {
        /// The stage.
        name: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading a run's outputs back failed.
    #[error(transparent)]
    Dataset(#[from] vidlrp_dataset::DatasetError),
    /// Reading a data set's description failed.
    #[error(transparent)]
    Synth(#[from] vidlrp_synth::SynthError),
    /// Reading a training log failed.
    #[error(transparent)]
    Train(#[from] vidlrp_train::TrainError),
    /// Writing a file failed.
    #[error(transparent)]
    Files(#[from] vidlrp_io::IoError),
    /// Drawing a figure failed.
    #[error(transparent)]
    Viz(#[from] vidlrp_viz::VizError),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON could not be written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Result alias of this crate.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;
