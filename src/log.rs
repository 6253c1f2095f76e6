//! Logging in the original's format: `<asctime> - <name> - <LEVEL> - <message>`, e.g.
//! `2026-11-27 23:28:09,648 - hookbox - INFO - Listening to hookbox on http://127.0.0.1:8001`.
//! django-hookbox parses that first line. Access lines use the logger name `access`. With
//! `--log-format json` every line is a JSON object instead.
//!
//! Writes never block the runtime: each output (stderr, `-E`, `-A`) has its own writer thread
//! fed through a bounded queue of lines. When an output cannot keep up (a slow disk, a stalled
//! pipe) lines are dropped rather than stalling connections, and counted
//! ([`dropped_lines`], exported as a metric).

use crate::config::{Config, LogFormat, LogLevel};
use std::collections::VecDeque;
use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::OnceLock;
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Lines queued per output before new ones are dropped: enough for a burst of a few seconds.
const QUEUED_LINES: usize = 16 * 1024;

/// Lines the admin console's log view shows: the newest, at most this many.
const TAIL_LINES: usize = 500;
/// Longest line kept there (a longer one is cut).
const TAIL_LINE_CHARS: usize = 2000;

/// The newest log lines, in the text format whatever `--log-format` says (one short lock per
/// line, never held across anything else).
static TAIL: parking_lot::Mutex<VecDeque<String>> = parking_lot::Mutex::new(VecDeque::new());

/// The newest log lines, oldest first.
pub fn tail() -> Vec<String> {
    TAIL.lock().iter().cloned().collect()
}

/// Appends what it is given, line by line, to [`TAIL`].
struct TailWriter;

impl std::io::Write for TailWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut tail = TAIL.lock();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(match line.char_indices().nth(TAIL_LINE_CHARS) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None => line.to_owned(),
            });
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes what it is given to an output and to [`TAIL`] alike.
struct AndTail(NonBlocking);

impl std::io::Write for AndTail {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        TailWriter.write_all(buf)?;
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The drop counters of every output, for [`dropped_lines`].
static DROPPED: OnceLock<Vec<ErrorCounter>> = OnceLock::new();

/// Log lines dropped so far because an output fell behind.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |c| c.iter().map(|c| c.dropped_lines() as u64).sum())
}

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
        let mut text = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut text), event)?;
        write_escaped(&mut writer, &text)?;
        writeln!(writer)
    }
}

/// Writes `text` with its control characters escaped (`\n`, `\u{1b}`, …), and the Unicode line
/// separators too: a log line is one line whatever a client put in a name or a webhook put in
/// a reply, so nobody can forge a line of their own (a fake warning, a fake login). Tabs stay:
/// the access log separates its fields with them, as the original's did.
fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        if (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}' | '\\') {
            write!(out, "{}", c.escape_default())?;
        } else {
            out.write_char(c)?;
        }
    }
    Ok(())
}

/// A client-controlled value for a tab-separated access-log line: its tabs escaped, so that it
/// stays one field (the line's formatter escapes everything else).
pub fn field(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\t') {
        value.replace('\t', "\\t").into()
    } else {
        value.into()
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

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// What keeps the writer threads running; dropping it flushes what is queued.
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
}

/// The outputs being set up: each gets a writer thread behind a bounded queue, and a layer
/// formatting into it.
struct Outputs {
    format: LogFormat,
    guards: Vec<WorkerGuard>,
    counters: Vec<ErrorCounter>,
}

impl Outputs {
    fn writer<W: std::io::Write + Send + 'static>(&mut self, w: W) -> NonBlocking {
        let (writer, guard) = NonBlockingBuilder::default()
            .buffered_lines_limit(QUEUED_LINES)
            .lossy(true)
            .thread_name("hookbox-log")
            .finish(w);
        self.counters.push(writer.error_counter());
        self.guards.push(guard);
        writer
    }

    fn layer<W: std::io::Write + Send + 'static>(&mut self, w: W) -> BoxedLayer {
        let writer = self.writer(w);
        match self.format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .event_format(PythonFormat)
                .with_writer(writer)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(writer)
                .boxed(),
        }
    }

    /// A layer appending to the file at `path`, if one is given.
    fn file(&mut self, path: Option<&Path>) -> std::io::Result<Option<BoxedLayer>> {
        let Some(path) = path else { return Ok(None) };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Some(self.layer(file)))
    }
}

/// Installs the global logger: stderr at `-L` (our own crate and the access log; dependencies
/// only from WARNING), plus the optional `-E` (WARNING and up) and `-A` (access) files. Keep the
/// guard until the process ends.
pub fn init(config: &Config) -> std::io::Result<LogGuard> {
    let level = level_filter(config.log_level);
    let mut out = Outputs {
        format: config.log_format,
        guards: Vec::new(),
        counters: Vec::new(),
    };
    let stderr_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .parse_lossy(format!("warn,hookbox={level},access={level}"));
    let mut layers = match config.log_format {
        // The tail shows stderr's lines: formatted once for both (every connection's access
        // line is formatted on the connect path).
        LogFormat::Text => {
            let stderr = out.writer(std::io::stderr());
            vec![tracing_subscriber::fmt::layer()
                .event_format(PythonFormat)
                .with_writer(move || AndTail(stderr.clone()))
                .with_filter(stderr_filter)
                .boxed()]
        }
        LogFormat::Json => {
            let tail_filter = EnvFilter::builder()
                .with_default_directive(LevelFilter::WARN.into())
                .parse_lossy(format!("warn,hookbox={level},access={level}"));
            vec![
                out.layer(std::io::stderr())
                    .with_filter(stderr_filter)
                    .boxed(),
                tracing_subscriber::fmt::layer()
                    .event_format(PythonFormat)
                    .with_writer(|| TailWriter)
                    .with_filter(tail_filter)
                    .boxed(),
            ]
        }
    };
    if let Some(l) = out.file(config.log_file_errors.as_deref())? {
        layers.push(l.with_filter(LevelFilter::WARN).boxed());
    }
    if let Some(l) = out.file(config.log_file_access.as_deref())? {
        let access = Targets::new().with_target("access", LevelFilter::INFO);
        layers.push(l.with_filter(access).boxed());
    }
    tracing_subscriber::registry().with(layers).init();
    let _ = DROPPED.set(out.counters);
    Ok(LogGuard {
        _guards: out.guards,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        super::write_escaped(
            &mut out,
            "room\n2026-01-01 00:00:00,000 - hookbox - WARNING - forged\r\t\x1b[31m\u{2028}é\\n",
        )
        .unwrap();
        assert_eq!(
            out,
            "room\\n2026-01-01 00:00:00,000 - hookbox - WARNING - forged\\r\t\\u{1b}[31m\\u{2028}é\\\\n"
        );
    }
}
