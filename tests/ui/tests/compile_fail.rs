//! The macro's compile errors, each recorded in `tests/ui/*/*.stderr`.
//! Re-record after an intended change with `TRYBUILD=overwrite`.

#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("shapes/*.rs");
    t.compile_fail("arguments/*.rs");
    t.compile_fail("syntax/*.rs");
    t.compile_fail("stack/*.rs");
    t.compile_fail("graphs/*.rs");
    t.compile_fail("blocks/*.rs");
}
