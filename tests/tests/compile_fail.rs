//! The macro's compile errors, each recorded in `tests/ui/**/*.stderr`.
//! Re-record after an intended change with `TRYBUILD=overwrite`.

#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/shapes/*.rs");
    t.compile_fail("ui/arguments/*.rs");
    t.compile_fail("ui/syntax/*.rs");
    t.compile_fail("ui/stack/*.rs");
    t.compile_fail("ui/graphs/*.rs");
    t.compile_fail("ui/blocks/*.rs");
}
