//! The video ResNets against torchvision (fixtures/golden/video_resnets.py): logits of the
//! unfolded torchvision network, DTD of an independent PyTorch implementation, SA by autograd,
//! for r3d, mc3 and r2plus1d with random BN statistics; the folded network's logits against
//! torchvision's unfolded ones to 1e-10 in f64 where the folding is exact in f32; and the
//! architecture read from the names of torchvision's full-size models.

use std::path::PathBuf;

use vidlrp_core::{Backend, Composite, HostTensor, Target};
use vidlrp_video_resnet::{build, init_weights, TensorMap, VideoResNetSpec};

fn dir(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../fixtures/golden/video-resnets/{arch}"))
}

fn read(path: PathBuf) -> TensorMap {
    vidlrp_io::read_tensors(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `max |a - b| / max |b|`.
fn relative(a: &HostTensor, b: &HostTensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.data().iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
    let diff = a
        .data()
        .iter()
        .zip(b.data())
        .fold(0f64, |m, (x, y)| m.max(f64::from((x - y).abs())));
    diff / scale
}

fn meta(arch: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir(arch).join("meta.json")).expect("meta.json");
    serde_json::from_str(&text).expect("json")
}

/// Tolerance (`max |R - R_golden| / max |R_golden|`) of a backend computing in `f64`: the
/// reference backend met 1.2e-7 at most on all three networks (the goldens are stored in f32).
const TOL_F64: f64 = 1e-6;

/// Tolerance of a backend computing in `f32`. Measured: logits and most relevances within
/// 1e-6, but mc3's DTD 4.1e-4 on the plain f32 reference backend and 5.5e-4 on the CPU (the
/// residual sums split relevance into large shares of opposite sign that cancel, which
/// amplifies f32 rounding), and r2plus1d's SA 3.0e-4 on the CPU (a ReLU whose input is within
/// f32 rounding of 0 flips; torchvision's unfolded network differs from the folded one by the
/// same 3.0e-4, meta.json). The f64 run above is the exact check.
const TOL_F32: f64 = 1e-3;

fn check<B: Backend>(be: &B, arch: &str, tol: f64) {
    let d = dir(arch);
    let m = meta(arch);
    let x = vidlrp_io::read_npy(&d.join("input.npy")).expect("input");
    let s = x.shape().to_vec();
    let (net, spec) = build(
        be,
        read(d.join("model.safetensors")),
        [s[1], s[2], s[3], s[4]],
    )
    .unwrap_or_else(|e| panic!("{arch}: {e}"));
    assert_eq!(spec.arch(), format!("{arch}_12"));
    let golden = read(d.join("golden.npz"));
    let low: Vec<f32> = serde_json::from_value(m["low"].clone()).unwrap();
    let high: Vec<f32> = serde_json::from_value(m["high"].clone()).unwrap();
    let xt = be.upload(&x).unwrap();
    let class = m["class"].as_u64().unwrap() as usize;
    let dtd = net
        .explain(be, &xt, &Target::TopOne, &Composite::dtd(low, high))
        .unwrap_or_else(|e| panic!("{arch}: {e}"));
    assert_eq!(dtd.classes, vec![class], "{arch}: top class");
    let logits = relative(&dtd.logits, &golden["logits"]);
    assert!(
        logits <= tol,
        "{arch}: logits differ by {logits:e} (relative to the largest)"
    );
    let r = relative(&dtd.relevance, &golden["dtd"]);
    assert!(
        r <= tol,
        "{arch}: DTD differs from the PyTorch reference by {r:e}"
    );
    // The reported sums: the input's and every residual sum's.
    let sum = m["dtd_input_sum"].as_f64().unwrap();
    assert!(
        (dtd.input_sums[0] - sum).abs() <= 1e-4 * sum.abs(),
        "{arch}: sum R {} vs {sum}",
        dtd.input_sums[0]
    );
    assert!(dtd
        .layers
        .iter()
        .any(|l| l.kind == vidlrp_core::LayerKind::ResidualSum));
    let sa = net
        .explain(be, &xt, &Target::Class(class), &Composite::sensitivity())
        .unwrap();
    let r = relative(&sa.relevance, &golden["sa"]);
    assert!(r <= tol, "{arch}: SA differs from autograd by {r:e}");
}

#[test]
fn cpu_matches_torchvision_and_the_pytorch_dtd() {
    let be = vidlrp_cpu::Cpu::new(2).unwrap();
    for arch in ["r3d", "mc3", "r2plus1d"] {
        check(&be, arch, TOL_F32);
    }
}

#[test]
fn reference_backend_matches_torchvision_and_the_pytorch_dtd() {
    let be = vidlrp_reference::Reference::<f64>::new();
    for arch in ["r3d", "mc3", "r2plus1d"] {
        check(&be, arch, TOL_F64);
    }
    let be = vidlrp_reference::Reference::<f32>::new();
    for arch in ["r3d", "mc3", "r2plus1d"] {
        check(&be, arch, TOL_F32);
    }
}

/// BatchNorm folded into the convolutions (as every network is built) changes nothing but
/// rounding: with BN parameters under which the folded weights are exact in f32
/// (`fold-exact.safetensors`: scales that are powers of two up to 1e-12, dyadic shifts), the
/// reference backend's f64 logits of the folded network equal the float64 logits of
/// torchvision's unfolded network (`fold-exact.json`) to 1e-10 of the largest.
#[test]
fn folded_logits_equal_torchvisions_unfolded_ones_to_1e_10_in_f64() {
    let be = vidlrp_reference::Reference::<f64>::new();
    for arch in ["r3d", "mc3", "r2plus1d"] {
        let d = dir(arch);
        let mut weights = read(d.join("model.safetensors"));
        let bn = read(d.join("fold-exact.safetensors"));
        assert!(bn.len() >= 50, "{arch}: {} BN tensors", bn.len());
        for (name, t) in bn {
            assert!(
                weights.contains_key(&name),
                "{arch}: {name} is not in the model"
            );
            weights.insert(name, t);
        }
        let x = vidlrp_io::read_npy(&d.join("input.npy")).expect("input");
        let s = x.shape().to_vec();
        let (net, _) = build(&be, weights, [s[1], s[2], s[3], s[4]]).unwrap();
        let logits = net.forward(&be, &be.upload(&x).unwrap()).unwrap();
        let text = std::fs::read_to_string(d.join("fold-exact.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let want: Vec<f64> = serde_json::from_value(doc["logits"].clone()).unwrap();
        assert_eq!(logits.len(), want.len(), "{arch}");
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let worst = (logits.iter().zip(&want)).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "{arch}: folded vs unfolded logits {:e} of the largest",
            worst / scale
        );
        assert!(
            worst <= 1e-10 * scale,
            "{arch}: folded logits differ from torchvision's by {:e} of the largest",
            worst / scale
        );
    }
}

/// DTD on the video ResNets conserves relevance step by step in f64 on the reference backend:
/// every layer, and every residual sum (`sum R_a + sum R_b` against `sum_j R_j z_j /
/// stab(z_j)`), keeps what its rule's formula says to 1e-10 of the relevance it receives.
#[test]
fn dtd_conserves_layer_by_layer_and_at_every_residual_sum_to_1e_10_in_f64() {
    let be = vidlrp_reference::Reference::<f64>::new();
    for arch in ["r3d", "mc3", "r2plus1d"] {
        let d = dir(arch);
        let m = meta(arch);
        let x = vidlrp_io::read_npy(&d.join("input.npy")).expect("input");
        let s = x.shape().to_vec();
        let (net, _) = build(
            &be,
            read(d.join("model.safetensors")),
            [s[1], s[2], s[3], s[4]],
        )
        .unwrap();
        let low: Vec<f32> = serde_json::from_value(m["low"].clone()).unwrap();
        let high: Vec<f32> = serde_json::from_value(m["high"].clone()).unwrap();
        let steps = vidlrp_conformance::conservation::layerwise(
            &be,
            &net,
            &be.upload(&x).unwrap(),
            &Composite::dtd(low, high),
        )
        .unwrap_or_else(|e| panic!("{arch}: {e}"));
        let sums = steps
            .iter()
            .filter(|l| l.rule == "proportional (sum)")
            .count();
        assert!(sums >= 4, "{arch}: {sums} residual sums checked");
        assert!(steps.len() >= 20, "{arch}: {} steps checked", steps.len());
        for l in &steps {
            assert!(l.holds(), "{arch} / {l}");
        }
    }
}

#[test]
fn torchvision_full_size_architectures_are_recognised_with_their_parameter_counts() {
    for (name, params) in [
        ("r3d_18", 33_371_472),
        ("mc3_18", 11_695_440),
        ("r2plus1d_18", 31_505_325),
    ] {
        let spec = VideoResNetSpec::named(name, 400).unwrap();
        assert_eq!(spec.num_params(), params, "{name}");
        let w = init_weights(&spec, 3);
        let read = VideoResNetSpec::from_weights(&w).unwrap();
        assert_eq!(read, spec, "{name}");
        assert_eq!(read.arch(), name);
    }
}

#[test]
fn a_freshly_initialised_r2plus1d_18_runs_and_conserves_relevance_up_to_the_biases() {
    let be = vidlrp_cpu::Cpu::new(2).unwrap();
    let spec = VideoResNetSpec::r2plus1d_18(10);
    let (net, _) = build(&be, init_weights(&spec, 5), [3, 4, 16, 16]).unwrap();
    let x = HostTensor::new(
        vec![1, 3, 4, 16, 16],
        vidlrp_rng::uniform_values(3 * 4 * 16 * 16, 1, -1.5, 2.0),
    )
    .unwrap();
    let xt = be.upload(&x).unwrap();
    let e = net
        .explain(&be, &xt, &Target::TopOne, &Composite::sensitivity())
        .unwrap();
    assert!(e.relevance.data().iter().all(|v| v.is_finite()));
    // 1 stem + 8 blocks (3 shortcut convs) + fc = 2 + 8*4 + 3 + 1 convs/dense: rules for all.
    assert_eq!(
        net.leaves().iter().filter(|l| l.affine().is_some()).count(),
        2 + 32 + 3 + 1
    );
}

#[test]
fn wrong_names_and_shapes_are_clear_errors() {
    let spec = VideoResNetSpec::r3d_18(5);
    let mut w = init_weights(&spec, 1);
    w.remove("layer2.0.downsample.1.running_var");
    let e = VideoResNetSpec::from_weights(&w).unwrap_err().to_string();
    assert!(
        e.contains("layer2.0.downsample.1.running_var is missing"),
        "{e}"
    );
    let mut w = init_weights(&spec, 1);
    w.insert("layer5.0.conv1.0.weight".into(), HostTensor::zeros(vec![1]));
    let e = VideoResNetSpec::from_weights(&w).unwrap_err().to_string();
    assert!(
        e.contains("layer5.0.conv1.0.weight belongs to no layer"),
        "{e}"
    );
    let mut w = init_weights(&spec, 1);
    w.insert("layer1.0.conv3.0.weight".into(), HostTensor::zeros(vec![1]));
    let e = VideoResNetSpec::from_weights(&w).unwrap_err().to_string();
    assert!(e.contains("bottleneck"), "{e}");
    let e = VideoResNetSpec::from_weights(&vidlrp_video_resnet::TensorMap::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("stem.0.weight is missing"), "{e}");
}
