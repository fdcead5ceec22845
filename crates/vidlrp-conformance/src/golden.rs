//! Golden fixtures: loading them and checking a backend against them.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vidlrp_c3d::Pool5;
use vidlrp_core::{Backend, Composite, HostTensor, Method, PoolRule, PresetOptions, Target};

use crate::{max_errors, TOLERANCE};

/// `fixtures/golden` of this repository, found at run time: `VIDLRP_FIXTURES` if set, else
/// the checkout this crate was built in, else `fixtures/golden` under the working directory
/// (a prebuilt binary run from the root of a copied checkout, as on a GPU machine).
pub fn fixtures_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VIDLRP_FIXTURES") {
        return d.into();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("fixtures/golden")
    }
}

/// One golden explanation.
#[derive(Debug, Clone)]
pub struct GoldenMethod {
    /// Key in the fixture (`dtd`, `dtd-wta`, `epsilon-0.25`, ...).
    pub key: String,
    /// The composite that should reproduce it.
    pub composite: Composite,
    /// The reference that made it.
    pub reference: String,
    /// The golden relevance.
    pub relevance: HostTensor,
}

/// One golden model with its input and explanations.
#[derive(Debug, Clone)]
pub struct GoldenModel {
    /// The fixture's name.
    pub name: String,
    /// Weights by PyTorch port name.
    pub weights: vidlrp_c3d::TensorMap,
    /// The pool5 variant.
    pub pool5: Pool5,
    /// The input `[N, 3, T, H, W]`.
    pub input: HostTensor,
    /// The reference logits.
    pub logits: HostTensor,
    /// The explained (top-1) class per sample.
    pub classes: Vec<usize>,
    /// The explanations.
    pub methods: Vec<GoldenMethod>,
}

fn err(dir: &Path, msg: impl std::fmt::Display) -> String {
    format!("{}: {msg}", dir.display())
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default()
}

/// Loads one fixture directory.
pub fn load(dir: &Path) -> Result<GoldenModel, String> {
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("meta.json")).map_err(|e| err(dir, e))?,
    )
    .map_err(|e| err(dir, e))?;
    let s = |k: &str| {
        meta[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| err(dir, format!("meta.json lacks {k}")))
    };
    let weights = vidlrp_io::read_tensors(&dir.join(s("weights")?)).map_err(|e| e.to_string())?;
    let input = vidlrp_io::read_npy(&dir.join("input.npy")).map_err(|e| e.to_string())?;
    let mut golden = vidlrp_io::read_tensors(&dir.join("golden.npz")).map_err(|e| e.to_string())?;
    let logits = golden
        .remove("logits")
        .ok_or_else(|| err(dir, "golden.npz lacks logits"))?;
    let pool5: Pool5 = s("pool5")?.parse().map_err(|e| err(dir, e))?;
    let (low, high) = (floats(&meta["low"]), floats(&meta["high"]));
    let classes = meta["explained_classes"]
        .as_array()
        .ok_or_else(|| err(dir, "meta.json lacks explained_classes"))?
        .iter()
        .filter_map(Value::as_u64)
        .map(|c| c as usize)
        .collect();
    let mut methods = Vec::new();
    for (key, m) in meta["methods"]
        .as_object()
        .ok_or_else(|| err(dir, "meta.json lacks methods"))?
    {
        let mut opts = PresetOptions {
            low: low.clone(),
            high: high.clone(),
            ..Default::default()
        };
        if let Some(e) = m["epsilon"].as_f64() {
            opts.epsilon = e as f32;
        }
        opts.pool = m["pool"]
            .as_str()
            .map(str::parse::<PoolRule>)
            .transpose()
            .map_err(|e| err(dir, e))?;
        let name = m["method"]
            .as_str()
            .ok_or_else(|| err(dir, format!("{key}: no method")))?;
        let method = name.parse::<Method>().map_err(|e| err(dir, e))?;
        let composite = Composite::preset(method, &opts).map_err(|e| err(dir, e))?;
        let relevance = golden
            .remove(key)
            .ok_or_else(|| err(dir, format!("golden.npz lacks {key}")))?;
        methods.push(GoldenMethod {
            key: key.clone(),
            composite,
            reference: m["reference"].as_str().unwrap_or("?").to_string(),
            relevance,
        });
    }
    Ok(GoldenModel {
        name: s("name")?,
        weights,
        pool5,
        input,
        logits,
        classes,
        methods,
    })
}

