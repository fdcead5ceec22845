//! Batch normalisation in inference form, and its folding into the convolution before it
//! (canonization: the network explained is the folded one, method.md §5).
//!
//! Per channel `c`: `y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c = s_c x + t_c` with
//! `s_c = gamma_c / sqrt(var_c + eps)` and `t_c = beta_c - mean_c s_c`. After a convolution
//! `z = w * x + b`, `y = (s w) * x + (s b + t)`: the folded weight is `w'[o, ...] = s_o w[o,
//! ...]`, the folded bias `b'_o = s_o b_o + t_o` (`b = 0` for a convolution without bias).
//!
//! ```
//! use vidlrp_core::{BatchNorm, HostTensor};
//! // One output channel: s = 2 / sqrt(3 + 1) = 1, t = 0.5 - 1 * 1 = -0.5.
//! let bn = BatchNorm::new(vec![2.0], vec![0.5], vec![1.0], vec![3.0], 1.0).unwrap();
//! let w = HostTensor::new(vec![1, 1, 1, 1, 2], vec![3.0, -1.0]).unwrap();
//! let (w2, b2) = bn.fold(&w, None).unwrap();
//! assert_eq!(w2.data(), &[3.0, -1.0]);
//! assert_eq!(b2.data(), &[-0.5]);
//! ```

use crate::{Error, HostTensor, Result};

/// Inference-form batch normalisation of `C` channels (PyTorch's `BatchNorm3d` in eval mode).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// Scale `gamma_c` (PyTorch's `weight`).
    pub gamma: Vec<f32>,
    /// Shift `beta_c` (PyTorch's `bias`).
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Added to the variance (PyTorch's default: 1e-5).
    pub eps: f32,
}

impl BatchNorm {
    /// Batch normalisation from its parameters.
    ///
    /// **Errors** unless the four vectors have one length, every value is finite, and every
    /// `var_c + eps` is positive.
    pub fn new(
        gamma: Vec<f32>,
        beta: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        eps: f32,
    ) -> Result<Self> {
        let c = gamma.len();
        if [beta.len(), mean.len(), var.len()].iter().any(|&n| n != c) || c == 0 {
            return Err(Error::shape(format!(
                "batch normalisation needs gamma, beta, mean and var of one positive length \
                 (got {c}, {}, {}, {})",
                beta.len(),
                mean.len(),
                var.len()
            )));
        }
        let all = gamma.iter().chain(&beta).chain(&mean).chain(&var);
        if !eps.is_finite() || all.clone().any(|v| !v.is_finite()) {
            return Err(Error::shape(
                "batch normalisation parameters must be finite".to_string(),
            ));
        }
        if let Some(v) = var.iter().find(|&&v| f64::from(v) + f64::from(eps) <= 0.0) {
            return Err(Error::shape(format!(
                "batch normalisation: var + eps must be positive (var {v}, eps {eps})"
            )));
        }
        Ok(Self {
            gamma,
            beta,
            mean,
            var,
            eps,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// `(s_c, t_c)` of `y = s_c x + t_c`, in `f64`.
    pub fn scale_shift(&self) -> (Vec<f64>, Vec<f64>) {
        let s: Vec<f64> = (0..self.channels())
            .map(|c| {
                f64::from(self.gamma[c]) / (f64::from(self.var[c]) + f64::from(self.eps)).sqrt()
            })
            .collect();
        let t = (0..self.channels())
            .map(|c| f64::from(self.beta[c]) - f64::from(self.mean[c]) * s[c])
            .collect();
        (s, t)
    }

    /// The weight and bias of `BN(conv(x; weight, bias))` as one convolution (or dense layer):
    /// `w'[o, ...] = s_o w[o, ...]`, `b'_o = s_o b_o + t_o`, each computed in `f64` and rounded
    /// to `f32` once. `weight` has the output channels first (`[C_out, ...]`).
    ///
    /// **Errors** if `weight`'s first extent or `bias`'s length is not the channel count.
    pub fn fold(
        &self,
        weight: &HostTensor,
        bias: Option<&HostTensor>,
    ) -> Result<(HostTensor, HostTensor)> {
        let c = self.channels();
        if weight.shape().first() != Some(&c) {
            return Err(Error::shape(format!(
                "folding batch normalisation of {c} channels into a weight of shape {:?}",
                weight.shape()
            )));
        }
        if let Some(b) = bias {
            if b.shape() != [c] {
                return Err(Error::shape(format!(
                    "folding batch normalisation of {c} channels into a bias of shape {:?}",
                    b.shape()
                )));
            }
        }
        let (s, t) = self.scale_shift();
        let per = weight.data().len() / c;
        let w: Vec<f32> = (weight.data().iter().enumerate())
            .map(|(i, &v)| (f64::from(v) * s[i / per]) as f32)
            .collect();
        let b: Vec<f32> = (0..c)
            .map(|o| {
                let b = bias.map_or(0.0, |b| f64::from(b.data()[o]));
                (s[o] * b + t[o]) as f32
            })
            .collect();
        Ok((
            HostTensor::new(weight.shape().to_vec(), w)?,
            HostTensor::new(vec![c], b)?,
        ))
    }
}
