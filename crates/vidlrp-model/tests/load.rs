//! `vidlrp_model::load` on the checkpoint fixtures of both families.

use std::path::{Path, PathBuf};

use vidlrp_c3d::Pool5;
use vidlrp_core::HostTensor;
use vidlrp_model::{Architecture, ModelError, TensorMap};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vidlrp-model-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn c3d_files_load_as_c3d_with_their_origin_defaults() {
    for (file, origin, pool5) in [
        ("checkpoints/state-dict.pth", "pytorch-port", Pool5::Port),
        ("checkpoints/mmaction2.pth", "mmaction2", Pool5::Port),
        ("checkpoints/caffe-v11.caffemodel", "caffe", Pool5::Caffe),
    ] {
        let path = fixture(file);
        let m = vidlrp_model::load(&path, None).unwrap();
        assert_eq!(m.arch(), "c3d");
        assert_eq!(m.origin(), origin);
        assert_eq!(m.pool5(), Some(pool5));
        assert_eq!(m.preset_name(), "caffe");
        // The same tensors as the C3D crate's own loader.
        let direct = vidlrp_c3d::load_weights(&path).unwrap();
        assert_eq!(
            m.tensors.keys().collect::<Vec<_>>(),
            direct.tensors.keys().collect::<Vec<_>>()
        );
        let given = vidlrp_model::load(&path, Some(Pool5::Caffe)).unwrap();
        assert!(matches!(
            given.architecture,
            Architecture::C3d {
                pool5: Pool5::Caffe,
                pool5_from: "given",
                ..
            }
        ));
    }
}

#[test]
fn torchvision_checkpoints_load_as_video_resnets() {
    for arch in ["r3d", "mc3", "r2plus1d"] {
        let path = fixture(&format!("golden/video-resnets/{arch}/checkpoint.pth"));
        let m = vidlrp_model::load(&path, None).unwrap();
        assert_eq!(m.arch(), format!("{arch}_12"));
        assert_eq!(m.origin(), "torchvision");
        assert_eq!(m.classes(), 6);
        assert_eq!(m.pool5(), None);
        assert_eq!(m.preset_name(), "kinetics");
        assert!(m.tensors.keys().all(|k| !k.starts_with("module.")));
        let err = vidlrp_model::load(&path, Some(Pool5::Port)).unwrap_err();
        assert!(matches!(err, ModelError::Argument(_)), "{err}");
        // The untrained twin has the same architecture and other values.
        let be = vidlrp_cpu::Cpu::new(1).unwrap();
        let u = m.untrained(5);
        assert_eq!(
            u.keys().collect::<Vec<_>>(),
            m.tensors.keys().collect::<Vec<_>>()
        );
        assert_ne!(u["fc.weight"].data(), m.tensors["fc.weight"].data());
        m.build_with(&be, u, [3, 8, 32, 32]).unwrap();
        m.build(&be, [3, 8, 32, 32]).unwrap();
        assert!(m.check_input([1, 8, 32, 32]).is_err());
    }
}

#[test]
fn saved_models_tell_their_preset_from_the_header() {
    let m = vidlrp_model::load(&fixture("golden/video-resnets/mc3/checkpoint.pth"), None).unwrap();
    let out = tmp("mc3.safetensors");
    m.save(&out).unwrap();
    let meta = vidlrp_io::read_safetensors_metadata(&out).unwrap().unwrap();
    assert_eq!(meta[vidlrp_model::ARCH_KEY], "mc3_12");
    assert_eq!(meta[vidlrp_c3d::ORIGIN_KEY], "torchvision");
    assert_eq!(vidlrp_model::preset_of(&out).unwrap(), "kinetics");
    let back = vidlrp_model::load(&out, None).unwrap();
    assert_eq!(back.arch(), "mc3_12");
    assert_eq!(back.tensors, m.tensors);
    // A C3D file without metadata: read whole, the family's preset.
    assert_eq!(
        vidlrp_model::preset_of(&fixture("checkpoints/original.safetensors")).unwrap(),
        "caffe"
    );
}

#[test]
fn unknown_networks_are_named_in_the_error() {
    let mut t = TensorMap::new();
    t.insert("encoder.weight".into(), HostTensor::zeros(vec![2, 2]));
    t.insert("decoder.weight".into(), HostTensor::zeros(vec![2, 2]));
    let path = tmp("other.safetensors");
    vidlrp_io::write_safetensors(&path, &t).unwrap();
    let err = vidlrp_model::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("not a network vidlrp knows"), "{err}");
    assert!(err.contains("decoder.weight, encoder.weight"), "{err}");
    // A misshapen ResNet names the tensor.
    let mut m = vidlrp_model::load(&fixture("golden/video-resnets/r3d/checkpoint.pth"), None)
        .unwrap()
        .tensors;
    m.insert(
        "layer1.0.conv1.0.weight".into(),
        HostTensor::zeros(vec![4, 4, 3, 3]),
    );
    let err = vidlrp_model::Model::from_tensors(m, &path, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("layer1.0.conv1.0.weight"), "{err}");
}
