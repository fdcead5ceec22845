//! Backends against each other: one random C3D-shaped model, every preset, two backends.

use crate::random::random_case;
use crate::{max_errors, TOLERANCE};
use vidlrp_core::{Backend, Composite, ErrorKind, Method, PoolRule, PresetOptions, Target};

/// One comparison of a backend's output with the reference backend's.
#[derive(Debug, Clone)]
pub struct Agreement {
    /// `random model <seed> / <method> / <relevance|logits>`.
    pub case: String,
    /// `max |x - x_ref|`.
    pub max_error: f64,
    /// `max |x_ref|`.
    pub scale: f64,
    /// `max_error <= TOLERANCE * scale`; or, when not [`compared`](Self::compared), both
    /// backends refused the case for the one reason a refusal is expected (DTD of a class whose
    /// logit is not positive).
    pub passed: bool,
    /// Whether outputs were compared (false for an expected refusal by both backends).
    pub compared: bool,
    /// Why a case failed, or why both refused it.
    pub note: String,
}

impl Agreement {
    /// The comparison of `other` with `reference`: passed if
    /// `max |other - reference| <= TOLERANCE * max |reference|`.
    pub fn measured(case: String, other: &[f32], reference: &[f32]) -> Self {
        let (max_error, scale) = max_errors(other, reference);
        let passed = max_error <= TOLERANCE * scale;
        Self {
            case,
            max_error,
            scale,
            passed,
            compared: true,
            note: if passed {
                String::new()
            } else {
                "outside tolerance".into()
            },
        }
    }

    /// A failed comparison.
    pub fn failed(case: String, note: String) -> Self {
        Self {
            case,
            max_error: f64::INFINITY,
            scale: 0.0,
            passed: false,
            compared: true,
            note,
        }
    }

    /// `max_error / scale` (0 for an all-zero reference).
    pub fn relative(&self) -> f64 {
        if self.scale > 0.0 {
            self.max_error / self.scale
        } else {
            self.max_error
        }
    }
}

/// The methods compared: every preset, plus DTD with winner-take-all pooling.
pub fn methods(low: &[f32], high: &[f32]) -> Vec<(String, Composite)> {
    let options = PresetOptions {
        low: low.to_vec(),
        high: high.to_vec(),
        ..PresetOptions::default()
    };
    let mut out: Vec<(String, Composite)> = Method::ALL
        .iter()
        .map(|&m| {
            let c = Composite::preset(m, &options).expect("every preset builds");
            (m.name().to_string(), c)
        })
        .collect();
    let wta = PresetOptions {
        pool: Some(PoolRule::WinnerTakeAll),
        ..options
    };
    out.push((
        "dtd (winner-take-all pooling)".into(),
        Composite::preset(Method::Dtd, &wta).expect("dtd builds"),
    ));
    out
}

/// Explains random model `seed` with every method on `reference` and on `other` and compares
/// relevance maps and logits to [`TOLERANCE`] of the reference's largest magnitude.
///
/// **Errors** if a model cannot be built or uploaded on either backend.
pub fn compare<A: Backend, B: Backend>(
    reference: &A,
    other: &B,
    seed: u64,
) -> Result<Vec<Agreement>, String> {
    let case = random_case(seed);
    let s = case.input.shape().to_vec();
    let input = [s[1], s[2], s[3], s[4]];
    let (net_a, _) = vidlrp_c3d::build(reference, case.weights.clone(), case.pool5, input)
        .map_err(|e| format!("random model {seed} on {}: {e}", reference.name()))?;
    let (net_b, _) = vidlrp_c3d::build(other, case.weights.clone(), case.pool5, input)
        .map_err(|e| format!("random model {seed} on {}: {e}", other.name()))?;
    let xa = reference.upload(&case.input).map_err(|e| e.to_string())?;
    let xb = other.upload(&case.input).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (method, composite) in methods(&case.low, &case.high) {
        let name = format!("random model {seed} / {method}");
        let ea = net_a.explain(reference, &xa, &Target::TopOne, &composite);
        let eb = net_b.explain(other, &xb, &Target::TopOne, &composite);
        match (ea, eb) {
            (Ok(a), Ok(b)) => {
                for (what, xa, xb) in [
                    ("relevance", a.relevance.data(), b.relevance.data()),
                    ("logits", a.logits.data(), b.logits.data()),
                ] {
                    out.push(Agreement::measured(format!("{name} / {what}"), xb, xa));
                }
                if a.classes != b.classes {
                    out.push(Agreement::failed(
                        format!("{name} / classes"),
                        format!("explained classes {:?} vs {:?}", a.classes, b.classes),
                    ));
                }
            }
            (Err(a), Err(b)) if a.kind() == ErrorKind::NonPositiveScore && b.kind() == a.kind() => {
                out.push(Agreement {
                    case: name,
                    max_error: 0.0,
                    scale: 0.0,
                    passed: true,
                    compared: false,
                    note: format!("both refused as expected: {a}"),
                });
            }
            (a, b) => out.push(Agreement::failed(
                name,
                format!(
                    "{}: {}; {}: {}",
                    reference.name(),
                    a.err().map_or("ok".into(), |e| e.to_string()),
                    other.name(),
                    b.err().map_or("ok".into(), |e| e.to_string())
                ),
            )),
        }
    }
    Ok(out)
}
