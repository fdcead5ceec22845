//! Every checkpoint fixture (fixtures/checkpoints, written by PyTorch and a hand-written Caffe
//! encoder) loads to the tensors of `original.safetensors` under the port's names, with the
//! right origin, and explains to the same relevance under the same pool5.

use std::path::{Path, PathBuf};

use vidlrp_c3d::{build, load_weights, save_weights, Origin, Pool5};
use vidlrp_core::{Backend, Composite, HostTensor, Method, PresetOptions, Target};
use vidlrp_cpu::Cpu;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/checkpoints")
}

const FILES: [(&str, Origin); 10] = [
    ("original.safetensors", Origin::Port),
    ("original.npz", Origin::Port),
    ("legacy.pickle", Origin::Port),
    ("legacy-cuda.pickle", Origin::Port),
    ("bare.pt", Origin::Port),
    ("state-dict.pth", Origin::Port),
    ("model.pth", Origin::Port),
    ("data-parallel.pth", Origin::Port),
    ("mmaction2.pth", Origin::MmAction2),
    ("caffe-v10.caffemodel", Origin::Caffe),
];

fn clip() -> HostTensor {
    let n = 3 * 16 * 48 * 48;
    let data = (0..n).map(|i| ((i * 7919) % 255) as f32 - 100.0).collect();
    HostTensor::new(vec![1, 3, 16, 48, 48], data).unwrap()
}

fn relevance(tensors: vidlrp_c3d::TensorMap, pool5: Pool5) -> Vec<f32> {
    let cpu = Cpu::new(1).unwrap();
    let (net, _) = build(&cpu, tensors, pool5, [3, 16, 48, 48]).unwrap();
    let x = cpu.upload(&clip()).unwrap();
    let c = Composite::preset(Method::EpsilonPlus, &PresetOptions::default()).unwrap();
    let e = net.explain(&cpu, &x, &Target::Class(1), &c).unwrap();
    e.relevance.data().to_vec()
}

#[test]
fn every_format_loads_to_the_same_network() {
    let want = load_weights(&dir().join("original.safetensors"))
        .unwrap()
        .tensors;
    let mut v11 = FILES.to_vec();
    v11.push(("caffe-v11.caffemodel", Origin::Caffe));
    for (file, origin) in v11 {
        let w = load_weights(&dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(w.origin, origin, "{file}");
        assert_eq!(w.tensors, want, "{file}");
    }
    assert_eq!(Origin::Caffe.pool5(), Pool5::Caffe);
    assert_eq!(Origin::MmAction2.pool5(), Pool5::Port);
}

#[test]
fn explanations_agree_across_formats_under_the_same_pool5() {
    let original = load_weights(&dir().join("original.safetensors"))
        .unwrap()
        .tensors;
    for pool5 in [Pool5::Port, Pool5::Caffe] {
        let want = relevance(original.clone(), pool5);
        assert!(want.iter().any(|r| *r != 0.0));
        for (file, _) in FILES {
            let w = load_weights(&dir().join(file)).unwrap();
            assert_eq!(relevance(w.tensors, pool5), want, "{file} under {pool5}");
        }
    }
}

#[test]
fn converted_caffe_weights_remember_their_origin() {
    let w = load_weights(&dir().join("caffe-v10.caffemodel")).unwrap();
    let out = std::env::temp_dir().join(format!("vidlrp-conv-{}.safetensors", std::process::id()));
    save_weights(&out, &w).unwrap();
    let back = load_weights(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(back.origin, Origin::Caffe);
    assert_eq!(back.tensors, w.tensors);
}

#[test]
fn missing_and_foreign_layers_are_named() {
    let mut w = load_weights(&dir().join("caffe-v10.caffemodel")).unwrap();
    w.tensors.remove("conv4a.weight");
    let cpu = Cpu::new(1).unwrap();
    let e = build(&cpu, w.tensors.clone(), Pool5::Caffe, [3, 16, 48, 48])
        .err()
        .expect("conv4a is missing");
    assert!(e.to_string().contains("conv4a.weight is missing"), "{e}");
    w.tensors.insert(
        "conv4a.weight".into(),
        HostTensor::zeros(vec![2, 2, 3, 3, 3]),
    );
    w.tensors
        .insert("fc9.weight".into(), HostTensor::zeros(vec![2, 2]));
    let e = build(&cpu, w.tensors, Pool5::Caffe, [3, 16, 48, 48])
        .err()
        .expect("fc9 is foreign");
    assert!(e.to_string().contains("fc9.weight"), "{e}");
}
