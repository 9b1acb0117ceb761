//! Compile-time diagnostics of `#[retry_on_failure]`: one case per rule in `tests/ui/`, each with
//! the exact compiler output in its `.stderr`. Regenerate with `TRYBUILD=overwrite cargo test --test ui`
//! and read the diff as a user would.

/// The `.stderr` files record the default build. The optional features add observers whose bounds
/// repeat some messages (a non-`Result` return type is reported once per observer), so the
/// comparison runs without them.
#[test]
#[cfg_attr(
    any(feature = "tracing", feature = "metrics", feature = "stats"),
    ignore = "diagnostics are recorded for the default features"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
