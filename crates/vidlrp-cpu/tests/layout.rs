//! Tensors in any memory layout are accepted (a library author may build them by hand), with
//! the same results as their standard-layout copies, and convert to and from `HostTensor`.

use ndarray::{ArrayD, IxDyn};
use vidlrp_core::{Backend, Conv3dGeometry, HostTensor, Pool3dGeometry, UnaryOp};
use vidlrp_cpu::Cpu;

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

#[test]
fn every_op_accepts_any_layout() {
    let be = Cpu::new(2).unwrap();
    let x = ramp(&[1, 2, 4, 6, 5]);
    let w = ramp(&[3, 2, 3, 3, 2]);
    let b = ramp(&[3]);
    let g = Conv3dGeometry {
        kernel: [3, 3, 2],
        stride: [1, 2, 1],
        padding: [1, 1, 0],
    };
    let want = be.conv3d(&x, &w, Some(&b), &g).unwrap();
    assert_eq!(
        be.conv3d(&fortran(&x), &fortran(&w), Some(&b), &g).unwrap(),
        want
    );
    let gy = ramp(want.shape());
    assert_eq!(
        be.conv3d_transposed(&fortran(&gy), &fortran(&w), &g, x.shape())
            .unwrap(),
        be.conv3d_transposed(&gy, &w, &g, x.shape()).unwrap()
    );
    let p = Pool3dGeometry {
        kernel: [2, 2, 2],
        stride: [2, 2, 2],
        padding: [0; 3],
        ceil_mode: true,
    };
    assert_eq!(
        be.max_pool3d(&fortran(&x), &p).unwrap(),
        be.max_pool3d(&x, &p).unwrap()
    );
    assert_eq!(
        be.sum_pool3d(&fortran(&x), &p).unwrap(),
        be.sum_pool3d(&x, &p).unwrap()
    );
    assert_eq!(
        be.unary(&fortran(&x), UnaryOp::Square).unwrap(),
        be.unary(&x, UnaryOp::Square).unwrap()
    );
    assert_eq!(
        be.sum_per_sample(&fortran(&x)).unwrap(),
        be.sum_per_sample(&x).unwrap()
    );
    let xl = ramp(&[4, 7]);
    let wl = ramp(&[5, 7]);
    assert_eq!(
        be.linear(&fortran(&xl), &fortran(&wl), None).unwrap(),
        be.linear(&xl, &wl, None).unwrap()
    );
    assert_eq!(be.download(&fortran(&x)).unwrap(), be.download(&x).unwrap());
    // An owned array sliced in place: its buffer starts past its first element.
    let mut part = ramp(&[2, 2, 4, 6, 5]);
    part.slice_axis_inplace(ndarray::Axis(0), ndarray::Slice::from(1..2));
    let copy = part.as_standard_layout().into_owned();
    assert_eq!(
        be.unary(&part, UnaryOp::Square).unwrap(),
        be.unary(&copy, UnaryOp::Square).unwrap()
    );
    // Every second column: not contiguous.
    let mut strided = ramp(&[1, 2, 4, 6, 10]);
    strided.slice_axis_inplace(ndarray::Axis(4), ndarray::Slice::from(..).step_by(2));
    let copy = strided.as_standard_layout().into_owned();
    assert_eq!(
        be.max_pool3d(&strided, &p).unwrap(),
        be.max_pool3d(&copy, &p).unwrap()
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
