//! The [`Layer`] trait (`forward` and `relevance`) and the layers of a C3D-like network.

use crate::backend::{Backend, UnaryOp};
use crate::rules::{activation_relevance, affine_relevance, pool_relevance};
use crate::{Affine, Conv3dGeometry, Error, HostTensor, Pool3dGeometry, Result, Rule};

/// What part a layer plays in relevance propagation: a composite assigns rules by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An affine map over a spatio-temporal input (convolutions): the composite's `conv` rule.
    Convolution,
    /// An affine map over a flat input (dense layers): the composite's `linear` rule.
    Dense,
    /// A pooling layer: the composite's `pool` rule.
    Pooling,
    /// An elementwise activation (or an identity in evaluation, such as dropout): the
    /// composite's `activation` rule.
    Activation,
    /// A reshape that moves values without changing them: relevance passes unchanged.
    Reshape,
    /// A residual block's sum of its two branches: the composite's `sum` rule.
    Sum,
}

impl Role {
    /// Convolutions and dense layers.
    pub fn is_affine(self) -> bool {
        matches!(self, Role::Convolution | Role::Dense)
    }

    /// Whether `rule` can act on a layer of this role.
    ///
    /// ```
    /// use vidlrp_core::{Role, Rule};
    /// assert!(Role::Pooling.accepts(&Rule::PoolProportional));
    /// assert!(!Role::Pooling.accepts(&Rule::WSquare));
    /// assert!(Role::Dense.accepts(&Rule::ZPlus { positive_bias: false }));
    /// ```
    pub fn accepts(self, rule: &Rule) -> bool {
        match self {
            Role::Convolution | Role::Dense => rule.is_affine_rule(),
            Role::Pooling => matches!(
                rule,
                Rule::PoolProportional | Rule::PoolWinnerTakeAll | Rule::Gradient
            ),
            Role::Activation => matches!(rule, Rule::Pass | Rule::Gradient),
            Role::Reshape => true,
            Role::Sum => matches!(rule, Rule::SumProportional | Rule::Gradient),
        }
    }
}

/// What a layer is, so that a composite can pick its rule. The built-in layers have their own
/// kinds; a layer defined outside this crate says which [`Role`] it plays with
/// [`LayerKind::Custom`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LayerKind {
    /// 3-d convolution (affine).
    Conv3d,
    /// Dense layer (affine).
    Linear,
    /// 3-d max pooling.
    MaxPool3d,
    /// 3-d average pooling (fixed or adaptive windows).
    AvgPool3d,
    /// Rectified linear unit.
    Relu,
    /// Reshape `[N, ...] -> [N, D]`.
    Flatten,
    /// The sum `main(x) + shortcut(x)` that ends a residual block.
    ResidualSum,
    /// A layer defined outside this crate.
    Custom {
        /// The layer type's name, for reports (e.g. `"dropout"`).
        name: &'static str,
        /// The part it plays in relevance propagation.
        role: Role,
    },
}

impl LayerKind {
    /// The part the layer plays in relevance propagation.
    pub fn role(self) -> Role {
        match self {
            LayerKind::Conv3d => Role::Convolution,
            LayerKind::Linear => Role::Dense,
            LayerKind::MaxPool3d | LayerKind::AvgPool3d => Role::Pooling,
            LayerKind::Relu => Role::Activation,
            LayerKind::Flatten => Role::Reshape,
            LayerKind::ResidualSum => Role::Sum,
            LayerKind::Custom { role, .. } => role,
        }
    }

    /// Convolutions and dense layers (built-in or custom).
    pub fn is_affine(self) -> bool {
        self.role().is_affine()
    }
}

