//! Which engine holds channels and users (`--engine`, `--redis-*`), validated.

use super::{invalid, ConfigError};
use crate::engine::redis::RedisConfig;
use std::time::Duration;

/// Which engine holds channels and users.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineConfig {
    /// In this process: one node.
    Memory,
    /// In Redis: any number of nodes.
    Redis(RedisConfig),
}

impl EngineConfig {
    /// For the log: which engine, where; passwords in Redis URLs are masked.
    pub fn describe(&self) -> String {
        match self {
            EngineConfig::Memory => "memory".to_owned(),
            EngineConfig::Redis(r) => {
                let urls: Vec<String> = r.urls.iter().map(|u| mask_password(u)).collect();
                let kind = match (&r.sentinel, r.cluster) {
                    (Some(name), _) => format!("Redis (master {name} named by Sentinel)"),
                    (None, true) => "Redis Cluster".to_owned(),
                    (None, false) => "Redis".to_owned(),
                };
                format!("{kind} at {}, key prefix {}", urls.join(","), r.prefix)
            }
        }
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub(super) fn mask_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// The engine the options choose, validated.
pub(super) fn from_options(
    engine: Option<&str>,
    redis_url: Option<&str>,
    cluster: bool,
    redis_sentinel: Option<String>,
    redis_sentinel_password: Option<String>,
    redis_prefix: Option<String>,
    node_timeout: Duration,
) -> Result<EngineConfig, ConfigError> {
    Ok(match engine.unwrap_or("memory") {
        "memory" => EngineConfig::Memory,
        "redis" => {
            let urls: Vec<String> = redis_url
                .unwrap_or("redis://127.0.0.1:6379")
                .split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect();
            for u in &urls {
                let ok = url::Url::parse(u)
                    .is_ok_and(|p| matches!(p.scheme(), "redis" | "rediss" | "valkey"));
                if !ok {
                    return Err(invalid("--redis-url", format!("{u}: not a redis:// URL")));
                }
            }
            let prefix = redis_prefix.unwrap_or_else(|| "hookbox".to_owned());
            if prefix.is_empty() || prefix.contains(['{', '}']) {
                return Err(invalid(
                    "--redis-prefix",
                    "must be non-empty, without { or }",
                ));
            }
            let sentinel = redis_sentinel.filter(|name| !name.is_empty());
            if cluster && sentinel.is_some() {
                return Err(invalid(
                    "--redis-sentinel",
                    "cannot be used with --redis-cluster (a Redis Cluster fails over by itself)",
                ));
            }
            let sentinel_password = redis_sentinel_password.filter(|p| !p.is_empty());
            if sentinel.is_none() && sentinel_password.is_some() {
                return Err(invalid(
                    "--redis-sentinel-password",
                    "is for the Sentinels of --redis-sentinel (the master's password goes in --redis-url)",
                ));
            }
            EngineConfig::Redis(RedisConfig {
                urls,
                cluster,
                sentinel,
                sentinel_password,
                prefix,
                node_timeout,
            })
        }
        other => {
            return Err(invalid(
                "--engine",
                format!("{other} (expected memory or redis)"),
            ))
        }
    })
}
