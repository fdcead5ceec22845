//! [`GpuBackend`]: the [`Backend`] ops planned once, run by any [`Executor`].

use std::sync::Arc;

use crate::exec::{Executor, Kernel, REDUCE_CHUNK};
use crate::plan::{self, ConvDims, PoolDims};
use vidlrp_core::{
    operands, Backend, BinaryOp, Conv3dGeometry, Error, HostTensor, Pool3dGeometry, Result, UnaryOp,
};

/// A tensor of a [`GpuBackend`]: an immutable shared buffer and its shape.
pub struct GpuTensor<B> {
    buffer: Arc<B>,
    shape: Vec<usize>,
}

impl<B> Clone for GpuTensor<B> {
    fn clone(&self) -> Self {
        Self {
            buffer: Arc::clone(&self.buffer),
            shape: self.shape.clone(),
        }
    }
}

impl<B> std::fmt::Debug for GpuTensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuTensor")
            .field("shape", &self.shape)
            .finish()
    }
}

impl<B> GpuTensor<B> {
    fn new(buffer: B, shape: Vec<usize>) -> Self {
        Self {
            buffer: Arc::new(buffer),
            shape,
        }
    }

    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The device backend: every [`Backend`] op as kernel launches and column-major GEMMs on `E`.
#[derive(Debug)]
pub struct GpuBackend<E> {
    exec: E,
    tile_floats: usize,
}

impl<E: Executor> GpuBackend<E> {
    /// A backend running on `exec`, convolution column tiles bounded by [`plan::TILE_FLOATS`].
    pub fn with_executor(exec: E) -> Self {
        Self {
            exec,
            tile_floats: plan::TILE_FLOATS,
        }
    }

    /// The same backend with column tiles of at most `floats` values (less device memory, more
    /// GEMM calls).
    pub fn with_tile_floats(mut self, floats: usize) -> Self {
        self.tile_floats = floats.max(1);
        self
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.exec
    }

    fn tensor(&self, len: usize, shape: Vec<usize>) -> Result<(E::Buffer, Vec<usize>)> {
        debug_assert_eq!(len, shape.iter().product::<usize>());
        Ok((self.exec.zeros(len)?, shape))
    }

    fn add_channels(
        &self,
        y: &mut E::Buffer,
        n: usize,
        channels: usize,
        inner: usize,
        values: &E::Buffer,
    ) -> Result<()> {
        self.exec.launch(Kernel::Channels {
            y,
            values,
            n: n as i64,
            channels: channels as i64,
            inner: inner.max(1) as i64,
            accumulate: 1,
        })
    }
}

/// The checked dims of one convolution (see [`operands::conv3d`]).
fn conv_dims(x_shape: &[usize], w_shape: &[usize], g: &Conv3dGeometry) -> Result<ConvDims> {
    operands::conv3d(x_shape, w_shape, g)?;
    ConvDims::new(x_shape[1], operands::extent(x_shape), g)
}

/// The checked dims of one pooling (see [`operands::pool3d`]).
fn pool_dims(x_shape: &[usize], g: &Pool3dGeometry) -> Result<PoolDims> {
    operands::pool3d(x_shape, g)?;
    PoolDims::new(operands::extent(x_shape), g)
}

impl<E: Executor> Backend for GpuBackend<E> {
    type Tensor = GpuTensor<E::Buffer>;

    fn name(&self) -> String {
        self.exec.name()
    }

    fn upload(&self, t: &HostTensor) -> Result<Self::Tensor> {
        Ok(GpuTensor::new(
            self.exec.upload(t.data())?,
            t.shape().to_vec(),
        ))
    }

    fn download(&self, t: &Self::Tensor) -> Result<HostTensor> {
        let mut data = self.exec.download(&t.buffer)?;
        // Empty tensors live in one-value buffers (devices cannot allocate zero bytes).
        data.truncate(t.len());
        HostTensor::new(t.shape.clone(), data)
    }

    fn shape(&self, t: &Self::Tensor) -> Vec<usize> {
        t.shape.clone()
    }

    fn reshape(&self, t: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        if t.len() != shape.iter().product::<usize>() {
            return Err(Error::shape(format!(
                "cannot reshape {:?} to {shape:?}",
                t.shape
            )));
        }
        Ok(GpuTensor {
            buffer: Arc::clone(&t.buffer),
            shape: shape.to_vec(),
        })
    }

