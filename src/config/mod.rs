//! One validated, immutable [`Config`], built from the command line, the environment and an
//! optional TOML file, then passed by value into the app.

mod cli;
mod engine;
mod hints;
mod limits;
mod returning;

use crate::net::{self, HostRule, IpRange};
pub use cli::Options;

use crate::hub::limits::ActionLimits;
pub use crate::transport::tls::TlsFiles;
use crate::webhook::{Hook, WebhookSettings};
use clap::{CommandFactory, FromArgMatches};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Cli(String),
    #[error("cannot read config file {path}: {err}")]
    FileRead { path: PathBuf, err: std::io::Error },
    #[error("invalid config file {path}: {msg}")]
    FileParse { path: PathBuf, msg: String },
    #[error("invalid value for {option}: {why}")]
    Invalid { option: String, why: String },
}

fn invalid(option: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        option: option.to_owned(),
        why: why.into(),
    }
}

pub use crate::engine::redis::RedisConfig;
pub use engine::EngineConfig;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `<asctime> - <name> - <LEVEL> - <message>`, as the original wrote them.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields.message`.
    Json,
}

/// Log verbosity, with Python's level names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub interface: String,
    pub port: u16,
    /// The separate Web API listener (`-w/-W`), when its address differs from the main one.
    pub web_api: Option<(String, u16)>,
    pub ignore_publish_non_existing: bool,
    pub webhooks: WebhookSettings,
    pub webhook_timeout: Duration,
    pub webhook_max_concurrency: usize,
    /// Calls waiting for a webhook slot at once, and how long each may wait.
    pub webhook_queue: usize,
    pub webhook_queue_timeout: Duration,
    /// `None` disables the Web API.
    pub api_security_token: Option<String>,
    pub admin_password: Option<String>,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub log_file_errors: Option<PathBuf>,
    pub log_file_access: Option<PathBuf>,
    pub max_message_size: usize,
    pub outbox_bytes: usize,
    /// Longest a CSP comet request waits for data (the client's `du` is capped at this).
    pub csp_poll_timeout: Duration,
    /// How long a WebSocket writer gathers frames before writing (`--write-coalesce-ms`).
    pub write_coalesce: Duration,
    /// Idle time after which a CSP session is closed.
    pub csp_session_timeout: Duration,
    pub csp_max_sessions: usize,
    /// A CSP session that has not begun a CONNECT this long after its handshake is closed.
    pub csp_handshake_timeout: Duration,
    pub csp_max_sessions_per_ip: usize,
    /// How long a connection may take to send its first request's headers.
    pub header_timeout: Duration,
    /// How long a connection may stay without sending anything.
    pub idle_timeout: Duration,
    /// WebSocket ping period; `None`: no pings.
    pub ping_interval: Option<Duration>,
    /// How long a WebSocket or hixie-75 connection may stay without a CONNECT.
    pub connect_timeout: Duration,
    /// WebSocket and hixie-75 connections open at once, in all and per client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Origins allowed to use the client transports (`--allowed-origins`); `None`: any.
    pub allowed_origins: Option<Vec<String>>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpRange>,
    /// TLS on the main and Web API listeners (`--tls-cert`, `--tls-key`); `None`: plain TCP.
    pub tls: Option<TlsFiles>,
    /// Refused CONNECTs after which a connection is closed.
    pub max_failed_connects: u32,
    /// Web API calls with a wrong token one client address may make per minute.
    pub max_wrong_tokens_per_ip: u32,
    /// Addresses whose wrong tokens are never held back (`--api-exempt-ips`).
    pub api_exempt_ips: Vec<IpRange>,
    /// Largest request headers on every listener (`--max-header-bytes`).
    pub max_header_bytes: usize,
    /// Plain HTTP connections per client address (`--max-http-connections-per-ip`).
    pub max_http_connections_per_ip: usize,
    /// Bytes of history a channel keeps at most (its entries' encoded size).
    pub history_max_bytes: usize,
    /// Channels per user; publishes and subscribes per connection and per user; refused
    /// CONNECTs per address (`--max-channels-per-user`, `--publish-rate`, `--subscribe-rate`,
    /// … `--max-failed-connects-per-ip`).
    pub action_limits: ActionLimits,
    /// Signs resume tickets (`--resume-secret`, else random).
    pub resume_key: crate::hub::ResumeKey,
    /// How long a user whose last connection closed stays in its channels (`--leave-grace`).
    pub leave_grace: crate::hub::LeaveGrace,
    pub publish_multi_max_channels: usize,
    /// Hosts webhooks and pollers may call besides the webhook targets configured at startup
    /// (`--webhook-allow-hosts`).
    pub webhook_allow_hosts: Vec<HostRule>,
    pub allow_set_config_webhooks: bool,
    /// Clients see why a webhook failed, not just that it did (`--webhook-error-details`).
    pub webhook_error_details: bool,
    /// Where channels and users live.
    pub engine: EngineConfig,
    /// How long shutdown waits for the connections' close handling.
    pub shutdown_timeout: Duration,
    /// Port of the built-in demo web app, when `--demo` is on.
    pub demo_port: Option<u16>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interface: "0.0.0.0".to_owned(),
            port: 8001,
            web_api: None,
            ignore_publish_non_existing: false,
            webhooks: WebhookSettings::default(),
            webhook_timeout: Duration::from_secs(10),
            webhook_max_concurrency: 256,
            webhook_queue: 100_000,
            webhook_queue_timeout: Duration::from_secs(60),
            api_security_token: None,
            admin_password: None,
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            log_file_errors: None,
            log_file_access: None,
            max_message_size: 64 * 1024,
            outbox_bytes: 1024 * 1024,
            csp_poll_timeout: Duration::from_secs(30),
            write_coalesce: Duration::ZERO,
            csp_session_timeout: Duration::from_secs(60),
            csp_max_sessions: 10_000,
            csp_handshake_timeout: Duration::from_secs(10),
            csp_max_sessions_per_ip: 100,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ping_interval: Some(Duration::from_secs(20)),
            connect_timeout: Duration::from_secs(10),
            allowed_origins: None,
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            trusted_proxies: net::parse_ranges("127.0.0.0/8,::1").expect("valid ranges"),
            tls: None,
            max_failed_connects: 3,
            max_wrong_tokens_per_ip: 10,
            api_exempt_ips: Vec::new(),
            max_header_bytes: 32 * 1024,
            max_http_connections_per_ip: 256,
            history_max_bytes: 256 * 1024,
            action_limits: ActionLimits::default(),
            resume_key: crate::hub::ResumeKey::random(),
            leave_grace: crate::hub::LeaveGrace::default(),
            publish_multi_max_channels: 1000,
            webhook_allow_hosts: Vec::new(),
            allow_set_config_webhooks: false,
            webhook_error_details: false,
            engine: EngineConfig::Memory,
            shutdown_timeout: Duration::from_secs(10),
            demo_port: None,
        }
    }
}

impl Config {
    /// Parses `args` (with the program name first), the `HOOKBOX_*` environment and `--config`.
    pub fn from_args<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        // As optparse did, an option that takes a value takes the next argument even when it
        // starts with '-' (`-s -secret`, `--cbport -5` is then an invalid port, not a stray flag).
        let command = Options::command().mut_args(|a| {
            if !a.is_positional() && !a.is_require_equals_set() && a.get_action().takes_values() {
                a.allow_hyphen_values(true)
            } else {
                a
            }
        });
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let fail = |e: clap::Error| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                e.exit()
            }
            _ => ConfigError::Cli(hints::cli_error(&e, &command, &args)),
        };
        let matches = command.clone().try_get_matches_from(&args).map_err(fail)?;
        let mut cli = Options::from_arg_matches(&matches).map_err(fail)?;
        if let Some(msg) = hints::flag_as_value(&command, &args) {
            return Err(ConfigError::Cli(msg));
        }
        if let Some(stray) = cli.stray.first() {
            return Err(ConfigError::Cli(format!(
                "unexpected argument '{stray}': hookbox takes no positional arguments \
                 (is a flag missing before it, such as -r for the API token?)"
            )));
        }
        if cli.api_security_token.is_none() {
            // 0.3.3's name, below `HOOKBOX_API_SECURITY_TOKEN` (which clap has read already).
            cli.api_security_token = std::env::var("HOOKBOX_REST_SECRET").ok();
        }
        let file = cli.config.clone();
        let opts = match &file {
            Some(path) => {
                let keys: Vec<String> = command
                    .get_arguments()
                    .filter_map(|a| a.get_long().map(str::to_owned))
                    .collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                cli.or_file(read_file(path, &keys)?)
            }
            None => cli,
        };
        // A bad value is named where it came from: the flag, its variable, or its file key.
        Config::from_options(opts).map_err(|e| match e {
            ConfigError::Invalid { option, why } => ConfigError::Invalid {
                option: hints::source_name(&option, &matches, &command, file.as_deref()),
                why,
            },
            other => other,
        })
    }

    /// Validates merged options into a config.
    pub fn from_options(o: Options) -> Result<Config, ConfigError> {
        let d = Config::default();
        let action_limits = limits::action_limits(&o, d.action_limits)?;
        let resume_key = returning::resume_key(o.resume_secret.as_deref())?;
        let demo = o.demo.unwrap_or(false);
        // The demo trusts whoever can reach it less than a real web app would: it listens on
        // loopback unless `-i` says otherwise.
        let interface = match (o.interface, demo) {
            (Some(i), _) => i,
            (None, true) => "127.0.0.1".to_owned(),
            (None, false) => d.interface,
        };
        let port = o.port.unwrap_or(d.port);
        let api_interface = o.web_api_interface.unwrap_or_else(|| interface.clone());
        let api_port = o.web_api_port.unwrap_or(port);
        let web_api =
            (api_interface != interface || api_port != port).then_some((api_interface, api_port));

        let mut webhooks = WebhookSettings::default();
        if let Some(v) = o.cbhost {
            webhooks.cbhost = v;
        }
        if let Some(v) = o.cbport {
            webhooks.cbport = v;
        }
        if let Some(v) = o.cbpath {
            webhooks.cbpath = v;
        }
        webhooks.cbhttps = o.cbhttps.unwrap_or(false);
        webhooks.cbtrailingslash = o.cbtrailingslash.unwrap_or(false);
        webhooks.cbsendhookboxversion = o.cbsendhookboxversion.unwrap_or(false);
        let per_hook = [
            (Hook::Connect, o.cb_connect),
            (Hook::Disconnect, o.cb_disconnect),
            (Hook::CreateChannel, o.cb_create_channel),
            (Hook::DestroyChannel, o.cb_destroy_channel),
            (Hook::Subscribe, o.cb_subscribe),
            (Hook::Unsubscribe, o.cb_unsubscribe),
            (Hook::Publish, o.cb_publish),
            (Hook::Message, o.cb_message),
        ];
        for (hook, path) in per_hook {
            if let Some(p) = path {
                *webhooks.cb_path_mut(hook) = p;
            }
        }
        if let Some(url) = o.cb_single_url.filter(|u| !u.is_empty()) {
            validate_url(&url).map_err(|why| invalid("--cb-single-url", why))?;
            webhooks.cb_single_url = Some(url);
        }
        if let Some(secret) = &o.webhook_secret {
            crate::webhook::signing::standard_key(secret)
                .map_err(|why| invalid("--webhook-secret", why))?;
        }
        webhooks.webhook_secret = o.webhook_secret;
        webhooks.format = match o.webhook_format.as_deref() {
            None | Some("form") => crate::webhook::WebhookFormat::Form,
            Some("json") => crate::webhook::WebhookFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "--webhook-format",
                    format!("{other} (expected form or json)"),
                ))
            }
        };

        let seconds = |v: Option<f64>, option: &'static str, default: Duration| match v {
            None => Ok(default),
            Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(invalid(
                option,
                format!("{s} (must be > 0 and ≤ 3600 seconds)"),
            )),
        };
        let webhook_timeout = seconds(o.webhook_timeout, "--webhook-timeout", d.webhook_timeout)?;
        let webhook_max_concurrency = match o.webhook_max_concurrency {
            None => d.webhook_max_concurrency,
            Some(0) => return Err(invalid("--webhook-max-concurrency", "must be at least 1")),
            Some(n) => n,
        };
        let webhook_queue = o.webhook_queue.unwrap_or(d.webhook_queue);
        let webhook_queue_timeout = seconds(
            o.webhook_queue_timeout,
            "--webhook-queue-timeout",
            d.webhook_queue_timeout,
        )?;
        let max_message_size = match o.max_message_size {
            None => d.max_message_size,
            Some(n) if n >= 256 => n,
            Some(n) => {
                return Err(invalid(
                    "--max-message-size",
                    format!("{n} (must be at least 256)"),
                ))
            }
        };
        let outbox_bytes = match o.outbox_bytes {
            None => d.outbox_bytes,
            Some(n) if n >= 4096 => n,
            Some(n) => {
                return Err(invalid(
                    "--outbox-bytes",
                    format!("{n} (must be at least 4096)"),
                ))
            }
        };
        let write_coalesce = match o.write_coalesce_ms {
            None => d.write_coalesce,
            Some(ms) if ms <= 1000 => Duration::from_millis(ms),
            Some(ms) => {
                return Err(invalid(
                    "--write-coalesce-ms",
                    format!("{ms} (at most 1000)"),
                ))
            }
        };
        let csp_poll_timeout =
            seconds(o.csp_poll_timeout, "--csp-poll-timeout", d.csp_poll_timeout)?;
        let csp_session_timeout = seconds(
            o.csp_session_timeout,
            "--csp-session-timeout",
            d.csp_session_timeout,
        )?;
        let csp_max_sessions = match o.csp_max_sessions {
            None => d.csp_max_sessions,
            Some(0) => return Err(invalid("--csp-max-sessions", "must be at least 1")),
            Some(n) => n,
        };
        let csp_handshake_timeout = seconds(
            o.csp_handshake_timeout,
            "--csp-handshake-timeout",
            d.csp_handshake_timeout,
        )?;
        let shutdown_timeout =
            seconds(o.shutdown_timeout, "--shutdown-timeout", d.shutdown_timeout)?;
        let leave_grace = returning::leave_grace(o.leave_grace, shutdown_timeout)?;
        let header_timeout = seconds(o.header_timeout, "--header-timeout", d.header_timeout)?;
        let idle_timeout = seconds(o.idle_timeout, "--idle-timeout", d.idle_timeout)?;
        let connect_timeout = seconds(o.connect_timeout, "--connect-timeout", d.connect_timeout)?;
        let ping_interval = match o.ping_interval {
            None => d.ping_interval,
            Some(0.0) => None,
            v => Some(seconds(v, "--ping-interval", Duration::ZERO)?),
        };
        // Live connections must not look idle: a WebSocket client answers each ping, a CSP
        // client's comet is answered within the poll timeout and followed by the next.
        if idle_timeout <= csp_poll_timeout || ping_interval.is_some_and(|p| idle_timeout <= p) {
            return Err(invalid(
                "--idle-timeout",
                format!(
                    "{} s (must exceed --csp-poll-timeout, {} s, and --ping-interval, {} s)",
                    idle_timeout.as_secs_f64(),
                    csp_poll_timeout.as_secs_f64(),
                    ping_interval.unwrap_or_default().as_secs_f64()
                ),
            ));
        }
        let node_timeout = seconds(o.node_timeout, "--node-timeout", Duration::from_secs(10))?;
        let engine = engine::from_options(
            o.engine.as_deref(),
            o.redis_url.as_deref(),
            o.redis_cluster.unwrap_or(false),
            o.redis_sentinel,
            o.redis_sentinel_password,
            o.redis_prefix,
            node_timeout,
        )?;
        let at_least_one = |v: Option<usize>, option: &'static str, default: usize| match v {
            None => Ok(default),
            Some(0) => Err(invalid(option, "must be at least 1")),
            Some(n) => Ok(n),
        };
        let csp_max_sessions_per_ip = at_least_one(
            o.csp_max_sessions_per_ip,
            "--csp-max-sessions-per-ip",
            d.csp_max_sessions_per_ip,
        )?;
        let publish_multi_max_channels = at_least_one(
            o.publish_multi_max_channels,
            "--publish-multi-max-channels",
            d.publish_multi_max_channels,
        )?;
        let history_max_bytes = at_least_one(
            o.history_max_bytes,
            "--history-max-bytes",
            d.history_max_bytes,
        )?;
        let max_wrong_tokens_per_ip = match o.max_wrong_tokens_per_ip {
            None => d.max_wrong_tokens_per_ip,
            Some(0) => return Err(invalid("--max-wrong-tokens-per-ip", "must be at least 1")),
            Some(n) => n,
        };
        let api_exempt_ips = net::parse_ranges(o.api_exempt_ips.as_deref().unwrap_or(""))
            .map_err(|why| invalid("--api-exempt-ips", why))?;
        let max_header_bytes = match o.max_header_bytes {
            None => d.max_header_bytes,
            Some(n) if (1024..=1 << 20).contains(&n) => n,
            Some(n) => {
                return Err(invalid(
                    "--max-header-bytes",
                    format!("{n} (must be 1024 to 1048576)"),
                ))
            }
        };
        let max_http_connections_per_ip = at_least_one(
            o.max_http_connections_per_ip,
            "--max-http-connections-per-ip",
            d.max_http_connections_per_ip,
        )?;
        let max_failed_connects = match o.max_failed_connects {
            None => d.max_failed_connects,
            Some(0) => return Err(invalid("--max-failed-connects", "must be at least 1")),
            Some(n) => n,
        };
        let tls = match (o.tls_cert, o.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => return Err(invalid("--tls-cert", "needs --tls-key too")),
            (None, Some(_)) => return Err(invalid("--tls-key", "needs --tls-cert too")),
        };
        let trusted_proxies = match o.trusted_proxies {
            None => d.trusted_proxies,
            Some(list) => {
                net::parse_ranges(&list).map_err(|why| invalid("--trusted-proxies", why))?
            }
        };
        let max_connections =
            at_least_one(o.max_connections, "--max-connections", d.max_connections)?;
        let max_connections_per_ip = at_least_one(
            o.max_connections_per_ip,
            "--max-connections-per-ip",
            d.max_connections_per_ip,
        )?;
        let allowed_origins = net::parse_origins(o.allowed_origins.as_deref().unwrap_or(""))
            .map_err(|why| invalid("--allowed-origins", why))?;
        let extra_hosts = net::parse_hosts(o.webhook_allow_hosts.as_deref().unwrap_or(""))
            .map_err(|why| invalid("--webhook-allow-hosts", why))?;
        let log_format = match o.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "--log-format",
                    format!("{other} (expected text or json)"),
                ))
            }
        };
        let log_level = match o
            .log_level
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("INFO") => LogLevel::Info,
            Some("DEBUG") | Some("NOTSET") => LogLevel::Debug,
            Some("WARNING") | Some("WARN") => LogLevel::Warning,
            Some("ERROR") | Some("CRITICAL") | Some("FATAL") => LogLevel::Error,
            Some(other) => {
                return Err(invalid(
                    "--log-level",
                    format!("{other} (expected DEBUG, INFO, WARNING, ERROR or CRITICAL)"),
                ))
            }
        };
        let demo_port = demo.then(|| o.demo_port.unwrap_or(8000));
        if let Some(port) = demo_port {
            // The demo web app answers the webhooks itself.
            webhooks.cbhost = "127.0.0.1".to_owned();
            webhooks.cbport = port;
            webhooks.cbpath = "/hookbox".to_owned();
            webhooks.cb_single_url = None;
        }
        Ok(Config {
            interface,
            port,
            web_api,
            ignore_publish_non_existing: o
                .ignore_publish_non_existing_channels
                .is_some_and(|v| !v.is_empty()),
            webhooks,
            webhook_timeout,
            webhook_max_concurrency,
            webhook_queue,
            webhook_queue_timeout,
            api_security_token: o.api_security_token,
            admin_password: o.admin_password,
            log_level,
            log_format,
            log_file_errors: o.log_file_errors,
            log_file_access: o.log_file_access,
            max_message_size,
            outbox_bytes,
            csp_poll_timeout,
            write_coalesce,
            csp_session_timeout,
            csp_max_sessions,
            csp_handshake_timeout,
            csp_max_sessions_per_ip,
            header_timeout,
            idle_timeout,
            ping_interval,
            connect_timeout,
            allowed_origins,
            max_connections,
            max_connections_per_ip,
            trusted_proxies,
            tls,
            max_failed_connects,
            max_wrong_tokens_per_ip,
            api_exempt_ips,
            max_header_bytes,
            max_http_connections_per_ip,
            history_max_bytes,
            action_limits,
            resume_key,
            leave_grace,
            publish_multi_max_channels,
            webhook_allow_hosts: extra_hosts,
            allow_set_config_webhooks: o.allow_set_config_webhooks.unwrap_or(false),
            webhook_error_details: o.webhook_error_details.unwrap_or(false),
            engine,
            shutdown_timeout,
            demo_port,
        })
    }
}

impl Config {
    /// The bounds every transport gives its sessions.
    pub fn session_limits(&self) -> crate::session::SessionLimits {
        crate::session::SessionLimits {
            max_frame: self.max_message_size,
            max_failed_connects: self.max_failed_connects,
        }
    }
}

/// Reads the TOML file; `keys` are the known keys, for suggestions.
fn read_file(path: &Path, keys: &[&str]) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::FileRead {
        path: path.to_owned(),
        err,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::FileParse {
        path: path.to_owned(),
        msg: hints::toml_error(&e, &text, keys),
    })
}

fn validate_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("{url}: scheme {other} is not http or https")),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(std::iter::once("hookbox").chain(args.iter().copied()))
    }

    #[test]
    fn engine_description_masks_redis_passwords() {
        let c = parse(&[
            "--engine=redis",
            "--redis-url=redis://u:hunter2@127.0.0.1:6379/0",
        ]);
        let d = c.unwrap().engine.describe();
        assert_eq!(
            d,
            "Redis at redis://u:***@127.0.0.1:6379/0, key prefix hookbox"
        );
        assert_eq!(
            engine::mask_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(engine::mask_password("not a url"), "(unparsable URL)");
    }

    #[test]
    fn a_sentinel_master_is_named_and_not_with_a_cluster() {
        let c = parse(&[
            "--engine=redis",
            "--redis-sentinel=mymaster",
            "--redis-url=redis://127.0.0.1:26379,redis://127.0.0.1:26380",
        ])
        .unwrap();
        assert_eq!(
            c.engine.describe(),
            "Redis (master mymaster named by Sentinel) at redis://127.0.0.1:26379,\
             redis://127.0.0.1:26380, key prefix hookbox"
        );
        let e = parse(&[
            "--engine=redis",
            "--redis-sentinel=mymaster",
            "--redis-cluster",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--redis-sentinel"), "{e}");
        // The Sentinels' password: only for Sentinels, never shown.
        let c = parse(&[
            "--engine=redis",
            "--redis-sentinel=mymaster",
            "--redis-sentinel-password=s3cret",
        ])
        .unwrap();
        assert!(!c.engine.describe().contains("s3cret"));
        let EngineConfig::Redis(r) = &c.engine else {
            panic!("a Redis engine")
        };
        assert_eq!(r.sentinel_password.as_deref(), Some("s3cret"));
        let e = parse(&["--engine=redis", "--redis-sentinel-password=s3cret"]).unwrap_err();
        assert!(e.to_string().contains("--redis-sentinel-password"), "{e}");
    }

    #[test]
    fn defaults_and_last_wins() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.interface.as_str(), c.port), ("0.0.0.0", 8001));
        let c = parse(&["--port", "9000", "-p=9001", "--port=9002"]).unwrap();
        assert_eq!(c.port, 9002);
        let e = parse(&["--cbport", "8000", "mytoken"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unexpected argument 'mytoken'"), "{e}");
    }

    #[test]
    fn webhook_flags() {
        let c = parse(&[
            "--cbhost",
            "h",
            "--cbport=81",
            "--cbpath=",
            "--cb-create_channel",
            "cc.php",
            "--cbhttps",
        ])
        .unwrap();
        assert_eq!(c.webhooks.url(Hook::CreateChannel), "https://h:81/cc.php");
        assert!(parse(&["--cb-single-url", "ftp://x"]).is_err());
    }

    #[test]
    fn x_takes_a_value_and_api_listener() {
        let c = parse(&["-x", "1", "-w", "8002"]).unwrap();
        assert!(c.ignore_publish_non_existing);
        assert_eq!(c.web_api, Some(("0.0.0.0".to_owned(), 8002)));
    }

    #[test]
    fn rest_secret_is_another_name_of_the_api_token() {
        let c = parse(&["--rest-secret", "a"]).unwrap();
        assert_eq!(c.api_security_token.as_deref(), Some("a"));
        let c = parse(&["--rest-secret", "a", "-r", "b", "--rest-secret=c"]).unwrap();
        assert_eq!(c.api_security_token.as_deref(), Some("c"));
        let c = parse(&["--rest-secret", "a", "--api-security-token", "d"]).unwrap();
        assert_eq!(c.api_security_token.as_deref(), Some("d"));
    }

    #[test]
    fn errors_are_one_line() {
        let e = parse(&["--bogus"]).unwrap_err().to_string();
        assert!(!e.contains('\n') && e.contains("--bogus"), "{e}");
        let e = parse(&["--port", "abc"]).unwrap_err().to_string();
        assert!(!e.contains('\n') && e.contains("--port"), "{e}");
    }

    #[test]
    fn liveness_bounds() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.ping_interval, Some(Duration::from_secs(20)));
        let c = parse(&[
            "--ping-interval=0",
            "--idle-timeout=45",
            "--header-timeout=2.5",
        ])
        .unwrap();
        assert_eq!(c.ping_interval, None);
        assert_eq!(c.idle_timeout, Duration::from_secs(45));
        assert_eq!(c.header_timeout, Duration::from_millis(2500));
        // Live clients must not look idle.
        let e = parse(&["--idle-timeout=30"]).unwrap_err().to_string();
        assert!(
            e.contains("--idle-timeout") && e.contains("--csp-poll-timeout"),
            "{e}"
        );
        let e = parse(&["--idle-timeout=40", "--ping-interval=50"]).unwrap_err();
        assert!(e.to_string().contains("--ping-interval, 50 s"), "{e}");
        assert!(parse(&["--connect-timeout=0"]).is_err());
    }
}