/// One layer of a sequential network: it maps activations forward and relevance backward.
pub trait Layer<B: Backend>: Send + Sync {
    /// The layer's name (`conv1`, `pool5`, ...).
    fn name(&self) -> &str;
    /// What the layer is.
    fn kind(&self) -> LayerKind;
    /// The output shape for an input shape, or an error naming the mismatch.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;
    /// The forward pass `y = f(x)`.
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor>;
    /// Input relevance from the input `x` and output relevance `r` under `rule`.
    fn relevance(&self, be: &B, x: &B::Tensor, r: &B::Tensor, rule: &Rule) -> Result<B::Tensor>;
    /// [`Layer::relevance`] taking the output relevance by value, so a layer may return it or
    /// write into it instead of allocating (ReLU under [`Rule::Pass`] returns `r` itself). The
    /// same values as `relevance`; the default calls it.
    fn relevance_owned(
        &self,
        be: &B,
        x: &B::Tensor,
        r: B::Tensor,
        rule: &Rule,
    ) -> Result<B::Tensor> {
        self.relevance(be, x, &r, rule)
    }
    /// `max(forward(x), 0)`: the layer and a ReLU after it as one op, where the layer offers
    /// it (`Conv3d`: [`Backend::conv3d_relu`]); `None`, the default, where not (the network
    /// then runs the ReLU on [`Layer::forward`]'s output). The same values either way.
    fn forward_relu(&self, _be: &B, _x: &B::Tensor) -> Option<Result<B::Tensor>> {
        None
    }
    /// Whether [`Layer::relevance`] gives the same result, for every rule it accepts, when
    /// handed the layer's output `y = f(x)` in place of its input `x` (ReLU: `x > 0` exactly
    /// where `max(x, 0) > 0`). A network then keeps only the output of such a layer for the
    /// relevance pass, not its input as well. `false` unless a layer says otherwise.
    fn relevance_from_output(&self) -> bool {
        false
    }
    /// Number of trainable parameters.
    fn num_params(&self) -> usize {
        0
    }
    /// The layer as an affine map, if it is one (for checks and tools that need its weights).
    fn affine(&self) -> Option<&dyn Affine<B>> {
        None
    }
    /// The pooling window, if the layer pools.
    fn pooling(&self) -> Option<&Pool3dGeometry> {
        None
    }
}

/// A parameter on the host, borrowed (uploaded as a copy) or owned (handed to the backend,
/// which may keep its buffer: [`Backend::upload_owned`]).
enum Param<'a> {
    Borrowed(&'a HostTensor),
    Owned(HostTensor),
}

impl Param<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Param::Borrowed(t) => t.shape(),
            Param::Owned(t) => t.shape(),
        }
    }

    fn tensor(&self) -> &HostTensor {
        match self {
            Param::Borrowed(t) => t,
            Param::Owned(t) => t,
        }
    }

    /// Checks finiteness, then uploads.
    fn upload<B: Backend>(self, be: &B, what: &str) -> Result<B::Tensor> {
        self.tensor().check_finite(what)?;
        match self {
            Param::Borrowed(t) => be.upload(t),
            Param::Owned(t) => be.upload_owned(t),
        }
    }
}

/// **Errors** unless `bias` is absent or has shape `[outputs]`.
fn check_bias(name: &str, bias: Option<&Param<'_>>, outputs: usize) -> Result<()> {
    match bias {
        Some(b) if b.shape() != [outputs] => Err(Error::shape(format!(
            "{name}.bias must have shape [{outputs}], got {:?}",
            b.shape()
        ))),
        _ => Ok(()),
    }
}

/// 3-d convolution `z = conv3d(x, w) + b`.
///
/// # Shapes
/// weight `[C_out, C_in, kT, kH, kW]`, bias `[C_out]`, input `[N, C_in, T, H, W]`.
pub struct Conv3d<B: Backend> {
    name: String,
    weight: B::Tensor,
    bias: Option<B::Tensor>,
    weight_shape: Vec<usize>,
    geometry: Conv3dGeometry,
}

