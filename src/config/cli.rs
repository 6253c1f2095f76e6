//! The command line (HookBox 0.3.4a1's flags, plus ours) and the TOML config file, which share
//! one set of keys: a file key is the long flag name without its dashes (`web-api-port = 8002`).
//!
//! Every field is optional here so that the three sources can be merged with the precedence
//! command line > `HOOKBOX_*` environment > config file > defaults.

use clap::Parser;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(
    name = "hookbox",
    version,
    about = "hookbox: a real-time messaging server, drop-in compatible with HookBox 0.3.4a1",
    args_override_self = true,
    after_help = "Every flag also works as a HOOKBOX_* environment variable and a key of the --config \
TOML file; all of them, with defaults and meanings: docs/configuration.md"
)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Options {
    /// Read settings from a TOML file (keys are the long option names)
    #[arg(long, value_name = "FILE", env = "HOOKBOX_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Also log warnings and errors to FILE
    #[arg(
        short = 'E',
        long,
        value_name = "FILE",
        env = "HOOKBOX_LOG_FILE_ERRORS"
    )]
    #[arg(help_heading = "Logging")]
    pub log_file_errors: Option<PathBuf>,
    /// Also write the access log to FILE
    #[arg(
        short = 'A',
        long,
        value_name = "FILE",
        env = "HOOKBOX_LOG_FILE_ACCESS"
    )]
    #[arg(help_heading = "Logging")]
    pub log_file_access: Option<PathBuf>,
    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL
    #[arg(short = 'L', long, value_name = "LEVEL", env = "HOOKBOX_LOG_LEVEL")]
    #[arg(help_heading = "Logging")]
    pub log_level: Option<String>,
    /// Log line format: text (the original's) or json (one object per line) [default: text]
    #[arg(long, value_name = "FORMAT", env = "HOOKBOX_LOG_FORMAT")]
    #[arg(help_heading = "Logging")]
    pub log_format: Option<String>,

    /// Interface to listen on [default: 0.0.0.0]
    #[arg(short = 'i', long, value_name = "IFACE", env = "HOOKBOX_INTERFACE")]
    #[arg(help_heading = "Listening")]
    pub interface: Option<String>,
    /// Port to listen on [default: 8001]
    #[arg(short = 'p', long, value_name = "PORT", env = "HOOKBOX_PORT")]
    #[arg(help_heading = "Listening")]
    pub port: Option<u16>,
    /// Serve the Web API on a separate port
    #[arg(short = 'w', long, value_name = "PORT", env = "HOOKBOX_WEB_API_PORT")]
    #[arg(help_heading = "Listening")]
    pub web_api_port: Option<u16>,
    /// Serve the Web API on a separate interface
    #[arg(
        short = 'W',
        long,
        value_name = "IFACE",
        env = "HOOKBOX_WEB_API_INTERFACE"
    )]
    #[arg(help_heading = "Listening")]
    pub web_api_interface: Option<String>,
    /// Any non-empty VALUE makes /web/publish to a missing channel succeed silently
    #[arg(
        short = 'x',
        long,
        value_name = "VALUE",
        env = "HOOKBOX_IGNORE_PUBLISH_NON_EXISTING_CHANNELS"
    )]
    #[arg(help_heading = "Web API and admin console")]
    pub ignore_publish_non_existing_channels: Option<String>,

    /// Webhook port [default: 80]
    #[arg(long, value_name = "PORT", env = "HOOKBOX_CBPORT")]
    #[arg(help_heading = "Webhooks")]
    pub cbport: Option<u16>,
    /// Webhook host [default: 127.0.0.1]
    #[arg(long, value_name = "HOST", env = "HOOKBOX_CBHOST")]
    #[arg(help_heading = "Webhooks")]
    pub cbhost: Option<String>,
    /// Webhook path prefix [default: /hookbox]
    #[arg(long, value_name = "PATH", env = "HOOKBOX_CBPATH")]
    #[arg(help_heading = "Webhooks")]
    pub cbpath: Option<String>,
    /// Name of the session cookie (accepted for compatibility; cookies are forwarded whole)
    #[arg(
        short = 'c',
        long,
        value_name = "NAME",
        env = "HOOKBOX_COOKIE_IDENTIFIER"
    )]
    #[arg(help_heading = "Webhooks")]
    pub cookie_identifier: Option<String>,
    /// Signs every webhook (X-Hookbox-Signature; with a whsec_<base64> secret also the Standard Webhooks headers) and is sent as the form field `secret`
    #[arg(
        short = 's',
        long,
        value_name = "SECRET",
        env = "HOOKBOX_WEBHOOK_SECRET"
    )]
    #[arg(help_heading = "Webhooks")]
    pub webhook_secret: Option<String>,
    /// How webhook bodies are encoded: form (urlencoded text fields, the original's) or json (a JSON object of the same fields, with their types) [default: form]
    #[arg(long, value_name = "FORMAT", env = "HOOKBOX_WEBHOOK_FORMAT")]
    #[arg(help_heading = "Webhooks")]
    pub webhook_format: Option<String>,
    /// Call webhooks over https
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "HOOKBOX_CBHTTPS")]
    #[arg(help_heading = "Webhooks")]
    pub cbhttps: Option<bool>,
    /// Append a slash to webhook paths
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "HOOKBOX_CBTRAILINGSLASH")]
    #[arg(help_heading = "Webhooks")]
    pub cbtrailingslash: Option<bool>,
    /// Send X-Hookbox-Version with every webhook
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "HOOKBOX_CBSENDHOOKBOXVERSION")]
    #[arg(help_heading = "Webhooks")]
    pub cbsendhookboxversion: Option<bool>,
    /// Path of the connect webhook [default: connect]
    #[arg(long = "cb-connect", value_name = "PATH", env = "HOOKBOX_CB_CONNECT")]
    #[serde(rename = "cb-connect")]
    #[arg(help_heading = "Webhooks")]
    pub cb_connect: Option<String>,
    /// Path of the disconnect webhook [default: disconnect]
    #[arg(
        long = "cb-disconnect",
        value_name = "PATH",
        env = "HOOKBOX_CB_DISCONNECT"
    )]
    #[serde(rename = "cb-disconnect")]
    #[arg(help_heading = "Webhooks")]
    pub cb_disconnect: Option<String>,
    /// Path of the create_channel webhook [default: create_channel]
    #[arg(
        long = "cb-create_channel",
        value_name = "PATH",
        env = "HOOKBOX_CB_CREATE_CHANNEL"
    )]
    #[serde(rename = "cb-create_channel")]
    #[arg(help_heading = "Webhooks")]
    pub cb_create_channel: Option<String>,
    /// Path of the destroy_channel webhook [default: destroy_channel]
    #[arg(
        long = "cb-destroy_channel",
        value_name = "PATH",
        env = "HOOKBOX_CB_DESTROY_CHANNEL"
    )]
    #[serde(rename = "cb-destroy_channel")]
    #[arg(help_heading = "Webhooks")]
    pub cb_destroy_channel: Option<String>,
    /// Path of the subscribe webhook [default: subscribe]
    #[arg(
        long = "cb-subscribe",
        value_name = "PATH",
        env = "HOOKBOX_CB_SUBSCRIBE"
    )]
    #[serde(rename = "cb-subscribe")]
    #[arg(help_heading = "Webhooks")]
    pub cb_subscribe: Option<String>,
    /// Path of the unsubscribe webhook [default: unsubscribe]
    #[arg(
        long = "cb-unsubscribe",
        value_name = "PATH",
        env = "HOOKBOX_CB_UNSUBSCRIBE"
    )]
    #[serde(rename = "cb-unsubscribe")]
    #[arg(help_heading = "Webhooks")]
    pub cb_unsubscribe: Option<String>,
    /// Path of the publish webhook [default: publish]
    #[arg(long = "cb-publish", value_name = "PATH", env = "HOOKBOX_CB_PUBLISH")]
    #[serde(rename = "cb-publish")]
    #[arg(help_heading = "Webhooks")]
    pub cb_publish: Option<String>,
    /// Path of the message webhook [default: message]
    #[arg(long = "cb-message", value_name = "PATH", env = "HOOKBOX_CB_MESSAGE")]
    #[serde(rename = "cb-message")]
    #[arg(help_heading = "Webhooks")]
    pub cb_message: Option<String>,
    /// Send every webhook to this absolute URL (the `action` field tells them apart)
    #[arg(
        long = "cb-single-url",
        value_name = "URL",
        env = "HOOKBOX_CB_SINGLE_URL"
    )]
    #[serde(rename = "cb-single-url")]
    #[arg(help_heading = "Webhooks")]
    pub cb_single_url: Option<String>,

    /// Enables the Web API; callers send it as the form field `security_token` (`secret` on
    /// the 0.3.3 `/rest` API). `--rest-secret` is 0.3.3's name for it
    #[arg(
        short = 'r',
        long,
        visible_alias = "rest-secret",
        value_name = "SECRET",
        env = "HOOKBOX_API_SECURITY_TOKEN"
    )]
    #[serde(alias = "rest-secret")]
    #[arg(help_heading = "Web API and admin console")]
    pub api_security_token: Option<String>,
    /// Admin console password
    #[arg(short = 'a', long, value_name = "PW", env = "HOOKBOX_ADMIN_PASSWORD")]
    #[arg(help_heading = "Web API and admin console")]
    pub admin_password: Option<String>,
    /// Accepted for compatibility; has no effect
    #[arg(short = 'd', long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    #[arg(help_heading = "Demo and compatibility")]
    pub debug: Option<bool>,
    /// Accepted for compatibility; has no effect
    #[arg(short = 'o', long, value_name = "N")]
    #[arg(help_heading = "Demo and compatibility")]
    pub objgraph: Option<u64>,

    /// Seconds to wait for a webhook reply [default: 10]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_WEBHOOK_TIMEOUT")]
    #[arg(help_heading = "Webhooks")]
    pub webhook_timeout: Option<f64>,
    /// Signs resume tickets (see docs/webhooks.md, `resume_ttl`); give every node of a cluster the same, at least 16 characters. Unset: a random key per process, so tickets do not outlive it
    #[arg(long, value_name = "SECRET", env = "HOOKBOX_RESUME_SECRET")]
    #[arg(help_heading = "Webhooks")]
    pub resume_secret: Option<String>,
    /// Most webhook calls in flight at once [default: 256]
    #[arg(long, value_name = "N", env = "HOOKBOX_WEBHOOK_MAX_CONCURRENCY")]
    #[arg(help_heading = "Webhooks")]
    pub webhook_max_concurrency: Option<usize>,
    /// Most webhook calls waiting for a free slot at once; past it a call is refused at once, with a retry hint [default: 100000]
    #[arg(long, value_name = "N", env = "HOOKBOX_WEBHOOK_QUEUE")]
    #[arg(help_heading = "Webhooks")]
    pub webhook_queue: Option<usize>,
    /// Longest a webhook call waits for a free slot, in seconds; then it is refused with a retry hint [default: 60]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_WEBHOOK_QUEUE_TIMEOUT")]
    #[arg(help_heading = "Webhooks")]
    pub webhook_queue_timeout: Option<f64>,
    /// Largest inbound client message in bytes [default: 65536]
    #[arg(long, value_name = "BYTES", env = "HOOKBOX_MAX_MESSAGE_SIZE")]
    #[arg(help_heading = "Limits")]
    pub max_message_size: Option<usize>,
    /// Milliseconds a WebSocket writer waits after a first frame to send more in the same write: less CPU per delivery under load, that much more latency; 0 writes at once [default: 0]
    #[arg(long, value_name = "MS", env = "HOOKBOX_WRITE_COALESCE_MS")]
    #[arg(help_heading = "Limits")]
    pub write_coalesce_ms: Option<u64>,
    /// Bytes queued for one slow client before it is disconnected [default: 1048576]
    #[arg(long, value_name = "BYTES", env = "HOOKBOX_OUTBOX_BYTES")]
    #[arg(help_heading = "Limits")]
    pub outbox_bytes: Option<usize>,
    /// Longest a CSP comet request is held open, in seconds [default: 30]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_CSP_POLL_TIMEOUT")]
    #[arg(help_heading = "Limits")]
    pub csp_poll_timeout: Option<f64>,
    /// A CSP session with no request for this many seconds is closed [default: 60]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_CSP_SESSION_TIMEOUT")]
    #[arg(help_heading = "Limits")]
    pub csp_session_timeout: Option<f64>,
    /// Most CSP sessions alive at once [default: 10000]
    #[arg(long, value_name = "N", env = "HOOKBOX_CSP_MAX_SESSIONS")]
    #[arg(help_heading = "Limits")]
    pub csp_max_sessions: Option<usize>,
    /// A CSP session that has not completed CONNECT this many seconds after its handshake is closed [default: 10]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_CSP_HANDSHAKE_TIMEOUT")]
    #[arg(help_heading = "Limits")]
    pub csp_handshake_timeout: Option<f64>,
    /// Each request's headers must be complete within this many seconds of the connection being ready for it (slowloris, silent sockets, idle keep-alive) [default: 10]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_HEADER_TIMEOUT")]
    #[arg(help_heading = "Limits")]
    pub header_timeout: Option<f64>,
    /// A connection on which nothing arrives for this many seconds is closed: an idle keep-alive, a dead peer (live WebSocket clients answer the pings) [default: 60]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_IDLE_TIMEOUT")]
    #[arg(help_heading = "Limits")]
    pub idle_timeout: Option<f64>,
    /// Seconds between WebSocket pings; 0 sends none [default: 20]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_PING_INTERVAL")]
    #[arg(help_heading = "Limits")]
    pub ping_interval: Option<f64>,
    /// A WebSocket (or hixie-75) connection that has not sent CONNECT this many seconds after opening is closed [default: 10]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_CONNECT_TIMEOUT")]
    #[arg(help_heading = "Limits")]
    pub connect_timeout: Option<f64>,
    /// Most WebSocket, hixie-75 and /sse connections open at once; more are refused [default: 100000]
    #[arg(long, value_name = "N", env = "HOOKBOX_MAX_CONNECTIONS")]
    #[arg(help_heading = "Limits")]
    pub max_connections: Option<usize>,
    /// Most WebSocket, hixie-75 and /sse connections open at once per client address (IPv6: per /64) [default: 1000]
    #[arg(long, value_name = "N", env = "HOOKBOX_MAX_CONNECTIONS_PER_IP")]
    #[arg(help_heading = "Limits")]
    pub max_connections_per_ip: Option<usize>,
    /// Most CSP sessions alive at once per client address [default: 100]
    #[arg(long, value_name = "N", env = "HOOKBOX_CSP_MAX_SESSIONS_PER_IP")]
    #[arg(help_heading = "Limits")]
    pub csp_max_sessions_per_ip: Option<usize>,
    /// Pages allowed to use /ws, /csp and /sse, comma-separated scheme://host[:port]; a request with another Origin header is refused (403); requests without one (non-browser clients) are not affected. /sse, which carries the browser's cookies, admits pages on other origins only from this list [default: * for /ws and /csp]
    #[arg(long, value_name = "ORIGINS", env = "HOOKBOX_ALLOWED_ORIGINS")]
    #[arg(help_heading = "Listening")]
    pub allowed_origins: Option<String>,
    /// Proxies whose X-Forwarded-For is believed, comma-separated IPs or CIDR ranges [default: 127.0.0.0/8,::1]
    #[arg(long, value_name = "RANGES", env = "HOOKBOX_TRUSTED_PROXIES")]
    #[arg(help_heading = "Listening")]
    pub trusted_proxies: Option<String>,
    /// Serve TLS (https, wss) on the listeners with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "FILE", env = "HOOKBOX_TLS_CERT")]
    #[arg(help_heading = "Listening")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", env = "HOOKBOX_TLS_KEY")]
    #[arg(help_heading = "Listening")]
    pub tls_key: Option<PathBuf>,
    /// Refused CONNECTs after which a connection is closed [default: 3]
    #[arg(long, value_name = "N", env = "HOOKBOX_MAX_FAILED_CONNECTS")]
    #[arg(help_heading = "Limits")]
    pub max_failed_connects: Option<u32>,
    /// Channels one user may be subscribed to at once [default: 1000]
    #[arg(long, value_name = "N", env = "HOOKBOX_MAX_CHANNELS_PER_USER")]
    #[arg(help_heading = "Limits")]
    pub max_channels_per_user: Option<usize>,
    /// PUBLISH and MESSAGE frames one connection may send per second, sustained [default: 50]
    #[arg(long, value_name = "PER_SECOND", env = "HOOKBOX_PUBLISH_RATE")]
    #[arg(help_heading = "Limits")]
    pub publish_rate: Option<f64>,
    /// PUBLISH and MESSAGE frames one connection may send at once before --publish-rate applies [default: 100]
    #[arg(long, value_name = "N", env = "HOOKBOX_PUBLISH_BURST")]
    #[arg(help_heading = "Limits")]
    pub publish_burst: Option<u32>,
    /// PUBLISH and MESSAGE frames one user may send per second, all its connections on this node together [default: 100]
    #[arg(long, value_name = "PER_SECOND", env = "HOOKBOX_USER_PUBLISH_RATE")]
    #[arg(help_heading = "Limits")]
    pub user_publish_rate: Option<f64>,
    /// PUBLISH and MESSAGE frames one user may send at once before --user-publish-rate applies [default: 200]
    #[arg(long, value_name = "N", env = "HOOKBOX_USER_PUBLISH_BURST")]
    #[arg(help_heading = "Limits")]
    pub user_publish_burst: Option<u32>,
    /// SUBSCRIBE and UNSUBSCRIBE frames (and /sse channels) one connection may send per second, sustained [default: 20]
    #[arg(long, value_name = "PER_SECOND", env = "HOOKBOX_SUBSCRIBE_RATE")]
    #[arg(help_heading = "Limits")]
    pub subscribe_rate: Option<f64>,
    /// SUBSCRIBE and UNSUBSCRIBE frames one connection may send at once before --subscribe-rate applies [default: 100]
    #[arg(long, value_name = "N", env = "HOOKBOX_SUBSCRIBE_BURST")]
    #[arg(help_heading = "Limits")]
    pub subscribe_burst: Option<u32>,
    /// SUBSCRIBE and UNSUBSCRIBE frames one user may send per second, all its connections on this node together [default: 50]
    #[arg(long, value_name = "PER_SECOND", env = "HOOKBOX_USER_SUBSCRIBE_RATE")]
    #[arg(help_heading = "Limits")]
    pub user_subscribe_rate: Option<f64>,
    /// SUBSCRIBE and UNSUBSCRIBE frames one user may send at once before --user-subscribe-rate applies [default: 200]
    #[arg(long, value_name = "N", env = "HOOKBOX_USER_SUBSCRIBE_BURST")]
    #[arg(help_heading = "Limits")]
    pub user_subscribe_burst: Option<u32>,
    /// CONNECTs the web app may refuse per client address per minute (all transports; CONNECTs being checked count too); past it, that address's CONNECTs are refused without asking the web app [default: 60]
    #[arg(long, value_name = "N", env = "HOOKBOX_MAX_FAILED_CONNECTS_PER_IP")]
    #[arg(help_heading = "Limits")]
    pub max_failed_connects_per_ip: Option<u32>,
    /// Web API calls with a wrong token allowed per client address per minute; past it, that address gets 429 (loopback and the webhook host are never held back) [default: 10]
    #[arg(long, value_name = "N", env = "HOOKBOX_MAX_WRONG_TOKENS_PER_IP")]
    #[arg(help_heading = "Web API and admin console")]
    pub max_wrong_tokens_per_ip: Option<u32>,
    /// More client addresses whose wrong API tokens are never held back (loopback and the webhook host's never are), comma-separated IPs or CIDR ranges: the web app's other servers (workers, cron) [default: none]
    #[arg(long, value_name = "RANGES", env = "HOOKBOX_API_EXEMPT_IPS")]
    #[arg(help_heading = "Web API and admin console")]
    pub api_exempt_ips: Option<String>,
    /// Largest request headers in bytes, request line included (431 past it), on every listener [default: 32768]
    #[arg(long, value_name = "BYTES", env = "HOOKBOX_MAX_HEADER_BYTES")]
    #[arg(help_heading = "Limits")]
    pub max_header_bytes: Option<usize>,
    /// Most plain HTTP connections (not yet a WebSocket or a stream) open at once per client address; trusted proxies are not counted [default: 256]
    #[arg(long, value_name = "N", env = "HOOKBOX_MAX_HTTP_CONNECTIONS_PER_IP")]
    #[arg(help_heading = "Limits")]
    pub max_http_connections_per_ip: Option<usize>,
    /// Most bytes of history a channel keeps, besides its history_size [default: 262144]
    #[arg(long, value_name = "BYTES", env = "HOOKBOX_HISTORY_MAX_BYTES")]
    #[arg(help_heading = "Limits")]
    pub history_max_bytes: Option<usize>,
    /// Most channel names in one /web/publish_multi call [default: 1000]
    #[arg(long, value_name = "N", env = "HOOKBOX_PUBLISH_MULTI_MAX_CHANNELS")]
    #[arg(help_heading = "Web API and admin console")]
    pub publish_multi_max_channels: Option<usize>,
    /// More hosts webhooks and channel pollers may call, comma-separated HOST or HOST:PORT (the configured webhook host is always allowed)
    #[arg(long, value_name = "HOSTS", env = "HOOKBOX_WEBHOOK_ALLOW_HOSTS")]
    #[arg(help_heading = "Webhooks")]
    pub webhook_allow_hosts: Option<String>,
    /// Let /web/set_config change where webhooks go (within the allowed hosts)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "HOOKBOX_ALLOW_SET_CONFIG_WEBHOOKS")]
    #[arg(help_heading = "Web API and admin console")]
    pub allow_set_config_webhooks: Option<bool>,
    /// Tell clients why a webhook failed (its URL, the OS error, the reply) instead of a generic text; for development
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "HOOKBOX_WEBHOOK_ERROR_DETAILS")]
    #[arg(help_heading = "Webhooks")]
    pub webhook_error_details: Option<bool>,
    /// Where channels and users live: memory (one node) or redis (several nodes) [default: memory]
    #[arg(long, value_name = "ENGINE", env = "HOOKBOX_ENGINE")]
    #[arg(help_heading = "Several nodes (Redis)")]
    pub engine: Option<String>,
    /// Redis to use with --engine redis; with --redis-cluster, comma-separated seed nodes [default: redis://127.0.0.1:6379]
    #[arg(long, value_name = "URL", env = "HOOKBOX_REDIS_URL")]
    #[arg(help_heading = "Several nodes (Redis)")]
    pub redis_url: Option<String>,
    /// The Redis is a Redis Cluster (sharded pub/sub; Redis 7 or later)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "HOOKBOX_REDIS_CLUSTER")]
    #[arg(help_heading = "Several nodes (Redis)")]
    pub redis_cluster: Option<bool>,
    /// The name Redis Sentinel knows the master by: --redis-url then lists the Sentinels (comma-separated), which name the master and its successor after a failover
    #[arg(long, value_name = "NAME", env = "HOOKBOX_REDIS_SENTINEL")]
    #[arg(help_heading = "Several nodes (Redis)")]
    pub redis_sentinel: Option<String>,
    /// The password the Redis Sentinels ask for (their requirepass), if they ask for one; the master's goes in --redis-url
    #[arg(long, value_name = "PASSWORD", env = "HOOKBOX_REDIS_SENTINEL_PASSWORD")]
    #[arg(help_heading = "Several nodes (Redis)")]
    pub redis_sentinel_password: Option<String>,
    /// Prefix of hookbox's Redis keys: the nodes of one server share it [default: hookbox]
    #[arg(long, value_name = "PREFIX", env = "HOOKBOX_REDIS_PREFIX")]
    #[arg(help_heading = "Several nodes (Redis)")]
    pub redis_prefix: Option<String>,
    /// Seconds after which a node that stopped refreshing its heartbeat is cleaned up after [default: 10]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_NODE_TIMEOUT")]
    #[arg(help_heading = "Several nodes (Redis)")]
    pub node_timeout: Option<f64>,
    /// Seconds a user whose last connection closed stays in its channels: back in time, no presence frames and no unsubscribe/disconnect webhooks; 0 leaves at once, as the original [default: 0]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_LEAVE_GRACE")]
    #[arg(help_heading = "Webhooks")]
    pub leave_grace: Option<f64>,
    /// Seconds SIGTERM/SIGINT waits for every connection's close handling before exiting [default: 10]
    #[arg(long, value_name = "SECONDS", env = "HOOKBOX_SHUTDOWN_TIMEOUT")]
    #[arg(help_heading = "Listening")]
    pub shutdown_timeout: Option<f64>,
    /// Also run the built-in demo web app (chat) and point the webhooks at it
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", env = "HOOKBOX_DEMO")]
    #[arg(help_heading = "Demo and compatibility")]
    pub demo: Option<bool>,
    /// Port of the demo web app [default: 8000]
    #[arg(long, value_name = "PORT", env = "HOOKBOX_DEMO_PORT")]
    #[arg(help_heading = "Demo and compatibility")]
    pub demo_port: Option<u16>,

    /// Positional arguments: none is valid (the original ignored them, which hid mistakes such as
    /// a forgotten `-r`); collected only to say so clearly
    #[arg(hide = true, num_args = 0..)]
    #[serde(skip)]
    pub stray: Vec<String>,
}