/// Loads every fixture under `dir` (sorted by name).
pub fn load_all(dir: &Path) -> Result<Vec<GoldenModel>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(err(dir, "no golden fixtures found"));
    }
    dirs.iter().map(|d| load(d)).collect()
}

/// The outcome of one comparison.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `model/method`.
    pub case: String,
    /// The reference that made the golden.
    pub reference: String,
    /// `max |R - R_ref|`.
    pub max_abs_err: f64,
    /// `max |R_ref|`.
    pub max_abs_ref: f64,
    /// Whether the explained classes agree and the error is within tolerance.
    pub passed: bool,
    /// Why it failed, if it did.
    pub note: String,
}

impl CaseResult {
    fn new(case: String, reference: String, (e, s): (f64, f64), note: String) -> Self {
        let passed = note.is_empty() && e <= TOLERANCE * s;
        Self {
            case,
            reference,
            max_abs_err: e,
            max_abs_ref: s,
            passed,
            note,
        }
    }

    /// `max |R - R_ref| / max |R_ref|`.
    pub fn relative(&self) -> f64 {
        self.max_abs_err / self.max_abs_ref.max(f64::MIN_POSITIVE)
    }
}

/// Runs every explanation of `model` on `be` and compares it with the golden one (and the
/// logits with the reference logits).
pub fn check<B: Backend>(be: &B, model: &GoldenModel) -> Result<Vec<CaseResult>, String> {
    let s = model.input.shape();
    let (net, _) = vidlrp_c3d::build(
        be,
        model.weights.clone(),
        model.pool5,
        [s[1], s[2], s[3], s[4]],
    )
    .map_err(|e| format!("{}: {e}", model.name))?;
    let x = be.upload(&model.input).map_err(|e| e.to_string())?;
    let logits = be
        .download(&net.forward(be, &x).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut out = vec![CaseResult::new(
        format!("{}/logits", model.name),
        "torch forward".into(),
        max_errors(logits.data(), model.logits.data()),
        String::new(),
    )];
    for m in &model.methods {
        let case = format!("{}/{}", model.name, m.key);
        let e = net
            .explain(be, &x, &Target::TopOne, &m.composite)
            .map_err(|e| format!("{case}: {e}"))?;
        let note = if e.classes != model.classes {
            format!(
                "explained classes {:?}, golden {:?}",
                e.classes, model.classes
            )
        } else if e.relevance.shape() != m.relevance.shape() {
            format!(
                "shape {:?}, golden {:?}",
                e.relevance.shape(),
                m.relevance.shape()
            )
        } else {
            String::new()
        };
        out.push(CaseResult::new(
            case,
            m.reference.clone(),
            max_errors(e.relevance.data(), m.relevance.data()),
            note,
        ));
    }
    Ok(out)
}

/// Every committed golden model checked on `be`: the number of cases and one line per failure.
///
/// **Errors** if the fixtures cannot be read or a model cannot be built.
pub fn check_every_model<B: Backend>(be: &B) -> Result<(usize, Vec<String>), String> {
    let mut cases = 0;
    let mut failures = Vec::new();
    for m in load_all(&fixtures_dir())? {
        for r in check(be, &m)? {
            cases += 1;
            if !r.passed {
                failures.push(format!(
                    "{} ({}): rel err {:.3e} {}",
                    r.case,
                    r.reference,
                    r.relative(),
                    r.note
                ));
            }
        }
    }
    Ok((cases, failures))
}
