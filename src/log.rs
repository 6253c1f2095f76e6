//! Logging in the original's format: `<asctime> - <name> - <LEVEL> - <message>`, e.g.
//! `2026-11-27 23:28:09,648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001`.
//! django-hookbox parses that first line. Access lines use the logger name `access`.

use crate::config::{Config, LogLevel};
use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

struct PythonFormat;

impl<S, N> FormatEvent<S, N> for PythonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let name = if meta.target() == "access" {
            "access"
        } else {
            "hookbox"
        };
        let level = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            _ => "DEBUG",
        };
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
        write!(writer, "{now} - {name} - {level} - ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// A layer appending the events `filter` lets through to the file at `path`, if one is given.
fn file_layer<S, F>(path: Option<&Path>, filter: F) -> std::io::Result<Option<impl Layer<S>>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: tracing_subscriber::layer::Filter<S> + 'static,
{
    let Some(path) = path else { return Ok(None) };
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(Some(
        tracing_subscriber::fmt::layer()
            .event_format(PythonFormat)
            .with_writer(Mutex::new(file))
            .with_filter(filter),
    ))
}

/// Installs the global logger: stderr at `-L` (our own crate and the access log; dependencies
/// only from WARNING), plus the optional `-E` (WARNING and up) and `-A` (access) files.
pub fn init(config: &Config) -> std::io::Result<()> {
    let level = level_filter(config.log_level);
    let stderr_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .parse_lossy(format!("warn,hookbox={level},access={level}"));
    let stderr = tracing_subscriber::fmt::layer()
        .event_format(PythonFormat)
        .with_writer(std::io::stderr)
        .with_filter(stderr_filter);
    let errors = file_layer(config.log_file_errors.as_deref(), LevelFilter::WARN)?;
    let access = file_layer(
        config.log_file_access.as_deref(),
        Targets::new().with_target("access", LevelFilter::INFO),
    )?;
    tracing_subscriber::registry()
        .with(stderr)
        .with(errors)
        .with(access)
        .init();
    Ok(())
}
