//! The `server` command line: `--help` works anywhere and lists exactly the
//! variables docs/configuration.md documents.

#[test]
fn help_lists_every_setting_docs_configuration_documents() {
    pulse_testkit::assert_help_matches_docs(env!("CARGO_BIN_EXE_server"), "server");
}

#[test]
fn an_unknown_command_is_an_error_that_shows_usage() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("frobnicate")
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}