    fn fill_channels(&self, shape: &[usize], values: &[f32]) -> Result<Self::Tensor> {
        if shape.len() < 2 || shape[1] != values.len() {
            return Err(Error::shape(format!(
                "{} channel values for shape {shape:?}",
                values.len()
            )));
        }
        let n: usize = shape.iter().product();
        let (mut y, shape) = self.tensor(n, shape.to_vec())?;
        let v = self.exec.upload(values)?;
        self.exec.launch(Kernel::Channels {
            y: &mut y,
            values: &v,
            n: n as i64,
            channels: values.len() as i64,
            inner: shape[2..].iter().product::<usize>().max(1) as i64,
            accumulate: 0,
        })?;
        Ok(GpuTensor::new(y, shape))
    }

    fn unary(&self, x: &Self::Tensor, op: UnaryOp) -> Result<Self::Tensor> {
        let (code, k) = plan::unary_code(op);
        let (mut y, shape) = self.tensor(x.len(), x.shape.clone())?;
        self.exec.launch(Kernel::Unary {
            x: &x.buffer,
            y: &mut y,
            n: x.len() as i64,
            op: code,
            k,
        })?;
        Ok(GpuTensor::new(y, shape))
    }

    fn binary(&self, a: &Self::Tensor, b: &Self::Tensor, op: BinaryOp) -> Result<Self::Tensor> {
        if a.shape != b.shape {
            return Err(Error::shape(format!(
                "elementwise op on shapes {:?} and {:?}",
                a.shape, b.shape
            )));
        }
        let (code, eps) = plan::binary_code(op);
        let (mut y, shape) = self.tensor(a.len(), a.shape.clone())?;
        self.exec.launch(Kernel::Binary {
            a: &a.buffer,
            b: &b.buffer,
            y: &mut y,
            n: a.len() as i64,
            op: code,
            eps,
        })?;
        Ok(GpuTensor::new(y, shape))
    }

    fn sum_per_sample(&self, x: &Self::Tensor) -> Result<Vec<f64>> {
        let n = x.shape.first().copied().unwrap_or(0);
        if n == 0 {
            return Ok(Vec::new());
        }
        let per = x.len() / n;
        if per == 0 {
            return Ok(vec![0.0; n]);
        }
        let parts = self.exec.partial_sums(&x.buffer, n, per, REDUCE_CHUNK)?;
        let chunks = per.div_ceil(REDUCE_CHUNK);
        Ok(parts.chunks(chunks).map(|c| c.iter().sum()).collect())
    }

    fn min_value(&self, x: &Self::Tensor) -> Result<f32> {
        if x.len() == 0 {
            return Ok(f32::INFINITY);
        }
        Ok(self
            .exec
            .partial_min(&x.buffer, x.len(), REDUCE_CHUNK)?
            .into_iter()
            .fold(f32::INFINITY, f32::min))
    }

    fn conv3d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        g: &Conv3dGeometry,
    ) -> Result<Self::Tensor> {
        let d = conv_dims(&x.shape, &w.shape, g)?;
        let (n, c_out) = (x.shape[0], w.shape[0]);
        operands::bias("conv3d", bias.map(|b| &b.shape[..]), c_out)?;
        let p = d.positions();
        let [to, ho, wo] = d.output.map(|v| v as usize);
        let (mut out, shape) = self.tensor(n * c_out * p, vec![n, c_out, to, ho, wo])?;
        self.for_each_column_tile(x, &d, |cols, sample, p0, pt| {
            let call = plan::conv_forward_gemm(&d, c_out, sample, p0, pt);
            self.exec.gemm(&call, cols, &w.buffer, &mut out)
        })?;
        if let Some(b) = bias {
            self.add_channels(&mut out, n * c_out * p, c_out, p, &b.buffer)?;
        }
        Ok(GpuTensor::new(out, shape))
    }

