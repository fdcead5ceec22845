//! [`CpuTensor`]: the CPU backend's tensor.

use std::ptr::NonNull;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use vidlrp_core::{Error, Result};

/// The CPU backend's tensor: `f32` values in standard (row-major, contiguous) layout and their
/// shape.
///
/// The values are the tensor's own, or borrowed read-only from a foreign owner that the tensor
/// keeps alive ([`CpuTensor::from_foreign`]: a caller's array read in place, such as a NumPy
/// array). Cloning shares the values; [`CpuTensor::make_mut`] copies them first where they are
/// shared or borrowed, so a tensor never changes under another.
///
/// ```
/// use ndarray::{arr2, ArrayD};
/// use vidlrp_cpu::CpuTensor;
///
/// let t = CpuTensor::from(arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_dyn());
/// assert_eq!(t.shape(), &[2, 2]);
/// assert_eq!(t.view()[[1, 0]], 3.0);
/// // Any memory layout converts to row-major order: the transpose reads 1, 3, 2, 4.
/// let f = CpuTensor::from(arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).reversed_axes().into_dyn());
/// assert_eq!(f.as_slice(), &[1.0, 3.0, 2.0, 4.0]);
/// ```
#[derive(Clone)]
pub struct CpuTensor {
    shape: Vec<usize>,
    data: Data,
}

#[derive(Clone)]
enum Data {
    Owned(Arc<Vec<f32>>),
    /// `len` values at `ptr`, readable and unchanged while `_owner` lives
    /// ([`CpuTensor::from_foreign`]'s contract).
    Foreign {
        ptr: NonNull<f32>,
        len: usize,
        _owner: Arc<dyn Send + Sync>,
    },
}

impl Data {
    fn as_slice(&self) -> &[f32] {
        match self {
            Data::Owned(v) => v,
            // SAFETY: `from_foreign`'s contract: `len` readable values while the owner lives.
            Data::Foreign { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }
}

// SAFETY: `Owned` is a `Send + Sync` type; `Foreign` values are only read, and the contract of
// `from_foreign` makes them valid and unchanged, from any thread, while the owner (itself
// `Send + Sync`) lives.
unsafe impl Send for Data {}
// SAFETY: as for `Send`: shared access only reads.
unsafe impl Sync for Data {}

impl CpuTensor {
    /// A tensor of `shape` owning `data` (row-major).
    ///
    /// **Errors** unless `data` holds `shape.iter().product()` values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        check_len(&shape, data.len())?;
        Ok(Self {
            shape,
            data: Data::Owned(Arc::new(data)),
        })
    }

    /// [`CpuTensor::new`] for lengths the caller computed from `shape`.
    pub(crate) fn owned(shape: &[usize], data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self {
            shape: shape.to_vec(),
            data: Data::Owned(Arc::new(data)),
        }
    }

    /// A tensor of `shape` reading `shape.iter().product()` values at `ptr` in place (row-major),
    /// keeping `owner` alive as long as the tensor or a clone of it lives.
    ///
    /// **Errors** if `ptr` is null or not aligned for `f32`.
    ///
    /// # Safety
    /// While `owner` lives, the values at `ptr` must stay allocated, readable from any thread,
    /// and unchanged (nothing may write them: the backend reads them concurrently).
    pub unsafe fn from_foreign(
        shape: Vec<usize>,
        ptr: *const f32,
        owner: Arc<dyn Send + Sync>,
    ) -> Result<Self> {
        let len = shape.iter().product();
        let ptr = NonNull::new(ptr.cast_mut())
            .filter(|p| p.as_ptr().is_aligned())
            .ok_or_else(|| Error::shape("a foreign tensor's address is null or misaligned"))?;
        Ok(Self {
            shape,
            data: Data::Foreign {
                ptr,
                len,
                _owner: owner,
            },
        })
    }

    /// The extent of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The same values (shared, not copied) under another shape of as many values.
    pub(crate) fn reshaped(&self, shape: &[usize]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), self.len());
        Self {
            shape: shape.to_vec(),
            data: self.data.clone(),
        }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values in row-major order.
    pub fn as_slice(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// An iterator over the values in row-major order.
    pub fn iter(&self) -> std::slice::Iter<'_, f32> {
        self.as_slice().iter()
    }

    /// The values for writing: the tensor's own buffer, made first where the values are shared
    /// with a clone or borrowed.
    pub fn make_mut(&mut self) -> &mut [f32] {
        if let Data::Foreign { .. } = self.data {
            self.data = Data::Owned(Arc::new(self.as_slice().to_vec()));
        }
        match &mut self.data {
            Data::Owned(v) => Arc::make_mut(v).as_mut_slice(),
            Data::Foreign { .. } => unreachable!("made owned above"),
        }
    }

