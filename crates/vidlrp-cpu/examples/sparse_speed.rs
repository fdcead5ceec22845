use std::time::Instant;
use vidlrp_core::{Backend, Conv3dGeometry, HostTensor};
fn main() {
    let be = vidlrp_cpu::Cpu::new(2).unwrap();
    let g = Conv3dGeometry {
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        padding: [1, 1, 1],
    };
    for &(ci, co, t, h) in &[
        (64usize, 128usize, 16usize, 56usize),
        (256, 256, 8, 28),
        (512, 512, 4, 14),
        (512, 512, 2, 7),
    ] {
        let w = HostTensor::new(
            vec![co, ci, 3, 3, 3],
            (0..co * ci * 27).map(|i| (i as f32 * 0.37).sin()).collect(),
        )
        .unwrap();
        let n = co * t * h * h;
        let gy = HostTensor::new(
            vec![1, co, t, h, h],
            (0..n)
                .map(|i| if i % 11 == 0 { (i as f32).cos() } else { 0.0 })
                .collect(),
        )
        .unwrap();
        let (w, gy) = (be.upload(&w).unwrap(), be.upload(&gy).unwrap());
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let s = Instant::now();
            let _ = be
                .conv3d_transposed(&gy, &w, &g, &[1, ci, t, h, h])
                .unwrap();
            best = best.min(s.elapsed().as_secs_f64());
        }
        println!("{ci}->{co} {t}x{h}x{h}: {best:.4} s");
    }
}