impl<B: Backend> Conv3d<B> {
    /// Builds the layer from host tensors, checking shapes and finiteness.
    pub fn new(
        be: &B,
        name: impl Into<String>,
        weight: &HostTensor,
        bias: Option<&HostTensor>,
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> Result<Self> {
        let bias = bias.map(Param::Borrowed);
        Self::with(
            be,
            name.into(),
            Param::Borrowed(weight),
            bias,
            stride,
            padding,
        )
    }

    /// [`Conv3d::new`] from owned host tensors: a backend that keeps tensors in host memory
    /// takes their buffers instead of copying them (no second copy of the weights, even
    /// briefly).
    pub fn from_host(
        be: &B,
        name: impl Into<String>,
        weight: HostTensor,
        bias: Option<HostTensor>,
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> Result<Self> {
        let bias = bias.map(Param::Owned);
        Self::with(be, name.into(), Param::Owned(weight), bias, stride, padding)
    }

    fn with(
        be: &B,
        name: String,
        weight: Param<'_>,
        bias: Option<Param<'_>>,
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> Result<Self> {
        let ws = weight.shape().to_vec();
        if ws.len() != 5 || ws.contains(&0) {
            return Err(Error::shape(format!(
                "{name}.weight must have shape [C_out, C_in, kT, kH, kW], got {ws:?}"
            )));
        }
        check_bias(&name, bias.as_ref(), ws[0])?;
        let geometry = Conv3dGeometry {
            kernel: [ws[2], ws[3], ws[4]],
            stride,
            padding,
        };
        Ok(Self {
            weight: weight.upload(be, &format!("{name}.weight"))?,
            bias: bias
                .map(|b| b.upload(be, &format!("{name}.bias")))
                .transpose()?,
            name,
            weight_shape: ws,
            geometry,
        })
    }

    /// The window geometry.
    pub fn geometry(&self) -> &Conv3dGeometry {
        &self.geometry
    }
}

impl<B: Backend> Affine<B> for Conv3d<B> {
    fn affine_name(&self) -> &str {
        &self.name
    }
    fn weight(&self) -> &B::Tensor {
        &self.weight
    }
    fn bias(&self) -> Option<&B::Tensor> {
        self.bias.as_ref()
    }
    fn apply(
        &self,
        be: &B,
        x: &B::Tensor,
        w: &B::Tensor,
        b: Option<&B::Tensor>,
    ) -> Result<B::Tensor> {
        be.conv3d(x, w, b, &self.geometry)
    }
    fn apply_transposed(
        &self,
        be: &B,
        g: &B::Tensor,
        w: &B::Tensor,
        input_shape: &[usize],
    ) -> Result<B::Tensor> {
        be.conv3d_transposed(g, w, &self.geometry, input_shape)
    }
    fn apply_bounded(
        &self,
        be: &B,
        x: &B::Tensor,
        w: &B::Tensor,
        k: &B::Tensor,
    ) -> Result<B::Tensor> {
        be.conv3d_bounded(x, w, k, &self.geometry)
    }
    fn apply_transposed_bounded(
        &self,
        be: &B,
        g: &B::Tensor,
        w: &B::Tensor,
        k: &B::Tensor,
        x: &B::Tensor,
    ) -> Result<B::Tensor> {
        be.conv3d_transposed_bounded(g, w, k, x, &self.geometry)
    }
}

impl<B: Backend> Layer<B> for Conv3d<B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Conv3d
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        check_conv_input(&self.name, &self.weight_shape, &self.geometry, input)
    }
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        self.output_shape(&be.shape(x))?;
        be.conv3d(x, &self.weight, self.bias.as_ref(), &self.geometry)
    }
    fn forward_relu(&self, be: &B, x: &B::Tensor) -> Option<Result<B::Tensor>> {
        Some(
            self.output_shape(&be.shape(x))
                .and_then(|_| be.conv3d_relu(x, &self.weight, self.bias.as_ref(), &self.geometry)),
        )
    }
    fn relevance(&self, be: &B, x: &B::Tensor, r: &B::Tensor, rule: &Rule) -> Result<B::Tensor> {
        affine_relevance(self, be, x, r, rule)
    }
    fn affine(&self) -> Option<&dyn Affine<B>> {
        Some(self)
    }
    fn num_params(&self) -> usize {
        self.weight_shape.iter().product::<usize>()
            + if self.bias.is_some() {
                self.weight_shape[0]
            } else {
                0
            }
    }
}

/// Dense layer `z = x w^T + b`.
///
/// # Shapes
/// weight `[D_out, D_in]`, bias `[D_out]`, input `[N, D_in]`.
pub struct Linear<B: Backend> {
    name: String,
    weight: B::Tensor,
    bias: Option<B::Tensor>,
    weight_shape: [usize; 2],
}

