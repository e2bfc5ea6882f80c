//! The `worker` command line: `--help` prints help and exits instead of
//! starting, and lists exactly the variables docs/configuration.md documents.

#[test]
fn help_lists_every_setting_docs_configuration_documents() {
    pulse_testkit::assert_help_matches_docs(env!("CARGO_BIN_EXE_worker"), "worker");
}
