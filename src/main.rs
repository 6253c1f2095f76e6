//! The `hookbox` binary: parse the configuration, start logging, bind, serve until a signal.

use hookbox::app::App;
use hookbox::config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// jemalloc rather than glibc's malloc: after a burst of connects (a reconnect storm) it returns
/// the memory the handshakes used, which glibc keeps as free pieces among live ones.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookbox: error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(config) {
        eprintln!("hookbox: error: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run(config: Config) -> anyhow::Result<()> {
    // Kept to the end: dropping it flushes the log lines still queued.
    let _log = hookbox::log::init(&config)?;
    // Signal handlers are in place before the startup line is printed, so a supervisor that
    // signals as soon as it sees the line gets a clean exit.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = CancellationToken::new();
    let app = App::bind(config, shutdown.clone()).await?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    app.serve().await?;
    Ok(())
}
