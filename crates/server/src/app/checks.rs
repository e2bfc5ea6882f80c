//! Checks: the steps shared by the API's and the dashboard's handlers.

use pulse_core::check::CheckInput;

/// Compiles the input's JSONPaths and regexes on a blocking thread, so the
/// validation that follows on this async thread finds them compiled.
pub async fn precompile(input: &CheckInput) {
    if let Some(Some(assertions)) = input.assertions.clone() {
        let _ = tokio::task::spawn_blocking(move || pulse_core::assertion::precompile(&assertions))
            .await;
    }
}
