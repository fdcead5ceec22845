//! A convolution and the ReLU after it run as one op (`Backend::conv3d_relu`, offered by
//! `Conv3d::forward_relu` and used by `Sequential`) compute what the two ops compute one after
//! the other, bit for bit: the op on every CPU path (direct, Winograd, im2col, constant planes),
//! and whole networks' forward passes and explanations under every method.

use vidlrp_core::{
    Affine, Backend, Conv3d, Conv3dGeometry, Flatten, HostTensor, Layer, LayerKind, Linear,
    MaxPool3d, Pool3dGeometry, Relu, Result, Rule, Sequential, Target, UnaryOp,
};
use vidlrp_cpu::Cpu;
use vidlrp_rng::uniform_values;

fn bits(t: &HostTensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

/// Values in `[-1, 1)` with zeros of both signs among them.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut v = uniform_values(n, seed, -1.0, 1.0);
    for (i, x) in v.iter_mut().enumerate() {
        match i % 13 {
            0 => *x = 0.0,
            1 => *x = -0.0,
            _ => {}
        }
    }
    v
}

#[test]
fn conv3d_relu_is_conv3d_then_positive_on_every_path() {
    let be = Cpu::new(2).unwrap();
    // (n, c_in, c_out, input, kernel, stride, padding, constant planes): the direct forward
    // path (1-8 input channels), Winograd (3x3x3, 16+ channels, 256+ positions), im2col
    // (strided, many channels), constant input planes (z^B's bound images).
    let cases = [
        (2, 3, 8, [4, 12, 48], [3, 3, 3], [1; 3], [1; 3], false),
        (1, 8, 16, [4, 10, 24], [3, 3, 3], [1; 3], [1; 3], false),
        (2, 16, 16, [4, 12, 12], [3, 3, 3], [1; 3], [1; 3], false),
        (2, 12, 20, [3, 9, 9], [3, 3, 3], [2, 2, 2], [1; 3], false),
        (1, 32, 8, [2, 5, 5], [1, 1, 1], [1; 3], [0; 3], false),
        (2, 3, 8, [4, 12, 20], [3, 3, 3], [1; 3], [1; 3], true),
    ];
    for (i, &(n, c_in, c_out, input, kernel, stride, padding, constant)) in cases.iter().enumerate()
    {
        let seed = i as u64 * 7;
        let shape = [n, c_in, input[0], input[1], input[2]];
        let plane: usize = input.iter().product();
        let data = if constant {
            let per_channel = values(n * c_in, seed);
            (0..n * c_in * plane)
                .map(|j| per_channel[j / plane])
                .collect()
        } else {
            values(n * c_in * plane, seed)
        };
        let x = be
            .upload(&HostTensor::new(shape.to_vec(), data).unwrap())
            .unwrap();
        let kvol: usize = kernel.iter().product();
        let w = HostTensor::new(
            vec![c_out, c_in, kernel[0], kernel[1], kernel[2]],
            values(c_out * c_in * kvol, seed + 1),
        )
        .unwrap();
        let w = be.upload(&w).unwrap();
        let b = be
            .upload(&HostTensor::new(vec![c_out], values(c_out, seed + 2)).unwrap())
            .unwrap();
        let g = Conv3dGeometry {
            kernel,
            stride,
            padding,
        };
        for bias in [None, Some(&b)] {
            let y = be.conv3d(&x, &w, bias, &g).unwrap();
            let want = be
                .download(&be.unary(&y, UnaryOp::Positive).unwrap())
                .unwrap();
            let got = be
                .download(&be.conv3d_relu(&x, &w, bias, &g).unwrap())
                .unwrap();
            assert_eq!(bits(&got), bits(&want), "case {i}, bias {}", bias.is_some());
            assert!(want.data().contains(&0.0) && want.data().iter().any(|&v| v > 0.0));
        }
    }
}

/// A convolution that does not offer its ReLU: the network runs the two layers one by one.
struct Unfused(Conv3d<Cpu>);

