//! Arrays whose headers declare more than their files hold: refused with an error before
//! anything is allocated, never a panic or an abort.

use std::io::Write;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vidlrp-io-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// An `.npy` v1.0 file: `header` (the Python dict) padded to a multiple of 64 bytes, then
/// `data`.
fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_headers_that_declare_too_much_are_refused() {
    for (name, shape) in [
        // The product overflows u64 (and usize): it would wrap to a small number unchecked.
        ("wraps.npy", "(1, 9223372036854775808, 2, 3)"),
        // 2^52 clips: no overflow, 2^52 x 3 x 16 x 112 x 112 x 4 bytes declared.
        ("huge.npy", "(4503599627370496, 3, 16, 112, 112)"),
        // Fits a u64, but not the 16 bytes of data the file holds.
        ("short.npy", "(1000, 1000)"),
    ] {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let p = tmp(name);
        std::fs::write(&p, npy(&header, &[0u8; 16])).unwrap();
        let err = vidlrp_io::read_npy(&p).unwrap_err().to_string();
        assert!(err.contains("declares shape"), "{name}: {err}");
    }
    // The same header with its data is read.
    let p = tmp("fine.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    std::fs::write(&p, npy(header, &[0u8; 16])).unwrap();
    assert_eq!(vidlrp_io::read_npy(&p).unwrap().shape(), &[2, 2]);
}

#[test]
fn npz_entries_are_bounded_by_the_inflation_limit() {
    // A stored (uncompressed) entry declaring 2^40 floats in a tiny archive.
    let p = tmp("bomb.npz");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }";
    let file = std::fs::File::create(&p).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("w.npy", opts).unwrap();
    zip.write_all(&npy(header, &[0u8; 64])).unwrap();
    zip.finish().unwrap();
    let err = vidlrp_io::read_tensors(&p).unwrap_err().to_string();
    assert!(err.contains("declares shape"), "{err}");
    let size = std::fs::metadata(&p).unwrap().len();
    assert_eq!(
        vidlrp_io::npz_inflation_limit(size),
        64 * size + (256 << 20)
    );
}
