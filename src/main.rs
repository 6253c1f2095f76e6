//! The `hookbox` binary: parse the configuration, start logging, bind, serve until a signal.

use hookbox::app::App;
use hookbox::config::Config;
use tokio_util::sync::CancellationToken;

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
    hookbox::log::init(&config)?;
    let shutdown = CancellationToken::new();
    let app = App::bind(config, shutdown.clone()).await?;
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    app.serve().await?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
