//! Wires the server together: listeners, routes, the hub, and shutdown.

use crate::admin::{self, AdminState};
use crate::api::{self, ApiState};
use crate::config::{Config, EngineConfig};
use crate::engine::memory::MemoryEngine;
use crate::engine::redis::RedisEngine;
use crate::engine::Engine;
use crate::hub::{Hub, HubOptions};
use crate::transport::http::HttpLimits;
use crate::transport::{self, csp, sse, websocket, Shared, TimedListener};
use crate::webhook::{ClientLimits, WebhookClient};
use crate::{demo, ops, static_files};
use axum::routing::{any, get};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {err}")]
    Bind { addr: String, err: std::io::Error },
    #[error("cannot start the engine: {0}")]
    Engine(crate::engine::EngineError),
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
}

/// A bound, not yet serving, hookbox server.
pub struct App {
    config: Config,
    state: Arc<Shared>,
    api: Arc<ApiState>,
    admin: Arc<AdminState>,
    listener: TcpListener,
    api_listener: Option<TcpListener>,
    demo_listener: Option<TcpListener>,
    /// TLS for the main and Web API listeners (`--tls-cert`).
    tls: Option<TlsAcceptor>,
}

/// Pending connections the kernel queues per listener. The default of 128 drops SYNs when a
/// crowd (re)connects at once, which costs each dropped client a one-second retransmit.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(host: &str, port: u16) -> Result<TcpListener, AppError> {
    let addr = format!("{host}:{port}");
    let fail = |err| AppError::Bind {
        addr: addr.clone(),
        err,
    };
    let resolved = tokio::net::lookup_host(&addr)
        .await
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::other("no address found")))?;
    let socket = if resolved.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(resolved).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)
}