macro_rules! merge_fields {
    ($a:ident, $b:ident; $($f:ident),* $(,)?) => { $( if $a.$f.is_none() { $a.$f = $b.$f; } )* };
}

impl Options {
    /// Fills every option not given here from `file`.
    pub fn or_file(mut self, file: Options) -> Options {
        merge_fields!(self, file;
            log_file_errors, log_file_access, log_level, log_format, interface, port, web_api_port,
            web_api_interface, ignore_publish_non_existing_channels, cbport, cbhost, cbpath,
            cookie_identifier, webhook_secret, webhook_format, cbhttps, cbtrailingslash, cbsendhookboxversion,
            cb_connect, cb_disconnect, cb_create_channel, cb_destroy_channel, cb_subscribe,
            cb_unsubscribe, cb_publish, cb_message, cb_single_url, api_security_token,
            admin_password, debug, objgraph, webhook_timeout, webhook_max_concurrency,
            max_message_size, write_coalesce_ms, outbox_bytes, csp_poll_timeout, csp_session_timeout, csp_max_sessions,
            csp_handshake_timeout, csp_max_sessions_per_ip, header_timeout, idle_timeout,
            ping_interval, connect_timeout, allowed_origins, max_connections, max_connections_per_ip, trusted_proxies, tls_cert, tls_key, max_failed_connects,
            max_channels_per_user, publish_rate, publish_burst, user_publish_rate, user_publish_burst,
            subscribe_rate, subscribe_burst, user_subscribe_rate, user_subscribe_burst,
            max_failed_connects_per_ip, max_wrong_tokens_per_ip, api_exempt_ips, max_header_bytes,
            max_http_connections_per_ip,
            history_max_bytes, publish_multi_max_channels, webhook_allow_hosts,
            allow_set_config_webhooks, webhook_error_details, engine, redis_url, redis_cluster, redis_sentinel, redis_sentinel_password, redis_prefix, node_timeout,
            shutdown_timeout, demo, demo_port, resume_secret, leave_grace,
            webhook_queue, webhook_queue_timeout);
        self
    }
}
