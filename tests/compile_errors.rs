//! What `#[hot_module]` cannot support yet is a compile error on the offending token that says
//! what to do instead (tests/ui/*.rs, expected output beside each).

#[test]
fn unsupported_items_are_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

/// What the attribute accepts compiles and runs as written (tests/ui_pass/*.rs).
#[test]
fn supported_shapes_compile_and_run() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui_pass/*.rs");
}