impl<B: Backend> Linear<B> {
    /// Builds the layer from host tensors, checking shapes and finiteness.
    pub fn new(
        be: &B,
        name: impl Into<String>,
        weight: &HostTensor,
        bias: Option<&HostTensor>,
    ) -> Result<Self> {
        let bias = bias.map(Param::Borrowed);
        Self::with(be, name.into(), Param::Borrowed(weight), bias)
    }

    /// [`Linear::new`] from owned host tensors (see [`Conv3d::from_host`]).
    pub fn from_host(
        be: &B,
        name: impl Into<String>,
        weight: HostTensor,
        bias: Option<HostTensor>,
    ) -> Result<Self> {
        let bias = bias.map(Param::Owned);
        Self::with(be, name.into(), Param::Owned(weight), bias)
    }

    fn with(be: &B, name: String, weight: Param<'_>, bias: Option<Param<'_>>) -> Result<Self> {
        let ws = weight.shape().to_vec();
        if ws.len() != 2 || ws.contains(&0) {
            return Err(Error::shape(format!(
                "{name}.weight must have shape [D_out, D_in], got {ws:?}"
            )));
        }
        check_bias(&name, bias.as_ref(), ws[0])?;
        Ok(Self {
            weight_shape: [ws[0], ws[1]],
            weight: weight.upload(be, &format!("{name}.weight"))?,
            bias: bias
                .map(|b| b.upload(be, &format!("{name}.bias")))
                .transpose()?,
            name,
        })
    }
}

impl<B: Backend> Affine<B> for Linear<B> {
    fn affine_name(&self) -> &str {
        &self.name
    }
    fn weight(&self) -> &B::Tensor {
        &self.weight
    }
    fn bias(&self) -> Option<&B::Tensor> {
        self.bias.as_ref()
    }
    fn apply(
        &self,
        be: &B,
        x: &B::Tensor,
        w: &B::Tensor,
        b: Option<&B::Tensor>,
    ) -> Result<B::Tensor> {
        be.linear(x, w, b)
    }
    fn apply_transposed(
        &self,
        be: &B,
        g: &B::Tensor,
        w: &B::Tensor,
        _: &[usize],
    ) -> Result<B::Tensor> {
        be.linear_transposed(g, w)
    }
}

impl<B: Backend> Layer<B> for Linear<B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Linear
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() != 2 || input[1] != self.weight_shape[1] {
            return Err(Error::shape(format!(
                "layer {} expects input [N, {}], got {input:?}",
                self.name, self.weight_shape[1]
            )));
        }
        Ok(vec![input[0], self.weight_shape[0]])
    }
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        self.output_shape(&be.shape(x))?;
        be.linear(x, &self.weight, self.bias.as_ref())
    }
    fn relevance(&self, be: &B, x: &B::Tensor, r: &B::Tensor, rule: &Rule) -> Result<B::Tensor> {
        affine_relevance(self, be, x, r, rule)
    }
    fn affine(&self) -> Option<&dyn Affine<B>> {
        Some(self)
    }
    fn num_params(&self) -> usize {
        self.weight_shape[0] * self.weight_shape[1]
            + if self.bias.is_some() {
                self.weight_shape[0]
            } else {
                0
            }
    }
}

/// 3-d max pooling `y_j = max_{i in pool(j)} x_i`.
pub struct MaxPool3d {
    name: String,
    geometry: Pool3dGeometry,
}

impl MaxPool3d {
    /// A pooling layer of the given geometry.
    pub fn new(name: impl Into<String>, geometry: Pool3dGeometry) -> Self {
        Self {
            name: name.into(),
            geometry,
        }
    }

    /// The window geometry.
    pub fn geometry(&self) -> &Pool3dGeometry {
        &self.geometry
    }
}