    /// Whether the values are read in place from a foreign owner ([`CpuTensor::from_foreign`]).
    pub fn is_foreign(&self) -> bool {
        matches!(self.data, Data::Foreign { .. })
    }

    /// The tensor as an ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, f32> {
        ArrayViewD::from_shape(IxDyn(&self.shape), self.as_slice()).expect("length matches shape")
    }

    /// The tensor as an owned ndarray array (the values moved out where they are the tensor's
    /// alone, else copied).
    pub fn into_array(self) -> ArrayD<f32> {
        let values = match self.data {
            Data::Owned(v) => Arc::try_unwrap(v).unwrap_or_else(|v| v.to_vec()),
            foreign => foreign.as_slice().to_vec(),
        };
        ArrayD::from_shape_vec(IxDyn(&self.shape), values).expect("length matches shape")
    }
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let want: usize = shape.iter().product();
    if want == len {
        return Ok(());
    }
    Err(Error::shape(format!(
        "{len} values for a tensor of shape {shape:?} ({want} values)"
    )))
}

impl From<ArrayD<f32>> for CpuTensor {
    /// Takes the array's buffer where it is in standard layout, else copies it into one.
    fn from(a: ArrayD<f32>) -> Self {
        let shape = a.shape().to_vec();
        let a = if a.is_standard_layout() {
            a
        } else {
            a.as_standard_layout().into_owned()
        };
        let (values, offset) = a.into_raw_vec_and_offset();
        if offset.unwrap_or(0) == 0 && values.len() == shape.iter().product::<usize>() {
            return Self::owned(&shape, values);
        }
        // A standard-layout array over a part of its buffer (sliced, then made owned).
        let n = shape.iter().product::<usize>();
        let start = offset.unwrap_or(0);
        Self::owned(&shape, values[start..start + n].to_vec())
    }
}

impl From<&ArrayD<f32>> for CpuTensor {
    fn from(a: &ArrayD<f32>) -> Self {
        Self::owned(a.shape(), a.as_standard_layout().iter().copied().collect())
    }
}

impl From<CpuTensor> for ArrayD<f32> {
    fn from(t: CpuTensor) -> Self {
        t.into_array()
    }
}

impl PartialEq for CpuTensor {
    /// Same shape and equal values (`f32` equality: NaN differs from everything).
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for CpuTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.view(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_values_are_read_in_place_and_copied_before_writing() {
        let values: Arc<Vec<f32>> = Arc::new((0..6).map(|i| i as f32).collect());
        let ptr = values.as_ptr();
        // SAFETY: `values` is the owner; nothing writes it.
        let t = unsafe { CpuTensor::from_foreign(vec![2, 3], ptr, values.clone()) }.unwrap();
        assert!(t.is_foreign());
        assert_eq!(t.as_slice().as_ptr(), ptr);
        assert_eq!(t.view()[[1, 2]], 5.0);
        let mut u = t.clone();
        u.make_mut()[0] = 9.0;
        assert!(!u.is_foreign());
        assert_eq!(
            (t.as_slice()[0], u.as_slice()[0], values[0]),
            (0.0, 9.0, 0.0)
        );
        // The owner lives as long as the tensors: two here, one outside.
        assert_eq!(Arc::strong_count(&values), 2);
        drop(t);
        assert_eq!(Arc::strong_count(&values), 1);
    }

    #[test]
    fn clones_share_until_written() {
        let a = CpuTensor::new(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
        let mut b = a.clone();
        assert_eq!(a.as_slice().as_ptr(), b.as_slice().as_ptr());
        b.make_mut()[1] = 0.0;
        assert_eq!((a.as_slice()[1], b.as_slice()[1]), (2.0, 0.0));
        assert!(CpuTensor::new(vec![2, 2], vec![0.0; 3]).is_err());
    }

    #[test]
    fn null_or_misaligned_addresses_are_refused() {
        let owner: Arc<dyn Send + Sync> = Arc::new(());
        // SAFETY: refused before any read.
        assert!(
            unsafe { CpuTensor::from_foreign(vec![1], std::ptr::null(), owner.clone()) }.is_err()
        );
        let words = [0.0f32; 4];
        let odd = words.as_ptr().cast::<u8>().wrapping_add(1).cast::<f32>();
        // SAFETY: refused before any read.
        assert!(unsafe { CpuTensor::from_foreign(vec![1], odd, owner) }.is_err());
    }

    #[test]
    fn sliced_arrays_convert_to_their_values() {
        let a = ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let s = a.slice_move(ndarray::s![1..3]).into_dyn();
        assert_eq!(CpuTensor::from(s).as_slice(), &[2.0, 3.0]);
    }
}
