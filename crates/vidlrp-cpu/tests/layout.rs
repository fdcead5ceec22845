//! ndarray arrays in any memory layout (a library author may build them by hand) convert to CPU
//! tensors and host tensors holding their logical values, with the same results as their
//! standard-layout copies.

use ndarray::{ArrayD, IxDyn};
use vidlrp_core::{Backend, Conv3dGeometry, HostTensor, Pool3dGeometry, UnaryOp};
use vidlrp_cpu::{Cpu, CpuTensor};

fn ramp(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(
        IxDyn(shape),
        (0..n).map(|i| ((i * 37) % 23) as f32 - 11.0).collect(),
    )
    .unwrap()
}

/// `a` with the same logical values in Fortran (column-major) order.
fn fortran(a: &ArrayD<f32>) -> ArrayD<f32> {
    let rev = a.clone().reversed_axes().as_standard_layout().into_owned();
    let f = rev.reversed_axes();
    assert!(!f.is_standard_layout());
    assert_eq!(&f, a);
    f
}

/// `a` as a tensor (the conversion under test).
fn t(a: &ArrayD<f32>) -> CpuTensor {
    CpuTensor::from(a.clone())
}

#[test]
fn arrays_in_any_layout_convert_to_their_logical_values() {
    let x = ramp(&[1, 2, 4, 6, 5]);
    let want = t(&x);
    assert_eq!(want.view(), x.view());
    assert_eq!(t(&fortran(&x)), want);
    assert_eq!(CpuTensor::from(&fortran(&x)), want);
    assert_eq!(t(&fortran(&x)).into_array(), x);
    // An owned array sliced in place: its buffer starts past its first element.
    let mut part = ramp(&[2, 2, 4, 6, 5]);
    part.slice_axis_inplace(ndarray::Axis(0), ndarray::Slice::from(1..2));
    assert_eq!(t(&part).view(), part.view());
    assert_eq!(CpuTensor::from(part.clone()).view(), part.view());
    // Every second column: not contiguous.
    let mut strided = ramp(&[1, 2, 4, 6, 10]);
    strided.slice_axis_inplace(ndarray::Axis(4), ndarray::Slice::from(..).step_by(2));
    assert_eq!(CpuTensor::from(strided.clone()).view(), strided.view());
    assert_eq!(CpuTensor::from(&strided).view(), strided.view());
}

#[test]
fn ops_on_converted_arrays_equal_ops_on_standard_copies() {
    let be = Cpu::new(2).unwrap();
    let x = ramp(&[1, 2, 4, 6, 5]);
    let w = ramp(&[3, 2, 3, 3, 2]);
    let b = t(&ramp(&[3]));
    let g = Conv3dGeometry {
        kernel: [3, 3, 2],
        stride: [1, 2, 1],
        padding: [1, 1, 0],
    };
    let want = be.conv3d(&t(&x), &t(&w), Some(&b), &g).unwrap();
    assert_eq!(
        be.conv3d(&t(&fortran(&x)), &t(&fortran(&w)), Some(&b), &g)
            .unwrap(),
        want
    );
    let gy = ramp(want.shape());
    assert_eq!(
        be.conv3d_transposed(&t(&fortran(&gy)), &t(&fortran(&w)), &g, x.shape())
            .unwrap(),
        be.conv3d_transposed(&t(&gy), &t(&w), &g, x.shape())
            .unwrap()
    );
    let p = Pool3dGeometry {
        kernel: [2, 2, 2],
        stride: [2, 2, 2],
        padding: [0; 3],
        ceil_mode: true,
    };
    assert_eq!(
        be.max_pool3d(&t(&fortran(&x)), &p).unwrap(),
        be.max_pool3d(&t(&x), &p).unwrap()
    );
    assert_eq!(
        be.unary(&t(&fortran(&x)), UnaryOp::Square).unwrap(),
        be.unary(&t(&x), UnaryOp::Square).unwrap()
    );
    let xl = ramp(&[4, 7]);
    let wl = ramp(&[5, 7]);
    assert_eq!(
        be.linear(&t(&fortran(&xl)), &t(&fortran(&wl)), None)
            .unwrap(),
        be.linear(&t(&xl), &t(&wl), None).unwrap()
    );
    assert_eq!(
        be.download(&t(&fortran(&x))).unwrap(),
        HostTensor::from(x.clone())
    );
}

#[test]
fn host_tensors_convert_to_and_from_ndarray_in_any_layout() {
    let a = ramp(&[2, 3, 4]);
    let t = HostTensor::from(&fortran(&a));
    assert_eq!(t, HostTensor::from(a.clone()));
    assert_eq!(ArrayD::<f32>::from(t), a);
    // A standard-layout array whose buffer starts mid-way (sliced in place).
    let mut sliced = a.clone();
    sliced.slice_axis_inplace(ndarray::Axis(0), ndarray::Slice::from(1..2));
    assert!(sliced.is_standard_layout());
    let want: Vec<f32> = sliced.iter().copied().collect();
    let t = HostTensor::from(sliced);
    assert_eq!(t.shape(), &[1, 3, 4]);
    assert_eq!(t.data(), &want[..]);
}
