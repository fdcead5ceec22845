//! [`HostTensor`]: a dense row-major `f32` tensor in host memory, the exchange format between
//! weight files, backends and outputs.

use crate::{Error, ErrorKind, Result};

/// A dense, row-major (C order) `f32` tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl HostTensor {
    /// Wraps `data` as a tensor of `shape`.
    ///
    /// **Errors** if `data.len()` is not the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(format!(
                "shape {shape:?} holds {n} values but {} were given",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self {
            shape,
            data: vec![0.0; n],
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable values in row-major order.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the tensor, returning shape and values.
    pub fn into_parts(self) -> (Vec<usize>, Vec<f32>) {
        (self.shape, self.data)
    }

    /// The same values under another shape with the same number of elements.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Self::new(shape, self.data)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// **Errors** with [`ErrorKind::NonFinite`] naming `what` and the first offending position if
    /// any value is NaN or infinite.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            let bad = self.data.iter().filter(|v| !v.is_finite()).count();
            return Err(Error::new(
                ErrorKind::NonFinite,
                format!(
                    "{what} contains {bad} non-finite value(s) (first: {} at flat index {i})",
                    self.data[i]
                ),
            ));
        }
        Ok(())
    }
}
