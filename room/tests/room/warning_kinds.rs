//! The warning kinds docs/CLIENT.md §5.3 promises are exactly the
//! [`Warning`] variants: a kind documented but never produced, or produced
//! but never documented, fails here.

use std::collections::BTreeSet;

use crate::harness::*;

/// The `kind` column of every table in CLIENT.md §5.3.
fn documented_kinds() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CLIENT.md");
    let doc = std::fs::read_to_string(path).expect("docs/CLIENT.md");
    let section = doc
        .split("### 5.3 Warning kinds")
        .nth(1)
        .expect("CLIENT.md has §5.3")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|k| *k != "kind")
        .map(str::to_owned)
        .collect()
}

#[test]
fn warning_kinds_match_client_md() {
    let examples = Warning::examples();
    let produced: BTreeSet<String> = examples.iter().map(|w| w.kind().to_owned()).collect();
    assert_eq!(
        produced.len(),
        examples.len(),
        "Warning::examples() repeats a kind"
    );
    let documented = documented_kinds();
    assert!(documented.len() >= 20, "parsed too little: {documented:?}");
    let undocumented: Vec<_> = produced.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&produced).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "Warning variants without a row in CLIENT.md §5.3: {undocumented:?}; rows without a variant: {missing:?}"
    );
}
