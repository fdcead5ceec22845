//! Optimisers on host copies of the parameters, with `torch.optim`'s update formulas.

use std::collections::HashMap;

/// An optimiser: updates each parameter from its gradient, one step at a time.
pub trait Optimizer {
    /// Called once before the updates of a step.
    fn begin_step(&mut self);
    /// Updates parameter `name` in place from its gradient.
    fn update(&mut self, name: &str, param: &mut [f32], grad: &[f32]);
    /// The learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate (a schedule).
    fn set_lr(&mut self, lr: f32);
    /// The optimiser's state (momentum buffers, moments, step count) as named vectors, for a
    /// checkpoint.
    fn state(&self) -> Vec<(String, Vec<f32>)>;
    /// Restores a state written by [`Optimizer::state`].
    ///
    /// **Errors** on entries this optimiser does not have.
    fn load_state(&mut self, state: Vec<(String, Vec<f32>)>) -> Result<(), String>;
}

/// Stochastic gradient descent with momentum and weight decay (the paper's optimiser), as
/// `torch.optim.SGD` without dampening or Nesterov:
/// `d = g + wd p`, `v = mu v + d` (`v = d` at the first step), `p = p - lr v`.
#[derive(Debug, Clone)]
pub struct Sgd {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    velocity: HashMap<String, Vec<f32>>,
}

