//! The `worker` command line: `--help` prints help and exits instead of
//! starting, and lists exactly the variables the README documents.

#[test]
fn help_lists_every_setting_the_readme_documents() {
    pulse_testkit::assert_help_matches_readme(env!("CARGO_BIN_EXE_worker"), "worker");
}
