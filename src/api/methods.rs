//! The sixteen Web API methods.

use super::{ApiError, ApiState, Call, Outcome, Params};
use crate::hub::{raw, Hooks, HubError, Leave, Origin, Publish};
use crate::webhook::Hook;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// Parameters that are never channel options (the token keys are removed before any method runs).
const RESERVED: [&str; 2] = ["channel_name", "send_hook"];

macro_rules! boxed {
    ($f:ident) => {
        |api, params| Box::pin($f(api, params))
    };
}
pub(super) use boxed;

pub fn lookup(name: &str) -> Option<Call> {
    Some(match name {
        "get_server_info" => boxed!(get_server_info),
        "publish" => boxed!(publish),
        "publish_multi" => boxed!(publish_multi),
        "subscribe" => boxed!(subscribe),
        "unsubscribe" => boxed!(unsubscribe),
        "message" => boxed!(message),
        "create_channel" => boxed!(create_channel),
        "destroy_channel" => boxed!(destroy_channel),
        "set_channel_options" => boxed!(set_channel_options),
        "get_channel_info" => boxed!(get_channel_info),
        "state_set_key" => boxed!(state_set_key),
        "state_delete_key" => boxed!(state_delete_key),
        "set_user_options" => boxed!(set_user_options),
        "get_user_info" => boxed!(get_user_info),
        "set_config" => boxed!(set_config),
        "disconnect" => boxed!(disconnect),
        _ => return None,
    })
}

async fn get_server_info(api: Arc<ApiState>, _: Params) -> Outcome {
    Ok(json!({
        "channels": api.hub.channel_names().await?,
        "connections": api.hub.connection_ids().await?,
    }))
}

/// Publishes to one existing channel; the frame's `user` is `originator` or JSON null.
pub(super) async fn publish_one(
    api: &Arc<ApiState>,
    params: &Params,
    channel: &str,
    payload: &RawValue,
) -> Result<(), ApiError> {
    let publish = Publish {
        publisher: None,
        originator: params.get("originator"),
        origin: &Origin::default(),
        channel,
        payload,
        hooks: params.hooks(),
    };
    Ok(api.hub.publish(publish).await?)
}

async fn publish(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    let payload = raw(&params.payload()?);
    match publish_one(&api, &params, channel, &payload).await {
        Err(ApiError::Hub(HubError::NoChannel(_))) if api.ignore_publish_non_existing => {
            Ok(json!({}))
        }
        other => other.map(|()| json!({})),
    }
}

/// Publishes one payload to each listed channel that exists. Each name counts once, their number
/// is capped (`--publish-multi-max-channels`), the payload is encoded once, missing channels cost
/// nothing, and the call yields to other tasks between channels, so that a huge call neither
/// copies its payload per name nor holds a runtime worker for its whole length.
async fn publish_multi(api: Arc<ApiState>, params: Params) -> Outcome {
    let names = params.required("channel_names")?;
    let mut seen = HashSet::new();
    let names: Vec<&str> = names
        .split(',')
        .filter(|c| !c.is_empty() && seen.insert(*c))
        .collect();
    let max = api.publish_multi_max_channels;
    if names.len() > max {
        return Err(ApiError::Invalid(format!(
            "Too many channel_names ({}, at most {max})",
            names.len()
        )));
    }
    let payload = raw(&params.payload()?);
    for channel in names {
        if !api.hub.channel_exists(channel).await? {
            continue;
        }
        match publish_one(&api, &params, channel, &payload).await {
            Ok(()) | Err(ApiError::Hub(HubError::NoChannel(_))) => {}
            Err(e) => return Err(e),
        }
        tokio::task::yield_now().await;
    }
    Ok(json!({}))
}

/// The user named by `key`, and an origin carrying the user's remembered cookie.
async fn user_param<'p>(
    api: &ApiState,
    params: &'p Params,
    key: &'static str,
) -> Result<(&'p str, Origin), ApiError> {
    let name = params.required(key)?;
    let cookie = api.hub.user_cookie(name).await?;
    Ok((name, Origin::api(cookie)))
}

pub(super) async fn subscribe(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    let (user, origin) = user_param(&api, &params, "name").await?;
    api.hub
        .subscribe(user, &origin, channel, params.hooks(), None)
        .await?;
    Ok(json!({}))
}

pub(super) async fn unsubscribe(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    if !api.hub.channel_exists(channel).await? {
        return Err(HubError::NoChannel(channel.to_owned()).into());
    }
    let (user, origin) = user_param(&api, &params, "name").await?;
    let leave = match params.hooks() {
        Hooks::Ask => Leave::Asked,
        Hooks::Skip => Leave::Silent,
    };
    api.hub.take_out(user, &origin, channel, leave).await?;
    Ok(json!({}))
}

async fn message(api: Arc<ApiState>, params: Params) -> Outcome {
    let recipient = params.required("recipient_name")?;
    let (sender, origin) = user_param(&api, &params, "sender_name").await?;
    let payload = params.payload()?;
    api.hub
        .message(sender, &origin, recipient, payload, params.hooks())
        .await?;
    Ok(json!({}))
}

async fn create_channel(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    let options = params.options(&RESERVED)?;
    api.hub
        .create_channel(channel, &options, params.send_hook())
        .await?;
    Ok(json!({}))
}

async fn destroy_channel(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    api.hub.destroy_channel(channel, params.send_hook()).await?;
    Ok(json!({}))
}