impl Sgd {
    /// SGD with learning rate `lr`, `momentum` and `weight_decay`.
    pub fn new(lr: f32, momentum: f32, weight_decay: f32) -> Self {
        Self {
            lr,
            momentum,
            weight_decay,
            velocity: HashMap::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn begin_step(&mut self) {}

    fn update(&mut self, name: &str, param: &mut [f32], grad: &[f32]) {
        let (wd, mu, lr) = (self.weight_decay, self.momentum, self.lr);
        let d: Vec<f32> = param.iter().zip(grad).map(|(p, g)| g + wd * p).collect();
        let step = if mu == 0.0 {
            d
        } else {
            let v = self
                .velocity
                .entry(name.to_string())
                .and_modify(|v| {
                    for (vi, di) in v.iter_mut().zip(&d) {
                        *vi = mu * *vi + di;
                    }
                })
                .or_insert_with(|| d.clone());
            v.clone()
        };
        for (p, s) in param.iter_mut().zip(&step) {
            *p -= lr * s;
        }
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn state(&self) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<_> = self
            .velocity
            .iter()
            .map(|(k, b)| (format!("velocity.{k}"), b.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn load_state(&mut self, state: Vec<(String, Vec<f32>)>) -> Result<(), String> {
        self.velocity.clear();
        for (k, b) in state {
            let name = k
                .strip_prefix("velocity.")
                .ok_or_else(|| format!("{k} is not SGD state"))?;
            self.velocity.insert(name.to_string(), b);
        }
        Ok(())
    }
}

/// Adam (Kingma and Ba), as `torch.optim.Adam` without weight decay or AMSGrad:
/// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
/// `p = p - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
#[derive(Debug, Clone)]
pub struct Adam {
    lr: f32,
    betas: (f32, f32),
    eps: f32,
    t: i32,
    moments: HashMap<String, (Vec<f32>, Vec<f32>)>,
}

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's defaults (betas 0.9, 0.999; eps 1e-8).
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            t: 0,
            moments: HashMap::new(),
        }
    }

    /// Adam with learning rate `lr`, moment decay rates `betas` (`b1`, `b2`) and `eps`, as
    /// `torch.optim.Adam(params, lr, betas, eps)`.
    pub fn with_betas(lr: f32, betas: (f32, f32), eps: f32) -> Self {
        Self {
            betas,
            eps,
            ..Self::new(lr)
        }
    }
}

impl Optimizer for Adam {
    fn begin_step(&mut self) {
        self.t += 1;
    }

    fn update(&mut self, name: &str, param: &mut [f32], grad: &[f32]) {
        let (b1, b2) = self.betas;
        let (m, v) = self
            .moments
            .entry(name.to_string())
            .or_insert_with(|| (vec![0.0; param.len()], vec![0.0; param.len()]));
        let bias1 = 1.0 - b1.powi(self.t);
        let bias2_sqrt = (1.0 - b2.powi(self.t)).sqrt();
        let step = self.lr / bias1;
        for i in 0..param.len() {
            let g = grad[i];
            m[i] += (g - m[i]) * (1.0 - b1);
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let denom = v[i].sqrt() / bias2_sqrt + self.eps;
            param[i] -= step * m[i] / denom;
        }
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn state(&self) -> Vec<(String, Vec<f32>)> {
        let mut v = vec![("step".to_string(), vec![self.t as f32])];
        for (k, (m, s)) in &self.moments {
            v.push((format!("m.{k}"), m.clone()));
            v.push((format!("v.{k}"), s.clone()));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn load_state(&mut self, state: Vec<(String, Vec<f32>)>) -> Result<(), String> {
        self.moments.clear();
        let mut second = Vec::new();
        for (k, b) in state {
            if k == "step" {
                self.t = b.first().map_or(0, |&t| t as i32);
            } else if let Some(name) = k.strip_prefix("m.") {
                self.moments.entry(name.to_string()).or_default().0 = b;
            } else if let Some(name) = k.strip_prefix("v.") {
                second.push((name.to_string(), b));
            } else {
                return Err(format!("{k} is not Adam state"));
            }
        }
        for (name, b) in second {
            self.moments.entry(name).or_default().1 = b;
        }
        Ok(())
    }
}

/// A step schedule: the base rate times `gamma` for every `every` epochs passed
/// (`torch.optim.lr_scheduler.StepLR`).
///
/// ```
/// let s = vidlrp_train::StepSchedule { base: 0.01, every: 4, gamma: 0.1 };
/// assert_eq!(s.lr(0), 0.01);
/// assert!((s.lr(4) - 0.001).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StepSchedule {
    /// The rate of the first epochs.
    pub base: f32,
    /// Epochs between decays (0: constant).
    pub every: usize,
    /// Factor per decay.
    pub gamma: f32,
}

impl StepSchedule {
    /// The rate in (0-based) `epoch`.
    pub fn lr(&self, epoch: usize) -> f32 {
        if self.every == 0 {
            return self.base;
        }
        let decays = i32::try_from(epoch / self.every).unwrap_or(i32::MAX);
        self.base * self.gamma.powi(decays)
    }
}

/// The optimisers a training run can choose, by name: `adam` ([`Adam`]) or `sgd` ([`Sgd`]
/// with momentum 0.9 and weight decay 5e-4, as the paper's C3D was trained).
///
/// ```
/// use vidlrp_train::OptimizerKind;
/// let k: OptimizerKind = "sgd".parse().unwrap();
/// assert_eq!((k, k.to_string()), (OptimizerKind::Sgd, "sgd".to_string()));
/// assert!("rmsprop".parse::<OptimizerKind>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// [`Adam`] with PyTorch's defaults.
    #[default]
    Adam,
    /// [`Sgd`], momentum 0.9, weight decay 5e-4.
    Sgd,
}

impl OptimizerKind {
    /// A fresh optimiser of this kind at learning rate `lr`.
    pub fn build(self, lr: f32) -> Box<dyn Optimizer> {
        match self {
            OptimizerKind::Adam => Box::new(Adam::new(lr)),
            OptimizerKind::Sgd => Box::new(Sgd::new(lr, 0.9, 5e-4)),
        }
    }
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adam" => Ok(OptimizerKind::Adam),
            "sgd" => Ok(OptimizerKind::Sgd),
            o => Err(format!("unknown optimizer {o:?} (expected adam or sgd)")),
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Sgd => "sgd",
        })
    }
}