impl App {
    /// Binds every listener the configuration asks for. `shutdown` stops everything.
    pub async fn bind(mut config: Config, shutdown: CancellationToken) -> Result<App, AppError> {
        // Before anything is counted (see `metrics::install`).
        crate::metrics::install();
        // Before binding: a bad certificate is a startup error, not a failure per connection.
        let tls = config
            .tls
            .as_ref()
            .map(transport::tls::acceptor)
            .transpose()?;
        let listener = bind(&config.interface, config.port).await?;
        let api_listener = match &config.web_api {
            Some((host, port)) => Some(bind(host, *port).await?),
            None => None,
        };
        let demo_listener = match config.demo_port {
            Some(port) => {
                let l = bind("127.0.0.1", port).await?;
                let port = l
                    .local_addr()
                    .map_err(|err| AppError::Bind {
                        addr: "demo".into(),
                        err,
                    })?
                    .port();
                config.webhooks.cbport = port;
                config.demo_port = Some(port);
                Some(l)
            }
            None => None,
        };
        // The webhook targets configured at startup are always allowed; the list adds others.
        let mut allowed = config.webhooks.targets();
        allowed.extend(config.webhook_allow_hosts.iter().cloned());
        let webhooks = WebhookClient::new(
            config.webhooks.clone(),
            allowed,
            ClientLimits {
                timeout: config.webhook_timeout,
                max_concurrency: config.webhook_max_concurrency,
                queue_limit: config.webhook_queue,
                queue_timeout: config.webhook_queue_timeout,
                error_details: config.webhook_error_details,
            },
        );
        // Where this node listens, as other nodes and the admin console show it.
        let address = listener.local_addr().map_or_else(
            |_| config.interface.clone(),
            |a| format!("{}:{}", config.interface, a.port()),
        );
        let engine: Engine = match &config.engine {
            EngineConfig::Memory => Box::new(MemoryEngine::new(config.history_max_bytes)),
            EngineConfig::Redis(redis) => Box::new(
                RedisEngine::connect(redis, &address, config.history_max_bytes, shutdown.clone())
                    .await
                    .map_err(AppError::Engine)?,
            ),
        };
        let options = HubOptions {
            limits: config.action_limits,
            resume_key: config.resume_key.clone(),
            leave_grace: config.leave_grace,
        };
        let hub = Hub::new(engine, webhooks, options, shutdown.clone());
        hub.start_reaping();
        let web_app = api::web_app_addresses(&config.webhooks.targets()).await;
        let api = Arc::new(ApiState {
            hub: hub.clone(),
            token: config.api_security_token.clone().into(),
            admin_password: config.admin_password.clone().into(),
            ignore_publish_non_existing: config.ignore_publish_non_existing,
            allow_set_config_webhooks: config.allow_set_config_webhooks,
            publish_multi_max_channels: config.publish_multi_max_channels,
            wrong_tokens: api::WrongTokens::new(
                config.max_wrong_tokens_per_ip,
                config.trusted_proxies.clone(),
                web_app,
                config.api_exempt_ips.clone(),
            ),
        });
        let connections = TaskTracker::new();
        let csp = csp::Registry::new(
            connections.clone(),
            csp::Limits {
                max_sessions: config.csp_max_sessions,
                max_per_address: config.csp_max_sessions_per_ip,
                idle_timeout: config.csp_session_timeout,
                unused_timeout: config.csp_handshake_timeout,
                outbox_bytes: config.outbox_bytes,
                session: config.session_limits(),
            },
            shutdown.clone(),
        );
        let state = Arc::new(Shared {
            hub,
            csp,
            quota: transport::quota::Quota::new(
                config.max_connections,
                config.max_connections_per_ip,
            ),
            limits: transport::Limits {
                max_message: config.max_message_size,
                outbox_bytes: config.outbox_bytes,
                session: config.session_limits(),
                csp_poll_timeout: config.csp_poll_timeout,
                write_coalesce: config.write_coalesce,
                ping_interval: config.ping_interval,
                connect_timeout: config.connect_timeout,
                allowed_origins: config.allowed_origins.clone(),
                web_app_origins: web_app_origins(&config),
                tls: tls.is_some(),
                trusted_proxies: config.trusted_proxies.clone(),
            },
            shutdown,
            connections,
        });
        // CSP requests for this node's sessions that landed on another node come here through
        // the engine (a weak handle: the engine outlives no app).
        let weak = Arc::downgrade(&state);
        state
            .hub
            .engine()
            .serve_relays(Arc::new(move |req: crate::engine::RelayRequest| {
                let app = weak.upgrade();
                Box::pin(async move {
                    match app {
                        Some(app) => transport::csp::answer_relayed(app, req).await,
                        None => crate::engine::RelayReply {
                            status: 503,
                            reason: None,
                            content_type: "text/html".into(),
                            body: "'Shutting down'".into(),
                        },
                    }
                })
            }));
        let admin = AdminState::new(
            api.clone(),
            config.trusted_proxies.clone(),
            tls.is_some(),
            config.engine.describe(),
            address,
        );
        Ok(App {
            config,
            state,
            api,
            admin,
            listener,
            api_listener,
            demo_listener,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_listener
            .as_ref()
            .map(|l| l.local_addr().expect("bound"))
    }

    /// The main listener's routes.
    fn main_router(&self) -> Router {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let url = format!(
            "{scheme}://{}:{}",
            local_host(&self.config.interface),
            self.local_addr().port()
        );
        let landing: Arc<str> = static_files::landing(&url, self.config.demo_port).into();
        let mut router = Router::new()
            .route(
                "/",
                get(move || async move { axum::response::Html(landing.to_string()) }),
            )
            .route("/ws", get(websocket::upgrade))
            .route("/sse", get(sse::handle))
            // A wildcard, so that deeper unknown paths also get the CSP 404 (with ACAO).
            .route("/csp/{*endpoint}", any(csp::handle))
            .route("/static/hookbox.js", get(static_files::hookbox_js))
            .route("/static/hookbox.min.js", get(static_files::hookbox_js))
            .route("/static/hookbox.mjs", get(static_files::hookbox_mjs))
            .route("/static/hookbox.d.ts", get(static_files::hookbox_d_ts))
            .route("/metrics", get(ops::metrics))
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .with_state(self.state.clone());
        // 0.3.3's `/rest` lived on the main port, and the apps that speak it (django-hookbox 0.3)
        // know no other address, so it stays here even when `-w/-W` move `/web` away.
        let mut api = Router::new().route("/rest/{method}", any(api::handle_rest));
        if self.api_listener.is_none() {
            api = api.route("/web/{method}", any(api::handle_web));
        }
        router = router.merge(api.with_state(self.api.clone()));
        router.merge(admin::router(self.admin.clone()))
    }

    /// Serves until `shutdown` is cancelled. Logs the startup line once the sockets are bound.
    pub async fn serve(self) -> std::io::Result<()> {
        let config = &self.config;
        let shutdown = self.state.shutdown.clone();
        let port = self.local_addr().port();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(
            "Listening to hookbox on {scheme}://{}:{}",
            config.interface,
            port
        );
        let tasks = TaskTracker::new();
        let main = self.main_router();
        let deadlines = transport::Deadlines {
            header: config.header_timeout,
            idle: config.idle_timeout,
        };
        let timed = |listener, tls| TimedListener {
            listener,
            deadlines,
            tls,
        };
        let http = HttpLimits::new(
            config.header_timeout,
            config.max_header_bytes,
            config.max_http_connections_per_ip,
            config.trusted_proxies.clone(),
        );
        tasks.spawn(serve_one(
            timed(self.listener, self.tls.clone()),
            main,
            http.clone(),
            shutdown.clone(),
        ));
        let state = self.state.clone();
        // The demo app answers the webhooks of the close handling at shutdown, so it stops last.
        let demo_stop = CancellationToken::new();
        let mut demo_task = None;
        let mut api_at = format!("{scheme}://{}:{port}/web/", local_host(&config.interface));
        if let Some(listener) = self.api_listener {
            let (host, _) = config.web_api.clone().unwrap_or_default();
            let port = listener.local_addr()?.port();
            tracing::info!("Listening to hookbox/webapi on {scheme}://{host}:{port}");
            api_at = format!("{scheme}://{}:{port}/web/", local_host(&host));
            let api = Router::new()
                .route("/web/{method}", any(api::handle_web))
                .route("/rest/{method}", any(api::handle_rest))
                .route("/{method}", any(api::handle_web))
                .with_state(self.api.clone());
            tasks.spawn(serve_one(
                timed(listener, self.tls.clone()),
                api,
                http.clone(),
                shutdown.clone(),
            ));
        }
        // After every "Listening to" line, so the original's startup lines stay in their order.
        tracing::info!("Engine: {}", config.engine.describe());
        if let Some(listener) = self.demo_listener {
            let demo_port = listener.local_addr()?.port();
            tracing::info!("Demo chat: open http://127.0.0.1:{demo_port}/ in two browser tabs");
            let demo = demo::router(port);
            // The demo listens on loopback only: plain HTTP.
            demo_task = Some(tokio::spawn(serve_one(
                timed(listener, None),
                demo,
                http.clone(),
                demo_stop.clone(),
            )));
        }
        let console_at = format!("{scheme}://{}:{port}/admin/", local_host(&config.interface));
        log_what_is_on(config, &api_at, &console_at);
        // After the startup lines: a web app that does not answer is worth a warning.
        let hub = self.state.hub.clone();
        tokio::spawn(async move { hub.webhooks().probe().await });
        let upkeep = tokio::spawn(crate::metrics::upkeep());
        let sampler = tokio::spawn(self.admin.clone().sample_forever());
        shutdown.cancelled().await;
        drain(&state, tasks, config.shutdown_timeout).await;
        upkeep.abort();
        sampler.abort();
        demo_stop.cancel();
        if let Some(task) = demo_task {
            let _ = task.await;
        }
        Ok(())
    }
}

/// The origins whose pages may hand their cookies to the web app when `--allowed-origins` is not
/// set: the web app's (see `Limits::web_app_origins`), and with `--demo` its page under either
/// loopback name.
fn web_app_origins(config: &Config) -> Vec<String> {
    let mut origins = config.webhooks.origins();
    if let Some(port) = config.demo_port {
        origins.push(format!("http://localhost:{port}"));
    }
    origins
}

/// The host to show in a URL for `interface`: a wildcard address is reached on loopback from
/// this machine.
fn local_host(interface: &str) -> String {
    match interface.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
        Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => interface.to_owned(),
    }
}

/// The startup lines that say what a newcomer would otherwise have to guess: whether the Web API
/// and the console are on (and where), and whether other machines can reach hookbox.
fn log_what_is_on(config: &Config, api_at: &str, console_at: &str) {
    if config.api_security_token.is_some() {
        tracing::info!("Web API: on at {api_at}<method> (token from -r)");
    } else {
        tracing::info!("Web API: off (start with -r TOKEN to turn it on)");
    }
    if config.admin_password.is_some() {
        tracing::info!("Admin console: {console_at}");
    } else {
        tracing::info!("Admin console: off (start with -a PASSWORD to turn it on)");
    }
    if config
        .interface
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        tracing::info!(
            "Listening on every interface ({}): other machines can reach hookbox; -i 127.0.0.1 keeps it to this one",
            config.interface
        );
    }
}

/// After the shutdown signal: the listeners stop accepting and finish their requests, every
/// connection tells its client and runs its close handling (unsubscribe, destroy_channel and
/// disconnect webhooks). Whatever is not done within `--shutdown-timeout` is logged and left.
async fn drain(state: &Shared, listeners: TaskTracker, deadline: std::time::Duration) {
    let connections = &state.connections;
    listeners.close();
    connections.close();
    let drained = tokio::time::timeout(deadline, async {
        listeners.wait().await;
        connections.wait().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            "{} connections still closing after {:.1}s; exiting without them",
            connections.len(),
            deadline.as_secs_f64()
        ),
    }
}

/// `X-Content-Type-Options: nosniff` on every response: browsers then refuse to run anything
/// hookbox answers as a script unless it is labelled as one.
async fn nosniff(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn serve_one(
    listener: TimedListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let router = router.layer(axum::middleware::map_response(nosniff));
    transport::http::serve(listener, router, limits, shutdown).await;
}
