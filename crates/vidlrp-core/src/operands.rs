//! The operand-shape checks of the [`Backend`](crate::Backend) ops, written once so every
//! backend rejects the same inputs with the same words.

use crate::{Conv3dGeometry, Error, Pool3dGeometry, Result};

/// **Errors** unless `shape` has `rank` axes.
pub fn rank(what: &str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() != rank {
        return Err(Error::shape(format!(
            "{what} must be {rank}-d, got shape {shape:?}"
        )));
    }
    Ok(())
}

/// The `[T, H, W]` extent of a volume `[N, C, T, H, W]`.
pub fn extent(shape: &[usize]) -> [usize; 3] {
    [shape[2], shape[3], shape[4]]
}

/// Checks `x` `[N, C_in, T, H, W]` against `w` `[C_out, C_in, kT, kH, kW]` and the geometry's
/// kernel; returns the output extent `[T', H', W']`.
pub fn conv3d(x: &[usize], w: &[usize], g: &Conv3dGeometry) -> Result<[usize; 3]> {
    rank("conv3d input", x, 5)?;
    rank("conv3d weight", w, 5)?;
    if x[1] != w[1] || g.kernel != [w[2], w[3], w[4]] {
        return Err(Error::shape(format!(
            "conv3d: input {x:?} does not fit weight {w:?}"
        )));
    }
    if x[1] == 0 || w[0] == 0 {
        return Err(Error::shape(format!(
            "conv3d: input {x:?} and weight {w:?} need at least one input and one output channel"
        )));
    }
    g.output_extent(extent(x))
}

/// Checks the gradient `gy` of a transposed convolution: `[N, C_out, T', H', W']` for an input
/// shaped `input` (`output` from [`conv3d`]).
pub fn conv3d_gradient(
    input: &[usize],
    w: &[usize],
    gy: &[usize],
    output: [usize; 3],
) -> Result<()> {
    let (n, c_out) = (input[0], w[0]);
    let [to, ho, wo] = output;
    if gy != [n, c_out, to, ho, wo] {
        return Err(Error::shape(format!(
            "conv3d transposed: gradient {gy:?} does not match output [{n}, {c_out}, {to}, {ho}, {wo}]"
        )));
    }
    Ok(())
}

/// Checks the operands of a convolution's weight gradient: `x` `[N, C_in, T, H, W]`, the
/// weight shape `[C_out, C_in, kT, kH, kW]` and `g` `[N, C_out, T', H', W']`.
pub fn conv3d_weight_gradient(
    x: &[usize],
    g: &[usize],
    weight: &[usize],
    geometry: &Conv3dGeometry,
) -> Result<[usize; 3]> {
    rank("conv3d weight-gradient output gradient", g, 5)?;
    let output = conv3d(x, weight, geometry)?;
    conv3d_gradient(x, weight, g, output)?;
    Ok(output)
}

/// Checks the operands of a dense layer's weight gradient: `x` `[N, D_in]`, `g` `[N, D_out]`;
/// returns `(N, D_in, D_out)`.
pub fn linear_weight_gradient(x: &[usize], g: &[usize]) -> Result<(usize, usize, usize)> {
    rank("linear input", x, 2)?;
    rank("linear gradient", g, 2)?;
    if x[0] != g[0] {
        return Err(Error::shape(format!(
            "linear weight gradient: input {x:?} and gradient {g:?} differ in batch size"
        )));
    }
    Ok((x[0], x[1], g[1]))
}

/// Checks `x` `[N, D_in]` against `w` `[D_out, D_in]`; returns `(N, D_in, D_out)`.
pub fn linear(x: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    rank("linear input", x, 2)?;
    rank("linear weight", w, 2)?;
    if w[1] != x[1] {
        return Err(Error::shape(format!(
            "linear: input {x:?} does not fit weight {w:?}"
        )));
    }
    Ok((x[0], x[1], w[0]))
}

/// Checks `g` `[N, D_out]` against `w` `[D_out, D_in]`; returns `(N, D_out, D_in)`.
pub fn linear_gradient(g: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    rank("linear gradient", g, 2)?;
    rank("linear weight", w, 2)?;
    if g[1] != w[0] {
        return Err(Error::shape(format!(
            "linear transposed: gradient {g:?} does not fit weight {w:?}"
        )));
    }
    Ok((g[0], w[0], w[1]))
}

/// **Errors** unless `bias` is absent or shaped `[outputs]`.
pub fn bias(what: &str, bias: Option<&[usize]>, outputs: usize) -> Result<()> {
    match bias {
        Some(b) if b != [outputs] => Err(Error::shape(format!(
            "{what} bias {b:?} for {outputs} outputs"
        ))),
        _ => Ok(()),
    }
}

/// Checks a pooling input `[N, C, T, H, W]`; returns the output extent.
pub fn pool3d(x: &[usize], g: &Pool3dGeometry) -> Result<[usize; 3]> {
    rank("pool3d input", x, 5)?;
    g.output_extent(extent(x))
}

/// Checks a pooling gradient: `[N, C, T', H', W']` for input `x` (`output` from [`pool3d`]).
pub fn pool3d_gradient(x: &[usize], gy: &[usize], output: [usize; 3]) -> Result<()> {
    let [to, ho, wo] = output;
    if gy != [x[0], x[1], to, ho, wo] {
        return Err(Error::shape(format!(
            "pooling gradient {gy:?} does not match output [{}, {}, {to}, {ho}, {wo}]",
            x[0], x[1]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_convolution_without_channels_is_a_shape_error() {
        let g = Conv3dGeometry {
            kernel: [3; 3],
            stride: [1; 3],
            padding: [1; 3],
        };
        for (x, w) in [
            ([1, 0, 4, 4, 4], [2, 0, 3, 3, 3]),
            ([1, 3, 4, 4, 4], [0, 3, 3, 3, 3]),
        ] {
            let err = conv3d(&x, &w, &g).unwrap_err();
            assert!(err
                .to_string()
                .contains("at least one input and one output channel"));
        }
        assert_eq!(
            conv3d(&[1, 3, 4, 4, 4], &[2, 3, 3, 3, 3], &g).unwrap(),
            [4, 4, 4]
        );
    }
}
