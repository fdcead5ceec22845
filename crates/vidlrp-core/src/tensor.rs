//! [`HostTensor`]: a dense row-major `f32` tensor in host memory, the exchange format between
//! weight files, backends and outputs.

use crate::{Error, ErrorKind, Result};

/// A dense, row-major (C order) `f32` tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// The number of elements of `shape`, checked: shapes read from files can ask for more than a
/// `usize` holds, and an unchecked product wraps around in release builds.
///
/// ```
/// assert_eq!(vidlrp_core::checked_len(&[2, 3, 4]).unwrap(), 24);
/// assert!(vidlrp_core::checked_len(&[1 << 40, 1 << 40]).is_err());
/// ```
///
/// **Errors** if the product overflows `usize`.
pub fn checked_len(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            Error::shape(format!(
                "shape {shape:?} has more elements than this machine can address"
            ))
        })
}

impl HostTensor {
    /// Wraps `data` as a tensor of `shape`.
    ///
    /// **Errors** if `data.len()` is not the product of `shape` (or the product overflows).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n = checked_len(&shape)?;
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

    /// The tensors stacked along a new leading axis: `[N, ...]` from `N` tensors of one shape
    /// `[...]` (a batch of clips); `items` may hold the tensors or references to them.
    ///
    /// **Errors** with [`ErrorKind::Shape`] if `items` is empty or the shapes differ.
    ///
    /// ```
    /// use vidlrp_core::HostTensor;
    /// let a = HostTensor::new(vec![2], vec![1.0, 2.0]).unwrap();
    /// let b = HostTensor::new(vec![2], vec![3.0, 4.0]).unwrap();
    /// let s = HostTensor::stack(&[a, b]).unwrap();
    /// assert_eq!((s.shape(), s.data()), (&[2, 2][..], &[1.0, 2.0, 3.0, 4.0][..]));
    /// ```
    pub fn stack<T: std::borrow::Borrow<HostTensor>>(items: &[T]) -> Result<Self> {
        let first = items
            .first()
            .ok_or_else(|| Error::shape("cannot stack no tensors"))?
            .borrow();
        if let Some(t) = items.iter().map(T::borrow).find(|t| t.shape != first.shape) {
            return Err(Error::shape(format!(
                "cannot stack tensors of shapes {:?} and {:?}",
                first.shape, t.shape
            )));
        }
        let mut data = Vec::with_capacity(first.len() * items.len());
        for t in items {
            data.extend_from_slice(&t.borrow().data);
        }
        Self::new([&[items.len()], &first.shape[..]].concat(), data)
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

/// Conversions to and from `ndarray` (cargo feature `ndarray`).
///
/// ```
/// # #[cfg(feature = "ndarray")] {
/// use ndarray::{ArrayD, IxDyn, ShapeBuilder};
/// use vidlrp_core::HostTensor;
/// // Any layout is accepted: a column-major array is read in logical (row-major) order.
/// let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]).f(), vec![1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]).unwrap();
/// let t = HostTensor::from(&a);
/// assert_eq!(t.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// let back = ArrayD::<f32>::from(t);
/// assert_eq!(back, a);
/// # }
/// ```
#[cfg(feature = "ndarray")]
mod ndarray_conversions {
    use super::HostTensor;
    use ndarray::{ArrayBase, ArrayD, Data, IxDyn};

    impl<S: Data<Elem = f32>> From<&ArrayBase<S, IxDyn>> for HostTensor {
        /// Copies the values in logical row-major order, whatever the array's memory layout.
        fn from(a: &ArrayBase<S, IxDyn>) -> Self {
            let data = match a.as_slice() {
                Some(s) => s.to_vec(),
                None => a.iter().copied().collect(),
            };
            HostTensor {
                shape: a.shape().to_vec(),
                data,
            }
        }
    }

    impl From<ArrayD<f32>> for HostTensor {
        /// Takes the buffer as is if the array is in standard layout, else copies it.
        fn from(a: ArrayD<f32>) -> Self {
            if a.is_standard_layout() {
                let shape = a.shape().to_vec();
                let n = shape.iter().product::<usize>();
                let (mut data, offset) = a.into_raw_vec_and_offset();
                // Standard layout: the values are contiguous from the first element on.
                let start = offset.unwrap_or(0);
                if start != 0 || data.len() != n {
                    data = data[start..start + n].to_vec();
                }
                return HostTensor { shape, data };
            }
            HostTensor::from(&a)
        }
    }

    impl From<HostTensor> for ArrayD<f32> {
        fn from(t: HostTensor) -> Self {
            let (shape, data) = t.into_parts();
            ArrayD::from_shape_vec(IxDyn(&shape), data)
                .expect("a HostTensor's data has the product of its shape values")
        }
    }
}
