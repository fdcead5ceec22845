//! Window geometry of 3-d convolutions and poolings: output sizes and the input range each output
//! position covers.
//!
//! # Shapes
//! Spatial extents are `[T, H, W]` (frames, rows, columns).

use crate::{Error, Result};

/// Stride and zero padding of a 3-d convolution; the kernel size comes from the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv3dGeometry {
    /// Kernel extent `[kT, kH, kW]`.
    pub kernel: [usize; 3],
    /// Step between neighbouring windows.
    pub stride: [usize; 3],
    /// Zeros added on both sides of each axis.
    pub padding: [usize; 3],
}

impl Conv3dGeometry {
    /// Output extent: `out = floor((in + 2 p - k) / s) + 1` per axis.
    ///
    /// **Errors** if the kernel does not fit into the padded input or a stride is 0.
    pub fn output_extent(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        let mut out = [0; 3];
        for a in 0..3 {
            let (k, s, p) = (self.kernel[a], self.stride[a], self.padding[a]);
            if s == 0 || k == 0 {
                return Err(Error::shape(
                    "convolution kernel and stride must be positive",
                ));
            }
            let padded = input[a] + 2 * p;
            if padded < k {
                return Err(Error::shape(format!(
                    "convolution kernel {:?} does not fit into input {:?} padded by {:?}",
                    self.kernel, input, self.padding
                )));
            }
            out[a] = (padded - k) / s + 1;
        }
        Ok(out)
    }
}

/// Kernel, stride, padding and rounding of a 3-d pooling window.
///
/// Padded positions are never part of a pool (max pooling pads with `-inf`, sum pooling with
/// nothing), so a window that reaches past the input is clipped to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool3dGeometry {
    /// Window extent `[kT, kH, kW]`.
    pub kernel: [usize; 3],
    /// Step between windows.
    pub stride: [usize; 3],
    /// Implicit padding on both sides.
    pub padding: [usize; 3],
    /// Round the output extent up (Caffe) instead of down (PyTorch default).
    pub ceil_mode: bool,
}

impl Pool3dGeometry {
    /// Output extent per axis:
    ///
    /// ```text
    /// out = floor((in + 2 p - k) / s) + 1            (floor mode)
    /// out = ceil((in + 2 p - k) / s) + 1             (ceil mode, Caffe and PyTorch)
    ///       minus 1 if the last window would start at or past in + p
    /// ```
    ///
    /// **Errors** if a window does not fit, a stride is 0, or padding exceeds half the kernel.
    pub fn output_extent(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        let mut out = [0; 3];
        for a in 0..3 {
            let (k, s, p) = (self.kernel[a], self.stride[a], self.padding[a]);
            if s == 0 || k == 0 {
                return Err(Error::shape("pooling kernel and stride must be positive"));
            }
            if 2 * p > k {
                return Err(Error::shape(format!(
                    "pooling padding {:?} exceeds half of kernel {:?}",
                    self.padding, self.kernel
                )));
            }
            let padded = input[a] + 2 * p;
            if padded < k || input[a] == 0 {
                return Err(Error::shape(format!(
                    "pooling window {:?} does not fit into input {:?} padded by {:?}",
                    self.kernel, input, self.padding
                )));
            }
            let span = padded - k;
            let mut n = if self.ceil_mode {
                span.div_ceil(s) + 1
            } else {
                span / s + 1
            };
            if self.ceil_mode && (n - 1) * s >= input[a] + p {
                n -= 1;
            }
            out[a] = n;
        }
        Ok(out)
    }

    /// The input range `[start, end)` along axis `a` covered by output position `o`, clipped to
    /// the input `0..len`.
    pub fn window(&self, a: usize, o: usize, len: usize) -> (usize, usize) {
        let start = (o * self.stride[a]) as isize - self.padding[a] as isize;
        let end = start + self.kernel[a] as isize;
        (start.max(0) as usize, (end.max(0) as usize).min(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c3d_pool5_variants_both_give_4x4() {
        let port = Pool3dGeometry {
            kernel: [2, 2, 2],
            stride: [2, 2, 2],
            padding: [0, 1, 1],
            ceil_mode: false,
        };
        let caffe = Pool3dGeometry {
            padding: [0, 0, 0],
            ceil_mode: true,
            ..port
        };
        assert_eq!(port.output_extent([2, 7, 7]).unwrap(), [1, 4, 4]);
        assert_eq!(caffe.output_extent([2, 7, 7]).unwrap(), [1, 4, 4]);
        // Port windows start one row early, Caffe's last window is clipped to one row.
        assert_eq!(port.window(1, 0, 7), (0, 1));
        assert_eq!(caffe.window(1, 3, 7), (6, 7));
    }

    #[test]
    fn conv_output_extent() {
        let g = Conv3dGeometry {
            kernel: [3, 3, 3],
            stride: [1, 1, 1],
            padding: [1, 1, 1],
        };
        assert_eq!(g.output_extent([16, 112, 112]).unwrap(), [16, 112, 112]);
        let g = Conv3dGeometry {
            kernel: [3, 3, 3],
            stride: [2, 2, 1],
            padding: [0, 0, 0],
        };
        assert_eq!(g.output_extent([7, 5, 3]).unwrap(), [3, 2, 1]);
        assert!(g.output_extent([2, 5, 3]).is_err());
    }
}