pub(super) async fn set_channel_options(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    let options = params.options(&RESERVED)?;
    api.hub.set_channel_options(channel, &options).await?;
    Ok(json!({}))
}

pub(super) async fn get_channel_info(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    Ok(api.hub.channel_info(channel).await?)
}

pub(super) async fn state_set_key(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    let key = params.required("key")?;
    let val = params
        .get("val")
        .ok_or(ApiError::Missing("'val' argument"))?;
    let val: Value = serde_json::from_str(val)
        .map_err(|_| ApiError::Invalid("Invalid json for val".to_owned()))?;
    api.hub.state_set_key(channel, key, val).await?;
    Ok(json!({}))
}

pub(super) async fn state_delete_key(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    let key = params.required("key")?;
    api.hub.state_delete_key(channel, key).await?;
    Ok(json!({}))
}

async fn set_user_options(api: Arc<ApiState>, params: Params) -> Outcome {
    let name = params.required("user_name")?;
    let options = params.options(&["user_name"])?;
    api.hub.set_user_options(name, &options).await?;
    Ok(json!({}))
}

async fn get_user_info(api: Arc<ApiState>, params: Params) -> Outcome {
    let name = params.required("user_name")?;
    Ok(api.hub.user_info(name).await?)
}

/// Closes every connection of a user (`name`; `user_name` and `identifier` are accepted too).
async fn disconnect(api: Arc<ApiState>, params: Params) -> Outcome {
    let name = ["name", "user_name", "identifier"]
        .iter()
        .find_map(|k| params.get(k).filter(|v| !v.is_empty()))
        .ok_or(ApiError::Missing("name"))?;
    let closed = api.hub.kick(name).await?;
    Ok(json!({"connections": closed}))
}

/// Changes webhook addressing and secrets at run time. Values may be JSON (`cbport=8000`) or
/// plain text (`cbhost=example.org`). All keys are validated before any is applied. Where webhooks
/// go may change only with `--allow-set-config-webhooks`, and only to allowed hosts: the API token
/// must not be enough to send the browsers' cookies and the webhook secret elsewhere.
pub(super) async fn set_config(api: Arc<ApiState>, params: Params) -> Outcome {
    let webhooks = api.hub.webhooks();
    let mut next = webhooks.settings();
    let mut addressing = Vec::new();
    let mut token = None;
    let mut admin = None;
    for (key, raw) in params.keys() {
        let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()));
        let text = || match &value {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ApiError::Invalid(format!(
                "Invalid value for {key} (should be a string)"
            ))),
        };
        let flag = || {
            value.as_bool().ok_or_else(|| {
                ApiError::Invalid(format!("Invalid type for {key} (should be bool)"))
            })
        };
        let optional = |s: String| (!s.is_empty()).then_some(s);
        let moves_hooks = match key.as_str() {
            "cbhost" => {
                next.cbhost = text()?;
                true
            }
            "cbpath" => {
                next.cbpath = text()?;
                true
            }
            "cbport" => {
                next.cbport = text()?
                    .parse::<u16>()
                    .map_err(|_| ApiError::Invalid(format!("Invalid value for cbport: {raw}")))?;
                true
            }
            "cbhttps" => {
                next.cbhttps = flag()?;
                true
            }
            "cbtrailingslash" => {
                next.cbtrailingslash = flag()?;
                true
            }
            "cbsendhookboxversion" => {
                next.cbsendhookboxversion = flag()?;
                false
            }
            "cb_single_url" => {
                next.cb_single_url = optional(text()?);
                true
            }
            "webhook_secret" => {
                let secret = optional(text()?);
                if let Some(secret) = &secret {
                    crate::webhook::signing::standard_key(secret).map_err(|why| {
                        ApiError::Invalid(format!("Invalid value for webhook_secret: {why}"))
                    })?;
                }
                next.webhook_secret = secret;
                false
            }
            // `rest_secret` is 0.3.3's name for the same setting.
            "api_security_token" | "rest_secret" => match optional(text()?) {
                // An empty token would switch the API off with no way back in.
                None => return Err(ApiError::Invalid(format!("{key} must not be empty"))),
                t => {
                    token = t;
                    false
                }
            },
            "admin_password" => {
                admin = Some(optional(text()?));
                false
            }
            other => match Hook::ALL
                .iter()
                .find(|h| other.strip_prefix("cb_") == Some(h.action()))
            {
                Some(&hook) => {
                    *next.cb_path_mut(hook) = text()?;
                    true
                }
                None => return Err(ApiError::Invalid(format!("Invalid config key {other}"))),
            },
        };
        if moves_hooks {
            addressing.push(key.as_str());
        }
    }
    if !addressing.is_empty() {
        if !api.allow_set_config_webhooks {
            addressing.sort_unstable();
            return Err(ApiError::Invalid(format!(
                "set_config may not change where webhooks go ({}): start hookbox with --allow-set-config-webhooks",
                addressing.join(", ")
            )));
        }
        if let Some(url) = Hook::ALL
            .iter()
            .map(|&h| next.url(h))
            .find(|u| !webhooks.allows(u))
        {
            return Err(ApiError::Invalid(format!(
                "Invalid webhook address {url}: not an http(s) URL on an allowed host (see --webhook-allow-hosts)"
            )));
        }
    }
    webhooks.update_settings(|s| *s = next);
    if let Some(t) = token {
        *api.token.write() = Some(t);
    }
    if let Some(p) = admin {
        *api.admin_password.write() = p;
    }
    Ok(json!({}))
}
