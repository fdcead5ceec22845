//! The [`Backend`] trait: the tensor operations the layers and LRP rules are written against.
//!
//! A backend owns its tensor type (host arrays, device buffers, ...) and supplies a handful of
//! op families: transfer, elementwise, reductions, convolution, pooling, dense layers. The LRP
//! rules in [`crate::rules`] are written once in terms of these ops, so a new backend never
//! re-implements a rule.
//!
//! # Shapes
//! - volumes: `[N, C, T, H, W]` (batch, channel, frame, row, column), row-major;
//! - conv weights: `[C_out, C_in, kT, kH, kW]`, conv bias `[C_out]`;
//! - dense inputs `[N, D_in]`, weights `[D_out, D_in]`, bias `[D_out]`.

use crate::{Conv3dGeometry, HostTensor, Pool3dGeometry, Result};

/// Elementwise maps `y = f(x)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// `max(x, 0)`.
    Positive,
    /// `min(x, 0)`.
    Negative,
    /// `x^2`.
    Square,
    /// `1` everywhere.
    One,
    /// `k x`.
    Scale(f32),
    /// `1` where `x > 0`, else `0` (the ReLU derivative).
    StepPositive,
    /// `1` where `x < 0`, else `0`.
    StepNegative,
    /// `x + g max(x, 0)` (the gamma rule's weight modifier).
    AddPositive(f32),
    /// `x + g min(x, 0)`.
    AddNegative(f32),
}

/// Elementwise combinations `y = f(a, b)` of two tensors of one shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a b`.
    Mul,
    /// `a / stab(b)` with `stab(b) = b + eps sign(b)`, `sign(0) = +1` (Zennit's stabiliser).
    StabDiv(f32),
    /// `a [b > 0]`, computed as `a` times the step of `b` (`a 1` or `a 0`): the gradient `a`
    /// through a ReLU whose input is `b`, one pass instead of a step then a product (the
    /// same bits as [`UnaryOp::StepPositive`] of `b` times `a`).
    ///
    /// ```
    /// use vidlrp_core::{BinaryOp, UnaryOp};
    /// for (a, b) in [(2.5f32, 1.0f32), (-2.5, 1.0), (-2.5, 0.0), (f32::NAN, -1.0), (3.0, f32::NAN)] {
    ///     let composed = UnaryOp::StepPositive.apply(b) * a;
    ///     assert_eq!(BinaryOp::GatePositive.apply(a, b).to_bits(), composed.to_bits());
    /// }
    /// assert_eq!(BinaryOp::GatePositive.apply(-2.5, 0.0).to_bits(), (-0.0f32).to_bits());
    /// ```
    GatePositive,
}

impl UnaryOp {
    /// Applies the map to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Positive => x.max(0.0),
            UnaryOp::Negative => x.min(0.0),
            UnaryOp::Square => x * x,
            UnaryOp::One => 1.0,
            UnaryOp::Scale(k) => k * x,
            UnaryOp::StepPositive => f32::from(u8::from(x > 0.0)),
            UnaryOp::StepNegative => f32::from(u8::from(x < 0.0)),
            UnaryOp::AddPositive(g) => x + g * x.max(0.0),
            UnaryOp::AddNegative(g) => x + g * x.min(0.0),
        }
    }
}

/// `stab(z) = z + eps sign(z)` with `sign(0) = +1`.
#[inline]
pub fn stabilize(z: f32, eps: f32) -> f32 {
    if z >= 0.0 {
        z + eps
    } else {
        z - eps
    }
}

impl BinaryOp {
    /// Applies the combination to one pair of values.
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::StabDiv(eps) => a / stabilize(b, eps),
            BinaryOp::GatePositive => a * UnaryOp::StepPositive.apply(b),
        }
    }
}

