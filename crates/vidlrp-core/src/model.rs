//! [`Sequential`]: a chain of layers that runs forward, records activations, and propagates
//! relevance back into an [`Explanation`].

use std::time::Instant;

use crate::backend::{Backend, BinaryOp, UnaryOp};
use crate::composite::{Composite, Finish, Seed};
use crate::{Error, ErrorKind, HostTensor, Layer, LayerKind, Result, Rule};

/// Which output neuron each sample is explained for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The sample's highest logit.
    TopOne,
    /// One class for every sample.
    Class(usize),
    /// One class per sample.
    PerSample(Vec<usize>),
}

/// Relevance entering one layer from above, per sample (`sum_j R_j` at its output).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerRelevance {
    /// The layer's name.
    pub layer: String,
    /// The layer's kind.
    pub kind: LayerKind,
    /// The rule that carried relevance through it.
    pub rule: String,
    /// `sum R` at the layer's output, per sample.
    pub output_sum: Vec<f64>,
    /// `sum R` at the layer's input, per sample.
    pub input_sum: Vec<f64>,
    /// Wall time of the layer's forward call, in seconds (as the host sees it).
    pub forward_s: f64,
    /// Wall time of the layer's relevance call, in seconds.
    pub relevance_s: f64,
}

/// The result of [`Sequential::explain`], in host memory.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Relevance of every input value (the input's shape).
    pub relevance: HostTensor,
    /// The network's output `[N, K]`.
    pub logits: HostTensor,
    /// Explained class per sample.
    pub classes: Vec<usize>,
    /// Explained score `f_c(x)` per sample.
    pub scores: Vec<f32>,
    /// Per-layer relevance sums, from the output down to the input.
    pub layers: Vec<LayerRelevance>,
    /// `sum R` over each sample's input.
    pub input_sums: Vec<f64>,
}

impl Explanation {
    /// `sum_i R_i / f_c(x)` per sample: 1 for a conserving explanation.
    pub fn conservation(&self) -> Vec<f64> {
        self.input_sums
            .iter()
            .zip(&self.scores)
            .map(|(s, &f)| s / f64::from(f))
            .collect()
    }

    /// The `k` highest logits of sample `n` as `(class, logit)`, highest first.
    pub fn top_k(&self, n: usize, k: usize) -> Vec<(usize, f32)> {
        let classes = self.logits.shape()[1];
        top_k(&self.logits.data()[n * classes..(n + 1) * classes], k)
    }
}

/// The `k` largest entries of `values` as `(index, value)`, largest first (lower index first on
/// ties).
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, values[i])).collect()
}

/// A sequential network of [`Layer`]s on backend `B`.
pub struct Sequential<B: Backend> {
    layers: Vec<Box<dyn Layer<B>>>,
}

impl<B: Backend> Default for Sequential<B> {
    fn default() -> Self {
        Self { layers: Vec::new() }
    }
}

impl<B: Backend> Sequential<B> {
    /// A network of the given layers, applied in order.
    pub fn new(layers: Vec<Box<dyn Layer<B>>>) -> Self {
        Self { layers }
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Layer<B> + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// The layers in forward order.
    pub fn layers(&self) -> &[Box<dyn Layer<B>>] {
        &self.layers
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.num_params()).sum()
    }

