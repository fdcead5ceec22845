//! `remove_staged`, as a signal handler calls it: what is staged disappears, targets stay.
//! (Its own test binary: it removes every staging path of the process.)

use vidlrp_io::{remove_staged, Outputs};

#[test]
fn an_interrupt_removes_what_was_staged_and_nothing_else() {
    let d = std::env::temp_dir().join(format!("vidlrp-io-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("old.txt"), "keep").unwrap();
    let mut out = Outputs::new();
    let f = out.file(&d.join("old.txt")).unwrap();
    std::fs::write(&f, "new").unwrap();
    let dir = out.dir(&d.join("pics")).unwrap();
    std::fs::write(dir.join("a.png"), "a").unwrap();
    remove_staged();
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["old.txt".to_string()]);
    assert_eq!(std::fs::read_to_string(d.join("old.txt")).unwrap(), "keep");
    // Publishing what was removed fails cleanly; dropping is harmless.
    assert!(out.publish().is_err());
    assert_eq!(std::fs::read_to_string(d.join("old.txt")).unwrap(), "keep");
}
