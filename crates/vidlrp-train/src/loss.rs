//! Softmax cross-entropy, the classification loss.

use vidlrp_core::HostTensor;

use crate::{Result, TrainError};

/// The mean softmax cross-entropy of a batch and its gradient at the logits:
/// `L = 1/N sum_n (log sum_c exp z[n,c] - z[n,y_n])`, `dL/dz[n,c] = (softmax(z_n)_c - [c = y_n]) / N`
/// (as PyTorch's `cross_entropy` with mean reduction). Computed in `f64` with the maximum
/// subtracted, so large logits do not overflow.
///
/// ```
/// use vidlrp_core::HostTensor;
/// let z = HostTensor::new(vec![1, 2], vec![0.0, 0.0]).unwrap();
/// let (loss, g) = vidlrp_train::softmax_cross_entropy(&z, &[1]).unwrap();
/// assert!((loss - std::f64::consts::LN_2).abs() < 1e-12);
/// assert_eq!(g.data(), &[0.5, -0.5]);
/// ```
///
/// **Errors** if the logits are not `[N, C]` with `N = labels.len() > 0`, a label is not a
/// class, or a logit is not finite.
pub fn softmax_cross_entropy(logits: &HostTensor, labels: &[usize]) -> Result<(f64, HostTensor)> {
    let s = logits.shape();
    if s.len() != 2 || s[0] != labels.len() || s[0] == 0 || s[1] == 0 {
        return Err(TrainError::Invalid(format!(
            "logits of shape {s:?} for {} labels; expected [N, classes] with N = labels",
            labels.len()
        )));
    }
    let (n, c) = (s[0], s[1]);
    if let Some(&bad) = labels.iter().find(|&&l| l >= c) {
        return Err(TrainError::Invalid(format!(
            "label {bad} is not one of the {c} classes"
        )));
    }
    if logits.data().iter().any(|v| !v.is_finite()) {
        return Err(TrainError::Invalid(
            "a logit is not finite (the training diverged; lower the learning rate)".into(),
        ));
    }
    let mut loss = 0.0f64;
    let mut grad = Vec::with_capacity(n * c);
    for (row, &y) in logits.data().chunks(c).zip(labels) {
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let exp: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        loss += sum.ln() + max - f64::from(row[y]);
        for (k, e) in exp.iter().enumerate() {
            let onehot = if k == y { 1.0 } else { 0.0 };
            grad.push(((e / sum - onehot) / n as f64) as f32);
        }
    }
    Ok((loss / n as f64, HostTensor::new(vec![n, c], grad)?))
}
