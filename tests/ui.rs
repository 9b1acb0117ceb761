//! Compile-time diagnostics of `#[retry_on_failure]`: one case per rule in `tests/ui/`, each with
//! the exact compiler output in its `.stderr`. Regenerate with `TRYBUILD=overwrite cargo test --test ui`
//! and read the diff as a user would.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
