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

/// One step of a [`Sequential`]: a layer, or a residual block whose branches are networks.
pub enum Node<B: Backend> {
    /// A layer.
    Layer(Box<dyn Layer<B>>),
    /// `main(x) + shortcut(x)`.
    Residual(Residual<B>),
}

/// A residual block `y = main(x) + shortcut(x)`, the shortcut the identity (an empty network)
/// or a network of its own (a strided 1x1x1 convolution in the video ResNets). The activation
/// after the sum is the next layer of the enclosing network.
///
/// Relevance at the sum is split by the composite's `sum` rule ([`Rule::SumProportional`]:
/// `R_a = a / stab(a + b) R`, `R_b = b / stab(a + b) R`; [`Rule::Gradient`]: each branch gets
/// `R`); each branch carries its share down to `x`, where the two meet again:
/// `R_x = R_x^main + R_x^shortcut`.
pub struct Residual<B: Backend> {
    name: String,
    main: Sequential<B>,
    shortcut: Sequential<B>,
}

impl<B: Backend> Residual<B> {
    /// A block named `name` (the name of its sum in reports); an empty `shortcut` is the
    /// identity.
    pub fn new(name: impl Into<String>, main: Sequential<B>, shortcut: Sequential<B>) -> Self {
        Self {
            name: name.into(),
            main,
            shortcut,
        }
    }

    /// The block's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The main branch.
    pub fn main(&self) -> &Sequential<B> {
        &self.main
    }

    /// The shortcut branch (empty: the identity).
    pub fn shortcut(&self) -> &Sequential<B> {
        &self.shortcut
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let a = self.main.output_shape(input)?;
        let b = self.shortcut.output_shape(input)?;
        if a != b {
            return Err(Error::shape(format!(
                "residual block {}: the main branch gives {a:?}, the shortcut {b:?}",
                self.name
            )));
        }
        Ok(a)
    }
}

/// A network of [`Layer`]s and [`Residual`] blocks on backend `B`, applied in order.
pub struct Sequential<B: Backend> {
    nodes: Vec<Node<B>>,
}

impl<B: Backend> Default for Sequential<B> {
    fn default() -> Self {
        Self { nodes: Vec::new() }
    }
}

/// What the forward pass of one network keeps for its relevance pass.
struct Trace<T> {
    /// `slots[i]`: the input of node `i` (`slots[0]` stays empty: the caller holds the
    /// network's input), or nothing where node `i` computes its relevance from its output;
    /// `slots[len]`: the network's output.
    slots: Vec<Option<T>>,
    /// Per node: the forward wall time, and the branch traces of a residual block.
    nodes: Vec<(f64, Option<Branches<T>>)>,
}

/// The traces of a residual block's main branch and shortcut.
type Branches<T> = (Trace<T>, Trace<T>);

impl<T> Trace<T> {
    /// The network's output, or `input` for an empty network.
    fn output<'a>(&'a self, input: &'a T) -> &'a T {
        match self.slots.last() {
            Some(Some(t)) if self.slots.len() > 1 => t,
            _ => input,
        }
    }
}

/// One relevance pass's fixed inputs.
struct Pass<'a> {
    rules: &'a [Rule],
    /// The last pass over the trace frees each activation once it has used it.
    last: bool,
}

impl<B: Backend> Sequential<B> {
    /// A network of the given layers, applied in order.
    pub fn new(layers: Vec<Box<dyn Layer<B>>>) -> Self {
        Self {
            nodes: layers.into_iter().map(Node::Layer).collect(),
        }
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Layer<B> + 'static) {
        self.nodes.push(Node::Layer(Box::new(layer)));
    }

    /// Appends a residual block.
    pub fn push_residual(&mut self, block: Residual<B>) {
        self.nodes.push(Node::Residual(block));
    }

    /// The network's steps in forward order.
    pub fn nodes(&self) -> &[Node<B>] {
        &self.nodes
    }

    /// Whether the network is a plain chain of layers (no residual blocks).
    pub fn is_flat(&self) -> bool {
        self.nodes.iter().all(|n| matches!(n, Node::Layer(_)))
    }

