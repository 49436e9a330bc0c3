//! Ctrl-C: the first one cancels the work (which then stops cleanly and
//! leaves a state the next run resumes); a second one exits at once.

use tokio_util::sync::CancellationToken;

use super::EXIT_CANCELLED;

/// A token that Ctrl-C cancels.
pub(crate) fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        cancel.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(EXIT_CANCELLED);
        }
    });
    token
}