impl Layer<Cpu> for Unfused {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> LayerKind {
        self.0.kind()
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.0.output_shape(input)
    }
    fn forward(&self, be: &Cpu, x: &vidlrp_cpu::CpuTensor) -> Result<vidlrp_cpu::CpuTensor> {
        self.0.forward(be, x)
    }
    fn relevance(
        &self,
        be: &Cpu,
        x: &vidlrp_cpu::CpuTensor,
        r: &vidlrp_cpu::CpuTensor,
        rule: &Rule,
    ) -> Result<vidlrp_cpu::CpuTensor> {
        self.0.relevance(be, x, r, rule)
    }
    fn num_params(&self) -> usize {
        self.0.num_params()
    }
    fn affine(&self) -> Option<&dyn Affine<Cpu>> {
        self.0.affine()
    }
}

/// conv-relu-pool, conv-relu, conv-relu-pool (the direct and the Winograd forward paths),
/// then a dense layer onto 10 classes; `fuse`: the convolutions as they are, else wrapped.
fn network(be: &Cpu, fuse: bool) -> Sequential<Cpu> {
    let mut layers: Vec<Box<dyn Layer<Cpu>>> = Vec::new();
    let pool = |k: usize| Pool3dGeometry {
        kernel: [k, 2, 2],
        stride: [k, 2, 2],
        padding: [0; 3],
        ceil_mode: false,
    };
    for (i, (c_in, c_out, pooled)) in [(3, 8, Some(1)), (8, 16, None), (16, 16, Some(2))]
        .into_iter()
        .enumerate()
    {
        let seed = 100 + i as u64;
        let w = HostTensor::new(
            vec![c_out, c_in, 3, 3, 3],
            uniform_values(c_out * c_in * 27, seed, -0.3, 0.3),
        )
        .unwrap();
        let b = HostTensor::new(vec![c_out], uniform_values(c_out, seed + 50, -0.1, 0.1)).unwrap();
        let conv = Conv3d::new(be, format!("conv{i}"), &w, Some(&b), [1; 3], [1; 3]).unwrap();
        if fuse {
            layers.push(Box::new(conv));
        } else {
            layers.push(Box::new(Unfused(conv)));
        }
        layers.push(Box::new(Relu::new(format!("relu{i}"))));
        if let Some(k) = pooled {
            layers.push(Box::new(MaxPool3d::new(format!("pool{i}"), pool(k))));
        }
    }
    layers.push(Box::new(Flatten::new("flatten")));
    let w = HostTensor::new(
        vec![10, 16 * 2 * 6 * 6],
        uniform_values(10 * 1152, 9, -0.1, 0.1),
    );
    let b = HostTensor::new(vec![10], uniform_values(10, 10, 0.5, 1.0)).unwrap();
    layers.push(Box::new(
        Linear::new(be, "fc", &w.unwrap(), Some(&b)).unwrap(),
    ));
    Sequential::new(layers)
}

#[test]
fn networks_with_fused_relus_give_the_same_bits() {
    let be = Cpu::new(2).unwrap();
    let (fused, unfused) = (network(&be, true), network(&be, false));
    let x = HostTensor::new(
        vec![2, 3, 4, 24, 24],
        uniform_values(2 * 3 * 4 * 576, 3, 0.0, 1.0),
    )
    .unwrap();
    let x = be.upload(&x).unwrap();
    let logits = |net: &Sequential<Cpu>| be.download(&net.forward(&be, &x).unwrap()).unwrap();
    assert_eq!(bits(&logits(&fused)), bits(&logits(&unfused)), "forward");
    let methods = vidlrp_conformance::agreement::methods(&[0.0; 3], &[1.0; 3]);
    let mut explained = 0;
    for (name, composite) in &methods {
        let a = fused.explain(&be, &x, &Target::TopOne, composite);
        let b = unfused.explain(&be, &x, &Target::TopOne, composite);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(bits(&a.relevance), bits(&b.relevance), "{name}");
                assert_eq!(bits(&a.logits), bits(&b.logits), "{name}");
                assert_eq!(a.input_sums, b.input_sums, "{name}");
                explained += 1;
            }
            (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "{name}"),
            (a, b) => panic!("{name}: {:?} against {:?}", a.err(), b.err()),
        }
    }
    assert!(
        explained >= methods.len() - 1,
        "{explained} of {}",
        methods.len()
    );
}