    /// Every layer in forward order, those of a residual block's main branch before those of
    /// its shortcut.
    pub fn leaves(&self) -> Vec<&dyn Layer<B>> {
        let mut out = Vec::new();
        self.visit(&mut |step| {
            if let Step::Layer(l) = step {
                out.push(l);
            }
        });
        out
    }

    /// Visits every layer and every residual sum in forward order: a block's main branch,
    /// then its shortcut, then its sum. The order of [`Sequential::rules`].
    fn visit<'a>(&'a self, f: &mut impl FnMut(Step<'a, B>)) {
        for node in &self.nodes {
            match node {
                Node::Layer(l) => f(Step::Layer(l.as_ref())),
                Node::Residual(r) => {
                    r.main.visit(f);
                    r.shortcut.visit(f);
                    f(Step::Sum(r));
                }
            }
        }
    }

    /// The number of layers and residual sums ([`Sequential::rules`]' length).
    fn steps(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |_| n += 1);
        n
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.leaves().iter().map(|l| l.num_params()).sum()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        for node in &self.nodes {
            shape = match node {
                Node::Layer(l) => l.output_shape(&shape)?,
                Node::Residual(r) => r.output_shape(&shape)?,
            };
        }
        Ok(shape)
    }

    /// The input shape, then the shape after every layer and every residual sum in the order
    /// of [`Sequential::rules`]; **Errors** naming the first layer that does not accept its
    /// input.
    pub fn shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        let mut shapes = vec![input.to_vec()];
        self.collect_shapes(input, &mut shapes)?;
        Ok(shapes)
    }

    fn collect_shapes(&self, input: &[usize], shapes: &mut Vec<Vec<usize>>) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        for node in &self.nodes {
            shape = match node {
                Node::Layer(l) => l.output_shape(&shape)?,
                Node::Residual(r) => {
                    r.main.collect_shapes(&shape, shapes)?;
                    r.shortcut.collect_shapes(&shape, shapes)?;
                    r.output_shape(&shape)?
                }
            };
            shapes.push(shape.clone());
        }
        Ok(shape)
    }

    /// The rule of every layer and residual sum under `composite`, in the order of a forward
    /// pass (a block's main branch, its shortcut, its sum), checked before any work: **Errors**
    /// if the composite is invalid or a step gets a rule it cannot act on.
    pub fn rules(&self, composite: &Composite) -> Result<Vec<Rule>> {
        composite.validate()?;
        let mut steps = Vec::new();
        self.visit(&mut |s| steps.push((s.name().to_string(), s.kind())));
        let kinds: Vec<LayerKind> = steps.iter().map(|s| s.1).collect();
        let mut rules = composite.assign(&kinds);
        for (layer, rule) in &composite.overrides {
            let at = steps.iter().position(|s| s.0 == *layer).ok_or_else(|| {
                let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
                Error::new(
                    ErrorKind::Rule,
                    format!(
                        "a rule is given for layer {layer:?}, which the network does not have \
                         (its layers: {})",
                        names.join(", ")
                    ),
                )
            })?;
            rules[at] = rule.clone();
        }
        for ((name, kind), rule) in steps.iter().zip(&rules) {
            if !kind.role().accepts(rule) {
                return Err(Error::new(
                    ErrorKind::Rule,
                    format!(
                        "rule {} cannot be applied to layer {name} ({:?})",
                        rule.name(),
                        kind.role()
                    ),
                ));
            }
        }
        Ok(rules)
    }

    /// The forward pass.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        self.shapes(&be.shape(x))?;
        be.within(|| self.forward_unchecked(be, x))
    }

    fn forward_unchecked(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let mut h: Option<B::Tensor> = None;
        let mut fused = false;
        for (i, node) in self.nodes.iter().enumerate() {
            if std::mem::take(&mut fused) {
                continue; // a ReLU its layer ran
            }
            let input = h.as_ref().unwrap_or(x);
            h = Some(match node {
                Node::Layer(l) => match self.forward_relu(be, i, input) {
                    Some(y) => {
                        fused = true;
                        y?
                    }
                    None => l.forward(be, input)?,
                },
                Node::Residual(r) => {
                    let a = r.main.forward_unchecked(be, input)?;
                    if r.shortcut.nodes.is_empty() {
                        be.binary_owned(a, input, BinaryOp::Add)?
                    } else {
                        let b = r.shortcut.forward_unchecked(be, input)?;
                        be.binary_owned(a, &b, BinaryOp::Add)?
                    }
                }
            });
        }
        Ok(h.unwrap_or_else(|| x.clone()))
    }

    /// `max(f(x), 0)` of layer `i` and the ReLU after it as one op, where the layer offers it
    /// ([`Layer::forward_relu`]) and the ReLU computes its relevance from its output (so the
    /// layer's own output is needed by no one); `None` elsewhere.
    fn forward_relu(&self, be: &B, i: usize, x: &B::Tensor) -> Option<Result<B::Tensor>> {
        let (Node::Layer(layer), Some(Node::Layer(next))) = (&self.nodes[i], self.nodes.get(i + 1))
        else {
            return None;
        };
        if next.kind() != LayerKind::Relu || !next.relevance_from_output() {
            return None;
        }
        layer.forward_relu(be, x)
    }

    /// The forward pass of `x`, keeping what the relevance pass needs.
    fn record(&self, be: &B, x: &B::Tensor) -> Result<Trace<B::Tensor>> {
        let mut trace = Trace {
            slots: vec![None],
            nodes: Vec::with_capacity(self.nodes.len()),
        };
        let mut fused = false;
        for (i, node) in self.nodes.iter().enumerate() {
            if std::mem::take(&mut fused) {
                // A ReLU its layer ran: its input was not kept, its output is its layer's.
                let y = trace.slots.pop().expect("the fused layer's output");
                trace.slots.push(None);
                trace.slots.push(y);
                trace.nodes.push((0.0, None));
                continue;
            }
            let mut start = Instant::now();
            let input = match trace.slots.last() {
                Some(Some(t)) => t,
                _ => x,
            };
            let (next, branches) = match node {
                Node::Layer(l) => match self.forward_relu(be, i, input) {
                    Some(y) => {
                        fused = true;
                        (y?, None)
                    }
                    None => (l.forward(be, input)?, None),
                },
                Node::Residual(r) => {
                    let main = r.main.record(be, input)?;
                    let short = r.shortcut.record(be, input)?;
                    // The sum's own time: its branches' layers report theirs.
                    start = Instant::now();
                    let sum = be.binary(main.output(input), short.output(input), BinaryOp::Add)?;
                    (sum, Some((main, short)))
                }
            };
            if matches!(node, Node::Layer(l) if l.relevance_from_output()) {
                *trace.slots.last_mut().expect("non-empty") = None;
            }
            trace.slots.push(Some(next));
            trace.nodes.push((start.elapsed().as_secs_f64(), branches));
        }
        Ok(trace)
    }

    /// Carries `r` (relevance at the network's output) down to its input `x` with the rules of
    /// `pass` (this network's share, [`Sequential::steps`] of them), reporting each step in
    /// `report` from the top down.
    fn propagate(
        &self,
        be: &B,
        x: &B::Tensor,
        trace: &mut Trace<B::Tensor>,
        mut r: B::Tensor,
        pass: &Pass<'_>,
        report: &mut Vec<LayerRelevance>,
    ) -> Result<B::Tensor> {
        let mut end = pass.rules.len();
        let mut output_sum = be.sum_per_sample(&r)?;
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let start = Instant::now();
            let forward_s = trace.nodes[i].0;
            let (name, kind, rule) = match node {
                Node::Layer(layer) => {
                    end -= 1;
                    let input = match (i, &trace.slots[i]) {
                        (0, _) => x,
                        (_, Some(t)) => t,
                        _ => trace.slots[i + 1]
                            .as_ref()
                            .expect("a layer's input or output is kept until its relevance"),
                    };
                    r = layer.relevance_owned(be, input, r, &pass.rules[end])?;
                    (layer.name().to_string(), layer.kind(), &pass.rules[end])
                }
                Node::Residual(block) => {
                    end -= 1;
                    let sum_rule = &pass.rules[end];
                    let input = match (i, &trace.slots[i]) {
                        (0, _) | (_, None) => x,
                        (_, Some(t)) => t,
                    };
                    let (main_t, short_t) =
                        trace.nodes[i].1.as_mut().expect("a residual block's trace");
                    let (ra, rb) = match sum_rule {
                        Rule::SumProportional => crate::rules::sum_relevance(
                            be,
                            main_t.output(input),
                            short_t.output(input),
                            &r,
                        )?,
                        Rule::Gradient => (r.clone(), r),
                        other => return Err(other.unsupported(&block.name)),
                    };
                    let ra_sum = be.sum_per_sample(&ra)?;
                    let rb_sum = be.sum_per_sample(&rb)?;
                    report.push(LayerRelevance {
                        layer: block.name.clone(),
                        kind: LayerKind::ResidualSum,
                        rule: sum_rule.name(),
                        output_sum: output_sum.clone(),
                        input_sum: ra_sum.iter().zip(&rb_sum).map(|(a, b)| a + b).collect(),
                        forward_s,
                        relevance_s: start.elapsed().as_secs_f64(),
                    });
                    let n_short = block.shortcut.steps();
                    let n_main = block.main.steps();
                    let short_pass = Pass {
                        rules: &pass.rules[end - n_short..end],
                        last: pass.last,
                    };
                    let main_pass = Pass {
                        rules: &pass.rules[end - n_short - n_main..end - n_short],
                        last: pass.last,
                    };
                    end -= n_short + n_main;
                    let rx_short =
                        block
                            .shortcut
                            .propagate(be, input, short_t, rb, &short_pass, report)?;
                    let rx_main = block
                        .main
                        .propagate(be, input, main_t, ra, &main_pass, report)?;
                    r = be.binary_owned(rx_main, &rx_short, BinaryOp::Add)?;
                    if pass.last {
                        trace.nodes[i].1 = None;
                        trace.slots.truncate(i + 1);
                    }
                    let input_sum = be.sum_per_sample(&r)?;
                    output_sum = input_sum;
                    continue;
                }
            };
            let relevance_s = start.elapsed().as_secs_f64();
            if pass.last {
                trace.slots.truncate(i + 1);
            }
            let input_sum = be.sum_per_sample(&r)?;
            report.push(LayerRelevance {
                layer: name,
                kind,
                rule: rule.name(),
                output_sum: std::mem::replace(&mut output_sum, input_sum.clone()),
                input_sum,
                forward_s,
                relevance_s,
            });
        }
        Ok(r)
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
    /// Per-layer sums are reported from the output down; a residual block reports its sum
    /// (`input_sum`: `sum R_a + sum R_b`), then its shortcut's layers, then its main branch's.
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
        be.within(|| self.explain_each_within(be, x, target, composites))
    }

    /// [`Sequential::explain_each`] on the backend's workers.
    fn explain_each_within(
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

        let mut trace = self.record(be, x)?;
        let logits = be.download(trace.output(x))?;
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
            let mut seed = HostTensor::zeros(vec![n, k]);
            for (i, (&c, &s)) in classes.iter().zip(&scores).enumerate() {
                seed.data_mut()[i * k + c] = match composite.seed {
                    Seed::Score => s,
                    Seed::Unit => 1.0,
                };
            }
            let r = be.upload(&seed)?;
            let pass = Pass {
                rules,
                last: j + 1 == composites.len(),
            };
            let mut layers = Vec::with_capacity(rules.len());
            let r = self.propagate(be, x, &mut trace, r, &pass, &mut layers)?;
            let r = match composite.finish {
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

/// One step of a forward pass as [`Sequential::rules`] counts them.
enum Step<'a, B: Backend> {
    Layer(&'a dyn Layer<B>),
    Sum(&'a Residual<B>),
}

impl<B: Backend> Step<'_, B> {
    fn name(&self) -> &str {
        match self {
            Step::Layer(l) => l.name(),
            Step::Sum(r) => &r.name,
        }
    }
    fn kind(&self) -> LayerKind {
        match self {
            Step::Layer(l) => l.kind(),
            Step::Sum(_) => LayerKind::ResidualSum,
        }
    }
}