impl<B: Backend> Layer<B> for MaxPool3d {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::MaxPool3d
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() != 5 {
            return Err(Error::shape(format!(
                "layer {} expects a 5-d input [N, C, T, H, W], got {input:?}",
                self.name
            )));
        }
        let ext = self
            .geometry
            .output_extent([input[2], input[3], input[4]])
            .map_err(|e| Error::shape(format!("layer {}: {e}", self.name)))?;
        Ok(vec![input[0], input[1], ext[0], ext[1], ext[2]])
    }
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        <Self as Layer<B>>::output_shape(self, &be.shape(x))?;
        be.max_pool3d(x, &self.geometry)
    }
    fn relevance(&self, be: &B, x: &B::Tensor, r: &B::Tensor, rule: &Rule) -> Result<B::Tensor> {
        pool_relevance(be, &self.name, &self.geometry, x, r, rule)
    }
    fn pooling(&self) -> Option<&Pool3dGeometry> {
        Some(&self.geometry)
    }
}

/// The windows of an [`AvgPool3d`].
#[derive(Debug, Clone, PartialEq)]
pub enum AvgWindows {
    /// Fixed windows (no padding, rounding down).
    Fixed(Pool3dGeometry),
    /// The windows that tile the input into this output extent `[T, H, W]` (each input
    /// extent a multiple of it): `[1, 1, 1]` averages everything, as the video ResNets'
    /// `AdaptiveAvgPool3d(1)`.
    Adaptive([usize; 3]),
}

/// 3-d average pooling `y_j = (1 / |pool(j)|) sum_{i in pool(j)} x_i`.
///
/// Relevance: every LRP rule for pooling takes the z rule of the sum, which splits `R_j` in
/// proportion to the inputs, `R_i = x_i / stab(sum_{i' in pool(j)} x_i') R_j` (the `1 /
/// |pool(j)|` cancels; Zennit's `Norm` rule, method.md §5; an average has no maximum for
/// winner-take-all to pick); [`Rule::Gradient`] spreads `R_j / |pool(j)|` over the window.
/// The factor `1 / |pool(j)|` is applied as an `f32` ([`UnaryOp::Scale`]), also on an `f64`
/// backend.
pub struct AvgPool3d {
    name: String,
    windows: AvgWindows,
}

impl AvgPool3d {
    /// Average pooling over fixed windows.
    ///
    /// **Errors** on padding or ceil mode (whose partial windows PyTorch and Caffe average
    /// differently).
    pub fn new(name: impl Into<String>, geometry: Pool3dGeometry) -> Result<Self> {
        let name = name.into();
        if geometry.padding != [0, 0, 0] || geometry.ceil_mode {
            return Err(Error::shape(format!(
                "layer {name}: average pooling takes no padding and no ceil mode"
            )));
        }
        Ok(Self {
            name,
            windows: AvgWindows::Fixed(geometry),
        })
    }

    /// Average pooling to the output extent `[T, H, W]` (adaptive windows).
    pub fn adaptive(name: impl Into<String>, output: [usize; 3]) -> Self {
        Self {
            name: name.into(),
            windows: AvgWindows::Adaptive(output),
        }
    }

    /// The windows.
    pub fn windows(&self) -> &AvgWindows {
        &self.windows
    }

    /// The window geometry on an input of shape `[N, C, T, H, W]`.
    ///
    /// **Errors** on another rank, or for adaptive windows an extent that is not a positive
    /// multiple of the output's.
    pub fn geometry_for(&self, input: &[usize]) -> Result<Pool3dGeometry> {
        if input.len() != 5 {
            return Err(Error::shape(format!(
                "layer {} expects a 5-d input [N, C, T, H, W], got {input:?}",
                self.name
            )));
        }
        match &self.windows {
            AvgWindows::Fixed(g) => Ok(*g),
            AvgWindows::Adaptive(out) => {
                let mut kernel = [0; 3];
                for a in 0..3 {
                    let (n, o) = (input[2 + a], out[a]);
                    if o == 0 || n == 0 || n % o != 0 {
                        return Err(Error::shape(format!(
                            "layer {}: input extent {n} is not a multiple of the output extent \
                             {o} (adaptive average pooling takes equal windows only)",
                            self.name
                        )));
                    }
                    kernel[a] = n / o;
                }
                Ok(Pool3dGeometry {
                    kernel,
                    stride: kernel,
                    padding: [0, 0, 0],
                    ceil_mode: false,
                })
            }
        }
    }
}

