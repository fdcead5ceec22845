//! The CPU backend against the golden fixtures (Zennit, autograd, independent torch DTD).

use vidlrp_conformance::golden::{check, fixtures_dir, load_all};
use vidlrp_cpu::Cpu;

#[test]
fn cpu_matches_every_golden_explanation() {
    let be = Cpu::new(2).unwrap();
    let models = load_all(&fixtures_dir()).unwrap();
    let mut failures = Vec::new();
    let mut cases = 0;
    for m in &models {
        for r in check(&be, m).unwrap() {
            cases += 1;
            eprintln!(
                "{:40} {:38} rel err {:.2e} {}",
                r.case,
                r.reference,
                r.relative(),
                if r.passed { "ok" } else { "FAIL" }
            );
            if !r.passed {
                failures.push(format!(
                    "{} ({}): rel err {:.3e} {}",
                    r.case,
                    r.reference,
                    r.relative(),
                    r.note
                ));
            }
        }
    }
    assert!(
        cases >= 25,
        "expected the committed fixtures, found {cases} cases"
    );
    assert!(
        failures.is_empty(),
        "golden mismatches:\n{}",
        failures.join("\n")
    );
}