/// A tensor backend: storage plus the ops of every layer and rule.
///
/// Implementations must be deterministic for a fixed thread count.
pub trait Backend: Send + Sync + 'static {
    /// The backend's tensor handle.
    type Tensor: Clone + Send + Sync + 'static;

    /// A short name for reports, e.g. `cpu (2 threads)`.
    fn name(&self) -> String;

    /// Runs `f`, a whole pass of many ops, on the backend's workers: a CPU backend runs it on
    /// one of its pool's threads, so that each op's parallel work starts and ends there instead
    /// of waking the pool from outside and sleeping until it is done (a hand-off per op that
    /// costs more than the arithmetic of a small layer). Values are the same as calling `f`
    /// directly, which is the default.
    fn within<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R
    where
        Self: Sized,
    {
        f()
    }

    // ---- transfer ----

    /// Copies a host tensor into the backend.
    fn upload(&self, t: &HostTensor) -> Result<Self::Tensor>;
    /// Moves a host tensor into the backend: a backend whose tensors live in host memory
    /// keeps the buffer instead of copying it. The default copies ([`Backend::upload`]).
    fn upload_owned(&self, t: HostTensor) -> Result<Self::Tensor> {
        self.upload(&t)
    }
    /// Copies a backend tensor to the host.
    fn download(&self, t: &Self::Tensor) -> Result<HostTensor>;
    /// The tensor's shape.
    fn shape(&self, t: &Self::Tensor) -> Vec<usize>;
    /// The same values under another shape of equal size.
    fn reshape(&self, t: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    /// A tensor of `shape` (axis 1 = channels) filled with `values[c]` in channel `c`.
    fn fill_channels(&self, shape: &[usize], values: &[f32]) -> Result<Self::Tensor>;

    // ---- elementwise ----

    /// `y = op(x)` elementwise; **Errors** only on device failures (e.g. out of memory).
    fn unary(&self, x: &Self::Tensor, op: UnaryOp) -> Result<Self::Tensor>;
    /// `y = op(a, b)` elementwise; **Errors** if the shapes differ.
    fn binary(&self, a: &Self::Tensor, b: &Self::Tensor, op: BinaryOp) -> Result<Self::Tensor>;
    /// [`Backend::binary`] consuming `a`: the same values, written into `a`'s memory where the
    /// backend can (one buffer fewer alive at once). The default allocates as `binary` does.
    fn binary_owned(
        &self,
        a: Self::Tensor,
        b: &Self::Tensor,
        op: BinaryOp,
    ) -> Result<Self::Tensor> {
        self.binary(&a, b, op)
    }
    /// [`Backend::binary`] consuming `b`: `op(a, b)` written into `b`'s memory where the
    /// backend can (`r / stab(z)` over `z`). The default allocates as `binary` does.
    fn binary_owned_rhs(
        &self,
        a: &Self::Tensor,
        b: Self::Tensor,
        op: BinaryOp,
    ) -> Result<Self::Tensor> {
        self.binary(a, &b, op)
    }

    // ---- reductions ----

    /// Per-sample sums over all but the first axis, accumulated in `f64`.
    fn sum_per_sample(&self, x: &Self::Tensor) -> Result<Vec<f64>>;
    /// The smallest value (`+inf` for an empty tensor).
    fn min_value(&self, x: &Self::Tensor) -> Result<f32>;

    // ---- convolution ----

    /// 3-d cross-correlation with zero padding:
    /// `z[n,o,t,h,w] = sum_{i,a,b,c} x[n,i,t s_t + a - p_t, ...] w[o,i,a,b,c] + bias[o]`.
    ///
    /// # Shapes
    /// x `[N, C_in, T, H, W]`, w `[C_out, C_in, kT, kH, kW]`, bias `[C_out]` ->
    /// `[N, C_out, T', H', W']`.
    fn conv3d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        geometry: &Conv3dGeometry,
    ) -> Result<Self::Tensor>;

    /// The convolution followed by a ReLU, `max(conv3d(x, w, bias), 0)` (`UnaryOp::Positive`
    /// of each output): one op, so a backend may rectify each output as it stores it instead
    /// of in a second pass over the whole tensor. An override gives the bits of the default,
    /// which composes the two.
    fn conv3d_relu(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        geometry: &Conv3dGeometry,
    ) -> Result<Self::Tensor> {
        self.unary(&self.conv3d(x, w, bias, geometry)?, UnaryOp::Positive)
    }

    /// The transposed convolution: the gradient of `sum(g * conv3d(x, w))` with respect to `x`.
    ///
    /// # Shapes
    /// g `[N, C_out, T', H', W']`, w `[C_out, C_in, kT, kH, kW]` -> `input_shape`.
    fn conv3d_transposed(
        &self,
        g: &Self::Tensor,
        w: &Self::Tensor,
        geometry: &Conv3dGeometry,
        input_shape: &[usize],
    ) -> Result<Self::Tensor>;

    /// z^B's contribution sums at a convolution's output where the bounds are constant per
    /// input channel: `conv3d(x; w) − conv3d(1; k)` with `k = l w+ + h w-` and `1` the input's
    /// shape filled with ones (the bound term counts only taps inside the input).
    ///
    /// The default composes [`Backend::fill_channels`], [`Backend::conv3d`] twice and
    /// [`BinaryOp::Sub`] ([`crate::rules::bounded_sums`]); a backend may sum the bound term once for the whole batch (it is the
    /// same for every sample) if it computes the same.
    fn conv3d_bounded(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        k: &Self::Tensor,
        geometry: &Conv3dGeometry,
    ) -> Result<Self::Tensor> {
        crate::rules::bounded_sums(self, x, w, k, |input, kernel| {
            self.conv3d(input, kernel, None, geometry)
        })
    }

    /// z^B's relevance at a convolution's input `x` where the bounds are constant per input
    /// channel: `x ⊙ conv3d_transposed(s; w) − conv3d_transposed(s; k)` with `k = l w+ + h w-`.
    ///
    /// The default composes [`Backend::conv3d_transposed`] twice, [`BinaryOp::Mul`] and
    /// [`BinaryOp::Sub`] ([`crate::rules::bounded_relevance`]); a backend may run both transposes in one pass over `s` (the CPU does
    /// onto 1-3 channels) if it computes the same.
    ///
    /// # Shapes
    /// s `[N, C_out, T', H', W']`, w and k `[C_out, C_in, kT, kH, kW]`, x `[N, C_in, T, H, W]`
    /// -> the shape of `x`.
    fn conv3d_transposed_bounded(
        &self,
        s: &Self::Tensor,
        w: &Self::Tensor,
        k: &Self::Tensor,
        x: &Self::Tensor,
        geometry: &Conv3dGeometry,
    ) -> Result<Self::Tensor> {
        let shape = self.shape(x);
        crate::rules::bounded_relevance(
            self,
            x,
            |kernel| self.conv3d_transposed(s, kernel, geometry, &shape),
            w,
            k,
        )
    }

    // ---- dense ----

    /// `z = x w^T + bias`.
    ///
    /// # Shapes
    /// x `[N, D_in]`, w `[D_out, D_in]`, bias `[D_out]` -> `[N, D_out]`.
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor>;

    /// `g w`: the gradient of `sum(g * linear(x, w))` with respect to `x`.
    ///
    /// # Shapes
    /// g `[N, D_out]`, w `[D_out, D_in]` -> `[N, D_in]`.
    fn linear_transposed(&self, g: &Self::Tensor, w: &Self::Tensor) -> Result<Self::Tensor>;

    // ---- pooling ----

    /// Max pooling over the clipped windows of `geometry` (padding never wins).
    fn max_pool3d(&self, x: &Self::Tensor, geometry: &Pool3dGeometry) -> Result<Self::Tensor>;

    /// Winner-take-all routing, the gradient of max pooling: each `g[j]` goes to the first
    /// maximum of window `j` in scan order (`t`, then `h`, then `w`), as in PyTorch.
    fn max_pool3d_transposed(
        &self,
        x: &Self::Tensor,
        g: &Self::Tensor,
        geometry: &Pool3dGeometry,
    ) -> Result<Self::Tensor>;

    /// Sum pooling over the clipped windows: `s[j] = sum_{i in pool(j)} x[i]`.
    fn sum_pool3d(&self, x: &Self::Tensor, geometry: &Pool3dGeometry) -> Result<Self::Tensor>;

    /// The transposed sum pooling: `y[i] = sum_{j : i in pool(j)} g[j]`, shaped `input_shape`.
    fn sum_pool3d_transposed(
        &self,
        g: &Self::Tensor,
        geometry: &Pool3dGeometry,
        input_shape: &[usize],
    ) -> Result<Self::Tensor>;

    /// Relevance through sum pooling in proportion to the inputs:
    /// `y[i] = x[i] sum_{j : i in pool(j)} r[j] / stab(s[j], eps)` with `s` the window sums
    /// ([`Backend::sum_pool3d`]), shaped like `x`.
    ///
    /// The default composes [`Backend::sum_pool3d`], [`BinaryOp::StabDiv`],
    /// [`Backend::sum_pool3d_transposed`] and [`BinaryOp::Mul`]; a backend may fuse them into
    /// one pass over `x` (the CPU does for non-overlapping windows) if it computes the same.
    fn sum_pool3d_proportional(
        &self,
        x: &Self::Tensor,
        r: &Self::Tensor,
        geometry: &Pool3dGeometry,
        eps: f32,
    ) -> Result<Self::Tensor> {
        let sums = self.sum_pool3d(x, geometry)?;
        let s = self.binary_owned_rhs(r, sums, BinaryOp::StabDiv(eps))?;
        let spread = self.sum_pool3d_transposed(&s, geometry, &self.shape(x))?;
        drop(s);
        self.binary_owned(spread, x, BinaryOp::Mul)
    }

    // ---- parameter gradients (training) ----

    /// The gradient of `sum(g * conv3d(x, w))` with respect to `w`:
    /// `dw[o,i,a,b,c] = sum_{n,t,h,w} g[n,o,t,h,w] x[n,i,t s_t + a - p_t, h s_h + b - p_h, w s_w + c - p_w]`
    /// (zero padding).
    ///
    /// # Shapes
    /// x `[N, C_in, T, H, W]`, g `[N, C_out, T', H', W']` -> `weight_shape`
    /// `[C_out, C_in, kT, kH, kW]`.
    fn conv3d_weight_gradient(
        &self,
        x: &Self::Tensor,
        g: &Self::Tensor,
        geometry: &Conv3dGeometry,
        weight_shape: &[usize],
    ) -> Result<Self::Tensor>;

    /// `dw = g^T x`: the gradient of `sum(g * linear(x, w))` with respect to `w`.
    ///
    /// # Shapes
    /// x `[N, D_in]`, g `[N, D_out]` -> `[D_out, D_in]`.
    fn linear_weight_gradient(&self, x: &Self::Tensor, g: &Self::Tensor) -> Result<Self::Tensor>;

    /// `b[c] = sum_{n, ...} g[n, c, ...]`: sums over every axis but axis 1 (a bias gradient,
    /// of a convolution's `[N, C, T, H, W]` or a dense layer's `[N, D]` output gradient).
    fn sum_channels(&self, g: &Self::Tensor) -> Result<Self::Tensor>;
}
