//! Every fixture of `fixtures/checkpoints` (written by its `generate.py` with PyTorch and a
//! hand-written protobuf encoder) reads to the tensors of `original.safetensors`, bit for bit;
//! hostile and damaged files give errors, never panics.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vidlrp_checkpoint::{read, read_blob, CheckpointError, Format, TensorMap};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/checkpoints")
}

fn original() -> TensorMap {
    read(&dir().join("original.safetensors")).unwrap().tensors
}

#[test]
fn pytorch_files_read_to_the_original_tensors() {
    let want = original();
    assert_eq!(want.len(), 22);
    for (file, format, unwrapped) in [
        ("original.npz", Format::Npz, ""),
        ("legacy.pickle", Format::TorchLegacy, ""),
        ("legacy-cuda.pickle", Format::TorchLegacy, ""),
        ("bare.pt", Format::TorchZip, ""),
        ("state-dict.pth", Format::TorchZip, "'state_dict'"),
        ("model.pth", Format::TorchZip, "'model'"),
        (
            "data-parallel.pth",
            Format::TorchZip,
            "'state_dict', 'module.' prefix",
        ),
    ] {
        let ck = read(&dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(ck.format, format, "{file}");
        assert_eq!(ck.unwrapped.join(", "), unwrapped, "{file}");
        assert_eq!(
            ck.tensors, want,
            "{file}: tensors differ from original.safetensors"
        );
        // Bit-identical, not just equal as floats.
        for (k, t) in &ck.tensors {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(t.data()), bits(want[k].data()), "{file}: {k}");
        }
    }
}

#[test]
fn mmaction2_and_caffe_files_keep_their_own_names() {
    let want = original();
    let mm = read(&dir().join("mmaction2.pth")).unwrap();
    assert_eq!(
        mm.tensors["backbone.conv1a.conv.weight"],
        want["conv1.weight"]
    );
    assert_eq!(mm.tensors["cls_head.fc_cls.bias"], want["fc8.bias"]);
    assert_eq!(mm.unwrapped, vec!["'state_dict'"]);

    let v10 = read(&dir().join("caffe-v10.caffemodel")).unwrap();
    assert_eq!(v10.format, Format::CaffeV10);
    assert_eq!(v10.tensors["conv3b.weight"], want["conv3b.weight"]);
    assert_eq!(v10.tensors["fc7-1.weight"], want["fc7.weight"]);
    assert_eq!(v10.tensors["fc8-1.bias"], want["fc8.bias"]);
    assert!(
        v10.skipped.iter().any(|s| s.starts_with("pool5 ")),
        "{:?}",
        v10.skipped
    );
    let v11 = read(&dir().join("caffe-v11.caffemodel")).unwrap();
    assert_eq!(v11.format, Format::CaffeV11);
    assert_eq!(v11.tensors["conv1a.weight"], want["conv1.weight"]);
    assert_eq!(v11.tensors["fc6.weight"], want["fc6.weight"]);
}

#[test]
fn pickles_that_name_os_system_are_refused() {
    for file in ["evil.pt", "evil-legacy.pickle"] {
        match read(&dir().join(file)) {
            Err(e @ CheckpointError::Refused { .. }) => {
                let m = e.to_string();
                assert!(m.contains("posix.system"), "{m}");
                assert!(m.contains("not a tensor-rebuild function"), "{m}");
            }
            other => panic!("{file}: expected a refusal, got {other:?}"),
        }
    }
}

/// A legacy checkpoint whose first storage claims 2^60 elements: an error naming the file, no
/// allocation of that size (the process would abort), no panic.
#[test]
fn a_storage_larger_than_the_file_is_an_error() {
    let mut bytes = std::fs::read(dir().join("legacy.pickle")).unwrap();
    let mut cur = std::io::Cursor::new(&bytes[..]);
    for _ in 0..5 {
        vidlrp_checkpoint::audit::audit_pickle(&mut cur).unwrap();
    }
    let at = cur.position() as usize;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let d = std::env::temp_dir().join(format!("vidlrp-ck-huge-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("huge.pickle");
    std::fs::write(&p, &bytes).unwrap();
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("huge.pickle"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_view_larger_than_the_file_is_not_materialised() {
    let e = read(&dir().join("expanded.pt")).unwrap_err().to_string();
    assert!(e.contains("more than the file holds"), "{e}");
}

/// 300 full views of one 4 KB storage: each view is within the file's size, all together
/// they declare 1.2 MB from a 28 KB file, beyond twice the file plus 1 MiB (#30).
#[test]
fn many_views_of_one_storage_are_not_all_materialised() {
    let e = read(&dir().join("many-views.pt")).unwrap_err().to_string();
    assert!(e.contains("more than twice the file's"), "{e}");
}

#[test]
fn the_mean_blob_reads_with_its_five_dimensions() {
    let t = read_blob(&dir().join("mean.binaryproto")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("mean.json")).unwrap()).unwrap();
    let shape: Vec<usize> = serde_json::from_value(json["shape"].clone()).unwrap();
    let data: Vec<f32> = serde_json::from_value(json["data"].clone()).unwrap();
    assert_eq!(t.shape(), shape.as_slice());
    assert_eq!(t.data(), data.as_slice());
}

#[test]
fn non_checkpoints_are_named_errors() {
    let d = std::env::temp_dir().join(format!("vidlrp-ck-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    for (name, bytes) in [
        ("empty", b"".as_slice()),
        ("text", b"hello world, not weights\n".as_slice()),
        ("pickle", b"\x80\x04K\x01.".as_slice()),
    ] {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("py" | "json")))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Truncated and bit-flipped copies of every fixture: an error or a (possibly different)
    /// successful read, never a panic and never an allocation beyond the file.
    #[test]
    fn damaged_files_never_panic(which in 0usize..64, cut in 0.0f64..1.0, flips in proptest::collection::vec((0.0f64..1.0, 0u8..8), 0..4)) {
        let all = fixtures();
        let (name, bytes) = &all[which % all.len()];
        let mut b = bytes.clone();
        if flips.is_empty() {
            b.truncate((cut * b.len() as f64) as usize);
        }
        for (at, bit) in flips {
            let i = ((at * b.len() as f64) as usize).min(b.len() - 1);
            b[i] ^= 1 << bit;
        }
        let d = std::env::temp_dir().join(format!("vidlrp-ck-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, &b).unwrap();
        let _ = read(&p);
        let _ = read_blob(&p);
        std::fs::remove_file(&p).unwrap();
    }
}
