//! A 3D CNN that is not C3D, explained with DTD and sensitivity analysis on the CPU.
//!
//! Built from the public layers of `vidlrp-core` (other kernel sizes, strides and pooling than
//! C3D's) plus one layer defined here, `Dropout`, which plays the part of an activation
//! (`Role::Activation`). Run it with
//!
//! ```sh
//! cargo run --release -p vidlrp-cpu --example custom_network
//! ```
//!
//! It prints the prediction, the relevance per frame, and checks that DTD conserves relevance:
//! `sum_i R_i = f_c(x)` up to the stabiliser.

use vidlrp_core::{
    Backend, Composite, Conv3d, Flatten, HostTensor, Layer, LayerKind, Linear, MaxPool3d,
    Pool3dGeometry, Relu, Result, Role, Rule, Sequential, Target,
};
use vidlrp_cpu::Cpu;

/// Dropout at evaluation time: the identity. Relevance and gradients pass unchanged.
struct Dropout;

impl<B: Backend> Layer<B> for Dropout {
    fn name(&self) -> &str {
        "dropout"
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Custom {
            name: "dropout",
            role: Role::Activation,
        }
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, _be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        Ok(x.clone())
    }
    fn relevance(&self, _be: &B, _x: &B::Tensor, r: &B::Tensor, rule: &Rule) -> Result<B::Tensor> {
        // The composite gives activations `Pass` (LRP) or `Gradient` (SA): both are the identity.
        debug_assert!(matches!(rule, Rule::Pass | Rule::Gradient));
        Ok(r.clone())
    }
}

fn tensor(shape: &[usize], seed: u64, lo: f32, hi: f32) -> HostTensor {
    HostTensor::new(
        shape.to_vec(),
        vidlrp_rng::uniform_values(shape.iter().product(), seed, lo, hi),
    )
    .unwrap()
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let be = Cpu::new(0)?;
    // conv 3 -> 8, kernel 3x5x5, stride 1x2x2, padding 1x2x2; pool 2x3x3 stride 2; conv 8 -> 16,
    // kernel 2x3x3, no padding; dense 16*T*H*W -> 5 classes. Negative biases (as trained
    // networks mostly have) keep every z+ denominator positive where relevance arrives.
    let mut net = Sequential::new(Vec::new());
    let w1 = tensor(&[8, 3, 3, 5, 5], 1, -0.2, 0.25);
    net.push(Conv3d::new(
        &be,
        "conv1",
        &w1,
        Some(&tensor(&[8], 2, -0.1, 0.0)),
        [1, 2, 2],
        [1, 2, 2],
    )?);
    net.push(Relu::new("relu1"));
    net.push(MaxPool3d::new(
        "pool1",
        Pool3dGeometry {
            kernel: [2, 3, 3],
            stride: [2, 2, 2],
            padding: [0, 1, 1],
            ceil_mode: false,
        },
    ));
    let w2 = tensor(&[16, 8, 2, 3, 3], 3, -0.15, 0.2);
    net.push(Conv3d::new(
        &be,
        "conv2",
        &w2,
        Some(&tensor(&[16], 4, -0.1, 0.0)),
        [1, 1, 1],
        [0, 0, 0],
    )?);
    net.push(Relu::new("relu2"));
    net.push(Dropout);
    net.push(Flatten::new("flatten"));
    let input = [1, 3, 8, 32, 32];
    let flat = net.shapes(&input)?[7][1];
    net.push(Linear::new(
        &be,
        "fc",
        &tensor(&[5, flat], 5, -0.1, 0.12),
        None,
    )?);
    println!("layers: {:?}", net.shapes(&input)?);

    // A clip in [0, 1]: DTD's first layer uses the z^B box [0, 1].
    let x = be.upload(&tensor(&input, 6, 0.0, 1.0))?;
    let dtd = net.explain(
        &be,
        &x,
        &Target::TopOne,
        &Composite::dtd(vec![0.0], vec![1.0]),
    )?;
    let sa = net.explain(&be, &x, &Target::TopOne, &Composite::sensitivity())?;
    println!("class {} with logit {:.4}", dtd.classes[0], dtd.scores[0]);
    for (name, e) in [("DTD", &dtd), ("SA", &sa)] {
        let frames = frame_sums(&e.relevance);
        println!("{name} relevance per frame: {frames:.4?}");
    }
    for l in &dtd.layers {
        println!(
            "  {:8} {:14} sum R = {:.6}",
            l.layer, l.rule, l.input_sum[0]
        );
    }
    let ratio = dtd.conservation()[0];
    println!("DTD: sum R / f_c(x) = {ratio:.8}");
    if !(ratio > 1.0 - 1e-3 && ratio <= 1.0 + 1e-6) {
        return Err(format!("DTD did not conserve relevance: {ratio}").into());
    }
    if sa
        .relevance
        .data()
        .iter()
        .any(|v| !v.is_finite() || *v < 0.0)
    {
        return Err("SA must be a finite squared gradient".into());
    }
    println!("ok");
    Ok(())
}

/// Relevance summed per frame of a `[1, C, T, H, W]` map.
fn frame_sums(r: &HostTensor) -> Vec<f32> {
    let s = r.shape();
    let (c, t, plane) = (s[1], s[2], s[3] * s[4]);
    (0..t)
        .map(|ti| {
            (0..c)
                .map(|ci| {
                    r.data()[(ci * t + ti) * plane..][..plane]
                        .iter()
                        .sum::<f32>()
                })
                .sum()
        })
        .collect()
}