    /// The shape after every layer for an input shape; **Errors** naming the first layer that
    /// does not accept its input.
    pub fn shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        let mut shapes = vec![input.to_vec()];
        for layer in &self.layers {
            let next = layer.output_shape(shapes.last().expect("non-empty"))?;
            shapes.push(next);
        }
        Ok(shapes)
    }

    /// The rule of every layer under `composite`, checked before any work: **Errors** if the
    /// composite is invalid or a layer gets a rule it cannot act on.
    pub fn rules(&self, composite: &Composite) -> Result<Vec<Rule>> {
        composite.validate()?;
        let kinds: Vec<LayerKind> = self.layers.iter().map(|l| l.kind()).collect();
        let rules = composite.assign(&kinds);
        for (layer, rule) in self.layers.iter().zip(&rules) {
            if !layer.kind().role().accepts(rule) {
                return Err(Error::new(
                    ErrorKind::Rule,
                    format!(
                        "rule {} cannot be applied to layer {} ({:?})",
                        rule.name(),
                        layer.name(),
                        layer.kind().role()
                    ),
                ));
            }
        }
        Ok(rules)
    }

    /// The forward pass.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        self.shapes(&be.shape(x))?;
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(be, &h)?;
        }
        Ok(h)
    }

    /// Explains the output for `target` with the rules of `composite`.
    ///
    /// The output relevance is `R_c = f_c(x)` ([`Seed::Score`]) or `1` ([`Seed::Unit`]) on each
    /// sample's class `c` and 0 elsewhere; it is propagated layer by layer with the rule the
    /// composite assigns, and finished as the composite says (squared for SA).
    ///
    /// **Errors** on shape mismatches, a class out of range, non-finite logits, or a
    /// non-positive score where the composite requires a positive one.
    pub fn explain(
        &self,
        be: &B,
        x: &B::Tensor,
        target: &Target,
        composite: &Composite,
    ) -> Result<Explanation> {
        let mut all = self.explain_each(be, x, target, &[composite])?;
        Ok(all.pop().expect("one explanation per composite"))
    }

    /// Explains the output for `target` once with each composite, sharing one forward pass:
    /// the activations are recorded once and every composite's relevance pass reads them.
    /// Each explanation equals [`Sequential::explain`] with that composite, bit for bit (the
    /// forward pass is deterministic); the time saved is one forward pass per extra composite
    /// (DTD and SA of the same clip, for instance).
    ///
    /// **Errors** as [`Sequential::explain`], before any relevance pass if a composite does
    /// not fit the network or a score it requires to be positive is not.
    pub fn explain_each(
        &self,
        be: &B,
        x: &B::Tensor,
        target: &Target,
        composites: &[&Composite],
    ) -> Result<Vec<Explanation>> {
        let shapes = self.shapes(&be.shape(x))?;
        let out_shape = shapes.last().expect("non-empty");
        if out_shape.len() != 2 {
            return Err(Error::shape(format!(
                "the network must end in logits [N, K], it ends in {out_shape:?}"
            )));
        }
        let (n, k) = (out_shape[0], out_shape[1]);
        let rules = composites
            .iter()
            .map(|c| self.rules(c))
            .collect::<Result<Vec<_>>>()?;

        // acts[i] is layer i's input, or None where layer i computes its relevance from its
        // output (acts[i + 1]) and its input was freed after the forward pass (a ReLU's input,
        // the convolution's output: the largest tensors of a video network).
        let mut acts: Vec<Option<B::Tensor>> = Vec::with_capacity(self.layers.len() + 1);
        let mut forward_s = Vec::with_capacity(self.layers.len());
        acts.push(Some(x.clone()));
        for layer in &self.layers {
            let start = Instant::now();
            let input = acts
                .last()
                .and_then(Option::as_ref)
                .expect("the last output is kept");
            let next = layer.forward(be, input)?;
            forward_s.push(start.elapsed().as_secs_f64());
            if layer.relevance_from_output() {
                *acts.last_mut().expect("non-empty") = None;
            }
            acts.push(Some(next));
        }
        let acts_out = acts
            .last()
            .and_then(Option::as_ref)
            .expect("the output is kept");
        let logits = be.download(acts_out)?;
        logits.check_finite("the network's output (logits)")?;

        let classes: Vec<usize> = match target {
            Target::TopOne => (0..n)
                .map(|i| top_k(&logits.data()[i * k..(i + 1) * k], 1)[0].0)
                .collect(),
            Target::Class(c) => vec![*c; n],
            Target::PerSample(cs) => {
                if cs.len() != n {
                    return Err(Error::new(
                        ErrorKind::Argument,
                        format!("{} target classes given for a batch of {n}", cs.len()),
                    ));
                }
                cs.clone()
            }
        };
        if let Some(&c) = classes.iter().find(|&&c| c >= k) {
            return Err(Error::new(
                ErrorKind::Argument,
                format!(
                    "class {c} is out of range: the model has {k} classes (0..{})",
                    k - 1
                ),
            ));
        }
        let scores: Vec<f32> = classes
            .iter()
            .enumerate()
            .map(|(i, &c)| logits.data()[i * k + c])
            .collect();
        for composite in composites {
            if composite.requires_positive_score {
                if let Some((i, s)) = scores.iter().enumerate().find(|(_, &s)| s <= 0.0) {
                    return Err(Error::new(
                        ErrorKind::NonPositiveScore,
                        format!(
                            "sample {i}: the explained logit f_{}(x) = {s} is not positive; {} is \
                             only defined for f_c(x) > 0 (explain another class, or use a method \
                             such as sa or epsilon-plus)",
                            classes[i], composite.name
                        ),
                    ));
                }
            }
        }

        let mut explanations = Vec::with_capacity(composites.len());
        for (j, (composite, rules)) in composites.iter().zip(&rules).enumerate() {
            // The last relevance pass may free each activation once it has used it.
            let last = j + 1 == composites.len();
            let mut seed = HostTensor::zeros(vec![n, k]);
            for (i, (&c, &s)) in classes.iter().zip(&scores).enumerate() {
                seed.data_mut()[i * k + c] = match composite.seed {
                    Seed::Score => s,
                    Seed::Unit => 1.0,
                };
            }
            let mut r = be.upload(&seed)?;
            let mut layers = Vec::with_capacity(self.layers.len());
            // A layer's output relevance is the input relevance of the layer above: sum it once.
            let mut output_sum = be.sum_per_sample(&r)?;
            for (i, layer) in self.layers.iter().enumerate().rev() {
                let start = Instant::now();
                let input = acts[i].as_ref().or(acts[i + 1].as_ref());
                let input = input.expect("a layer's input or output is kept until its relevance");
                r = layer.relevance_owned(be, input, r, &rules[i])?;
                let relevance_s = start.elapsed().as_secs_f64();
                if last {
                    acts.truncate(i + 1);
                }
                let input_sum = be.sum_per_sample(&r)?;
                layers.push(LayerRelevance {
                    layer: layer.name().to_string(),
                    kind: layer.kind(),
                    rule: rules[i].name(),
                    output_sum: std::mem::replace(&mut output_sum, input_sum.clone()),
                    input_sum,
                    forward_s: forward_s[i],
                    relevance_s,
                });
            }
            r = match composite.finish {
                Finish::Identity => r,
                Finish::Square => be.unary(&r, UnaryOp::Square)?,
                Finish::TimesInput => be.binary(&r, x, BinaryOp::Mul)?,
            };
            let input_sums = be.sum_per_sample(&r)?;
            let relevance = be.download(&r)?;
            explanations.push(Explanation {
                relevance,
                logits: logits.clone(),
                classes: classes.clone(),
                scores: scores.clone(),
                layers,
                input_sums,
            });
        }
        Ok(explanations)
    }
}