impl<B: Backend> Layer<B> for AvgPool3d {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::AvgPool3d
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry_for(input)?;
        let ext = g
            .output_extent([input[2], input[3], input[4]])
            .map_err(|e| Error::shape(format!("layer {}: {e}", self.name)))?;
        Ok(vec![input[0], input[1], ext[0], ext[1], ext[2]])
    }
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let g = self.geometry_for(&be.shape(x))?;
        let sums = be.sum_pool3d(x, &g)?;
        be.unary(
            &sums,
            UnaryOp::Scale(1.0 / g.kernel.iter().product::<usize>() as f32),
        )
    }
    fn relevance(&self, be: &B, x: &B::Tensor, r: &B::Tensor, rule: &Rule) -> Result<B::Tensor> {
        let g = self.geometry_for(&be.shape(x))?;
        match rule {
            Rule::Gradient => {
                let volume = g.kernel.iter().product::<usize>() as f32;
                let spread = be.sum_pool3d_transposed(r, &g, &be.shape(x))?;
                be.unary(&spread, UnaryOp::Scale(1.0 / volume))
            }
            Rule::PoolProportional | Rule::PoolWinnerTakeAll => {
                pool_relevance(be, &self.name, &g, x, r, &Rule::PoolProportional)
            }
            other => Err(other.unsupported(&self.name)),
        }
    }
    fn pooling(&self) -> Option<&Pool3dGeometry> {
        match &self.windows {
            AvgWindows::Fixed(g) => Some(g),
            AvgWindows::Adaptive(_) => None,
        }
    }
}

/// `y = max(x, 0)`.
pub struct Relu {
    name: String,
}

impl Relu {
    /// A ReLU layer.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl<B: Backend> Layer<B> for Relu {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Relu
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        be.unary(x, UnaryOp::Positive)
    }
    fn relevance(&self, be: &B, x: &B::Tensor, r: &B::Tensor, rule: &Rule) -> Result<B::Tensor> {
        activation_relevance(be, &self.name, x, r, rule)
    }
    fn relevance_owned(
        &self,
        be: &B,
        x: &B::Tensor,
        r: B::Tensor,
        rule: &Rule,
    ) -> Result<B::Tensor> {
        match rule {
            Rule::Pass => Ok(r),
            _ => activation_relevance(be, &self.name, x, &r, rule),
        }
    }
    /// Pass ignores `x`; Gradient masks by `x > 0`, and `max(x, 0) > 0` exactly where `x > 0`.
    fn relevance_from_output(&self) -> bool {
        true
    }
}

/// `[N, C, T, H, W] -> [N, C T H W]`, flattening in `C, T, H, W` order.
pub struct Flatten {
    name: String,
}

impl Flatten {
    /// A flatten layer.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl<B: Backend> Layer<B> for Flatten {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Flatten
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.is_empty() {
            return Err(Error::shape(format!("layer {} got a 0-d input", self.name)));
        }
        Ok(vec![input[0], input[1..].iter().product()])
    }
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let out = <Self as Layer<B>>::output_shape(self, &be.shape(x))?;
        be.reshape(x, &out)
    }
    fn relevance(&self, be: &B, x: &B::Tensor, r: &B::Tensor, _rule: &Rule) -> Result<B::Tensor> {
        be.reshape(r, &be.shape(x))
    }
}

/// Checks a convolution weight shape `[C_out, C_in, kT, kH, kW]` against an input shape.
fn check_conv_input(
    name: &str,
    weight_shape: &[usize],
    geometry: &Conv3dGeometry,
    input: &[usize],
) -> Result<Vec<usize>> {
    if input.len() != 5 {
        return Err(Error::shape(format!(
            "layer {name} expects a 5-d input [N, C, T, H, W], got shape {input:?}"
        )));
    }
    if input[1] != weight_shape[1] {
        return Err(Error::shape(format!(
            "layer {name} expects {} input channels, got {} (input shape {input:?})",
            weight_shape[1], input[1]
        )));
    }
    let ext = geometry
        .output_extent([input[2], input[3], input[4]])
        .map_err(|e| Error::shape(format!("layer {name}: {e}")))?;
    Ok(vec![input[0], weight_shape[0], ext[0], ext[1], ext[2]])
}