    fn conv3d_transposed(
        &self,
        gy: &Self::Tensor,
        w: &Self::Tensor,
        g: &Conv3dGeometry,
        input_shape: &[usize],
    ) -> Result<Self::Tensor> {
        let d = conv_dims(input_shape, &w.shape, g)?;
        operands::conv3d_gradient(
            input_shape,
            &w.shape,
            &gy.shape,
            d.output.map(|v| v as usize),
        )?;
        let (n, c_out) = (input_shape[0], w.shape[0]);
        let p = d.positions();
        let (mut dx, shape) = self.tensor(n * d.input_len(), input_shape.to_vec())?;
        let tiles = plan::column_tiles(d.rows(), p, self.tile_floats);
        let mut cols = self
            .exec
            .zeros(d.rows() * tiles.first().map_or(0, |t| t.1))?;
        for sample in 0..n {
            for &(p0, pt) in &tiles {
                let call = plan::conv_transposed_gemm(&d, c_out, sample, p0, pt);
                self.exec.gemm(&call, &gy.buffer, &w.buffer, &mut cols)?;
                self.exec.launch(Kernel::Col2Vol {
                    cols: &cols,
                    x: &mut dx,
                    x_offset: (sample * d.input_len()) as i64,
                    d,
                    p0: p0 as i64,
                    pt: pt as i64,
                })?;
            }
        }
        Ok(GpuTensor::new(dx, shape))
    }

    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        let (n, d_in, d_out) = operands::linear(&x.shape, &w.shape)?;
        operands::bias("linear", bias.map(|b| &b.shape[..]), d_out)?;
        let (mut y, shape) = self.tensor(n * d_out, vec![n, d_out])?;
        if n * d_in > 0 {
            self.exec.gemm(
                &plan::linear_gemm(n, d_in, d_out),
                &w.buffer,
                &x.buffer,
                &mut y,
            )?;
        }
        if let Some(b) = bias {
            self.add_channels(&mut y, n * d_out, d_out, 1, &b.buffer)?;
        }
        Ok(GpuTensor::new(y, shape))
    }

    fn linear_transposed(&self, g: &Self::Tensor, w: &Self::Tensor) -> Result<Self::Tensor> {
        let (n, d_out, d_in) = operands::linear_gradient(&g.shape, &w.shape)?;
        let (mut dx, shape) = self.tensor(n * d_in, vec![n, d_in])?;
        if n * d_out > 0 {
            self.exec.gemm(
                &plan::linear_transposed_gemm(n, d_in, d_out),
                &w.buffer,
                &g.buffer,
                &mut dx,
            )?;
        }
        Ok(GpuTensor::new(dx, shape))
    }

    fn max_pool3d(&self, x: &Self::Tensor, g: &Pool3dGeometry) -> Result<Self::Tensor> {
        self.pool(x, g, 0)
    }

    fn max_pool3d_transposed(
        &self,
        x: &Self::Tensor,
        gy: &Self::Tensor,
        g: &Pool3dGeometry,
    ) -> Result<Self::Tensor> {
        self.pool_transposed(Some(x), gy, g, &x.shape, 0)
    }

    fn sum_pool3d(&self, x: &Self::Tensor, g: &Pool3dGeometry) -> Result<Self::Tensor> {
        self.pool(x, g, 1)
    }

    fn sum_pool3d_transposed(
        &self,
        gy: &Self::Tensor,
        g: &Pool3dGeometry,
        input_shape: &[usize],
    ) -> Result<Self::Tensor> {
        self.pool_transposed(None, gy, g, input_shape, 1)
    }

    fn conv3d_weight_gradient(
        &self,
        x: &Self::Tensor,
        gy: &Self::Tensor,
        g: &Conv3dGeometry,
        weight_shape: &[usize],
    ) -> Result<Self::Tensor> {
        operands::conv3d_weight_gradient(&x.shape, &gy.shape, weight_shape, g)?;
        let d = conv_dims(&x.shape, weight_shape, g)?;
        let c_out = weight_shape[0];
        let (mut dw, shape) = self.tensor(c_out * d.rows(), weight_shape.to_vec())?;
        self.for_each_column_tile(x, &d, |cols, sample, p0, pt| {
            let call = plan::conv_weight_gemm(&d, c_out, sample, p0, pt);
            self.exec.gemm(&call, cols, &gy.buffer, &mut dw)
        })?;
        Ok(GpuTensor::new(dw, shape))
    }

    fn linear_weight_gradient(&self, x: &Self::Tensor, gy: &Self::Tensor) -> Result<Self::Tensor> {
        let (n, d_in, d_out) = operands::linear_weight_gradient(&x.shape, &gy.shape)?;
        let (mut dw, shape) = self.tensor(d_out * d_in, vec![d_out, d_in])?;
        if n > 0 {
            self.exec.gemm(
                &plan::linear_weight_gemm(n, d_in, d_out),
                &x.buffer,
                &gy.buffer,
                &mut dw,
            )?;
        }
        Ok(GpuTensor::new(dw, shape))
    }

    fn sum_channels(&self, gy: &Self::Tensor) -> Result<Self::Tensor> {
        if gy.shape.len() < 2 {
            return Err(vidlrp_core::Error::shape(format!(
                "sum_channels needs at least 2 axes, got shape {:?}",
                gy.shape
            )));
        }
        let (n, c) = (gy.shape[0], gy.shape[1]);
        let inner: usize = gy.shape[2..].iter().product();
        let (mut b, shape) = self.tensor(c, vec![c])?;
        if inner > 0 {
            let ones = self.exec.upload(&vec![1.0; inner])?;
            for sample in 0..n {
                self.exec.gemm(
                    &plan::channel_sum_gemm(c, inner, sample),
                    &gy.buffer,
                    &ones,
                    &mut b,
                )?;
            }
        }
        Ok(GpuTensor::new(b, shape))
    }
}

