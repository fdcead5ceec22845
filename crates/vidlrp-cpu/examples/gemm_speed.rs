use std::time::Instant;
use vidlrp_cpu::sgemm::{gemm, Output, RowMajor};
fn main() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for &(m, k, n) in &[
        (128usize, 1728usize, 50176usize),
        (256, 6912, 6272),
        (512, 13824, 784),
        (512, 13824, 98),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        for rep in 0..3 {
            let t = Instant::now();
            pool.install(|| {
                gemm(
                    m,
                    n,
                    k,
                    &a,
                    &RowMajor { data: &b, ld: n },
                    Output {
                        data: &mut c,
                        ldc: n,
                    },
                    false,
                )
            });
            let s = t.elapsed().as_secs_f64();
            let t2 = Instant::now();
            pool.install(|| {
                // matrixmultiply, split in two column halves like the backend does
                let half = (n / 2) / 16 * 16;
                let (c1, c2) = c.split_at_mut(0);
                let _ = (c1, c2);
                let cp = c.as_mut_ptr() as usize;
                rayon::join(
                    || unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            half,
                            1.0,
                            a.as_ptr(),
                            k as isize,
                            1,
                            b.as_ptr(),
                            n as isize,
                            1,
                            0.0,
                            cp as *mut f32,
                            n as isize,
                            1,
                        )
                    },
                    || unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n - half,
                            1.0,
                            a.as_ptr(),
                            k as isize,
                            1,
                            b.as_ptr().add(half),
                            n as isize,
                            1,
                            0.0,
                            (cp as *mut f32).add(half),
                            n as isize,
                            1,
                        )
                    },
                );
            });
            let s2 = t2.elapsed().as_secs_f64();
            if rep == 2 {
                println!(
                    "{m}x{k}x{n}: ours {:.1} GFLOP/s, matrixmultiply {:.1} GFLOP/s",
                    flops / s / 1e9,
                    flops / s2 / 1e9
                );
            }
        }
    }
}
