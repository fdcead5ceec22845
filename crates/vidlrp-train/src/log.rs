//! [`TrainLog`]: the record of a training run, `OUT.log.json` of `vidlrp train`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{EpochRecord, Result, TestRecord, TrainConfig};

/// The files a training run writes beside its model `OUT` (`model.safetensors`): the log
/// `model.log.json`, the checkpoint `model.checkpoint.safetensors` and the curves
/// `model-curves.png` / `.svg`.
///
/// ```
/// let f = vidlrp_train::TrainFiles::beside(std::path::Path::new("runs/model.safetensors"));
/// assert_eq!(f.log, std::path::Path::new("runs/model.log.json"));
/// assert_eq!(f.curves_svg, std::path::Path::new("runs/model-curves.svg"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainFiles {
    /// The trained model.
    pub model: PathBuf,
    /// The [`TrainLog`].
    pub log: PathBuf,
    /// Parameters and optimiser state after the last finished epoch.
    pub checkpoint: PathBuf,
    /// The training curves as PNG.
    pub curves_png: PathBuf,
    /// The training curves as SVG.
    pub curves_svg: PathBuf,
}

impl TrainFiles {
    /// The files of a run whose model is `model`.
    pub fn beside(model: &Path) -> Self {
        let stem = model
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        let sibling = |suffix: &str| model.with_file_name(format!("{stem}{suffix}"));
        Self {
            model: model.to_path_buf(),
            log: sibling(".log.json"),
            checkpoint: sibling(".checkpoint.safetensors"),
            curves_png: sibling("-curves.png"),
            curves_svg: sibling("-curves.svg"),
        }
    }
}

/// The version of [`TrainLog`]'s layout.
pub const TRAIN_LOG_FORMAT: u32 = 1;

/// What a training run was and did: the data, the C3D it trained, the config, every epoch
/// and the test. Serialised as `OUT.log.json`, read back by the reproduction's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// [`TRAIN_LOG_FORMAT`].
    pub format: u32,
    /// The training manifest.
    pub manifest: PathBuf,
    /// The validation manifest.
    pub val: Option<PathBuf>,
    /// The test manifest.
    pub test_manifest: Option<PathBuf>,
    /// Number of classes.
    pub classes: usize,
    /// Width relative to C3D.
    pub width: f64,
    /// Output channels of conv1 .. conv5b.
    pub conv_widths: [usize; 8],
    /// Outputs of fc6 and fc7.
    pub fc_widths: [usize; 2],
    /// Number of parameters.
    pub parameters: usize,
    /// How it was trained.
    pub config: TrainConfig,
    /// Every epoch so far.
    pub epochs: Vec<EpochRecord>,
    /// The test, once done.
    pub test: Option<TestRecord>,
}

impl vidlrp_io::Versioned for TrainLog {
    const FORMAT: u32 = TRAIN_LOG_FORMAT;
    const WHAT: &'static str = "training log";
}

impl TrainLog {
    /// The log of a run of `config` on `spec` (C3D at `width`), before its first epoch.
    /// `manifest`, `val` and `test` are the data's manifests.
    pub fn c3d(
        manifest: &Path,
        val: Option<&Path>,
        test: Option<&Path>,
        spec: &vidlrp_c3d::C3dSpec,
        width: f64,
        config: &TrainConfig,
    ) -> Self {
        Self {
            format: TRAIN_LOG_FORMAT,
            manifest: manifest.to_path_buf(),
            val: val.map(Path::to_path_buf),
            test_manifest: test.map(Path::to_path_buf),
            classes: spec.classes,
            width,
            conv_widths: spec.conv_widths,
            fc_widths: spec.fc_widths,
            parameters: spec.num_params(),
            config: config.clone(),
            epochs: Vec::new(),
            test: None,
        }
    }

    /// The training curves per epoch, `(label, [(epoch, value)])`: training loss, training
    /// accuracy, validation top-1 and top-5.
    pub fn curves(&self) -> Vec<(&'static str, Vec<(f64, f64)>)> {
        let series = |y: fn(&EpochRecord) -> f64| {
            self.epochs.iter().map(|e| (e.epoch as f64, y(e))).collect()
        };
        vec![
            ("training loss", series(|e| e.loss)),
            ("training accuracy", series(|e| e.train_accuracy)),
            ("validation top-1", series(|e| e.val_top1)),
            ("validation top-5", series(|e| e.val_top5)),
        ]
    }

    /// Reads a log written by [`TrainLog::write`].
    ///
    /// **Errors** if the file cannot be read, is not a log, or is of another format.
    pub fn read(path: &Path) -> Result<Self> {
        Ok(vidlrp_io::read_versioned(path)?)
    }

    /// Writes the log as pretty JSON, atomically.
    ///
    /// **Errors** on write failures.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(vidlrp_io::write_json(path, self)?)
    }
}