impl<E: Executor> GpuBackend<E> {
    /// Runs `f(cols, sample, p0, pt)` for every column tile `[p0, p0 + pt)` of every sample of
    /// `x`, with `cols` holding that tile's vol2col columns (`K x pt`, tiles bounded by
    /// `tile_floats`).
    fn for_each_column_tile(
        &self,
        x: &GpuTensor<E::Buffer>,
        d: &ConvDims,
        mut f: impl FnMut(&E::Buffer, usize, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let tiles = plan::column_tiles(d.rows(), d.positions(), self.tile_floats);
        let mut cols = self
            .exec
            .zeros(d.rows() * tiles.first().map_or(0, |t| t.1))?;
        for sample in 0..x.shape[0] {
            for &(p0, pt) in &tiles {
                self.exec.launch(Kernel::Vol2Col {
                    x: &x.buffer,
                    x_offset: (sample * d.input_len()) as i64,
                    cols: &mut cols,
                    d: *d,
                    p0: p0 as i64,
                    pt: pt as i64,
                })?;
                f(&cols, sample, p0, pt)?;
            }
        }
        Ok(())
    }

    /// `vidlrp_pool`: mode 0 max, mode 1 sum.
    fn pool(
        &self,
        x: &GpuTensor<E::Buffer>,
        g: &Pool3dGeometry,
        mode: i32,
    ) -> Result<GpuTensor<E::Buffer>> {
        let d = pool_dims(&x.shape, g)?;
        let planes = x.shape[0] * x.shape[1];
        let [to, ho, wo] = d.output.map(|v| v as usize);
        let (mut y, shape) = self.tensor(
            planes * d.output_len(),
            vec![x.shape[0], x.shape[1], to, ho, wo],
        )?;
        self.exec.launch(Kernel::Pool {
            x: &x.buffer,
            y: &mut y,
            planes: planes as i64,
            d,
            mode,
        })?;
        Ok(GpuTensor::new(y, shape))
    }

    /// `vidlrp_pool_transposed`: mode 0 routes to the first maximum of `x`, mode 1 to all.
    fn pool_transposed(
        &self,
        x: Option<&GpuTensor<E::Buffer>>,
        gy: &GpuTensor<E::Buffer>,
        g: &Pool3dGeometry,
        input_shape: &[usize],
        mode: i32,
    ) -> Result<GpuTensor<E::Buffer>> {
        let d = pool_dims(input_shape, g)?;
        operands::pool3d_gradient(input_shape, &gy.shape, d.output.map(|v| v as usize))?;
        let planes = input_shape[0] * input_shape[1];
        let (mut y, shape) = self.tensor(planes * d.input_len(), input_shape.to_vec())?;
        self.exec.launch(Kernel::PoolTransposed {
            x: x.map_or(&gy.buffer, |x| &x.buffer),
            g: &gy.buffer,
            y: &mut y,
            planes: planes as i64,
            d,
            mode,
        })?;
        Ok(GpuTensor::new(y, shape))
    }
}
