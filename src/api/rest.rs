//! The 0.3.3 dialect at `/rest/<method>` (spec §12), for web apps written against HookBox 0.3.3
//! such as django-hookbox 0.3.
//!
//! It shares the 0.3.4a1 methods where 0.3.3 behaved the same. The differences: `publish` creates
//! a missing channel through the create_channel webhook (0.3.4a1 refuses), and `create_channel`,
//! `destroy_channel` and `disconnect` answer `Not Implemented`, as 0.3.3 did. Methods 0.3.3 did
//! not have are unknown here (`404 Not Found`).

use super::methods::{self, boxed, publish_one};
use super::{ApiError, ApiState, Call, Outcome, Params};
use crate::hub::{raw, HubError, Origin};
use serde_json::json;
use std::sync::Arc;

pub fn lookup(name: &str) -> Option<Call> {
    Some(match name {
        "publish" => boxed!(publish),
        "subscribe" => boxed!(subscribe),
        "unsubscribe" => boxed!(unsubscribe),
        "set_channel_options" => boxed!(set_channel_options),
        "get_channel_info" => boxed!(get_channel_info),
        "state_set_key" => boxed!(state_set_key),
        "state_delete_key" => boxed!(state_delete_key),
        "set_config" => boxed!(set_config),
        "create_channel" | "destroy_channel" | "disconnect" => boxed!(not_implemented),
        _ => return None,
    })
}

use methods::{
    get_channel_info, set_channel_options, set_config, state_delete_key, state_set_key, subscribe,
    unsubscribe,
};

/// Publishes to a channel, creating it first through the create_channel webhook (no cookie) if it
/// does not exist. A refusal reports the web app's own `msg` when its reply has one.
async fn publish(api: Arc<ApiState>, params: Params) -> Outcome {
    let channel = params.required("channel_name")?;
    let payload = raw(&params.payload()?);
    // A channel destroyed between its creation and the publish is created again, once.
    let mut retried = false;
    loop {
        api.hub
            .ensure_channel(channel, &Origin::default())
            .await
            .map_err(refusal)?;
        match publish_one(&api, &params, channel, &payload).await {
            Err(ApiError::Hub(HubError::NoChannel(_))) if !retried => retried = true,
            other => return other.map(|()| json!({})),
        }
    }
}

fn refusal(e: HubError) -> ApiError {
    match e {
        HubError::ChannelRefused {
            reply_msg: Some(msg),
            ..
        } => ApiError::Invalid(msg),
        other => other.into(),
    }
}

async fn not_implemented(_: Arc<ApiState>, _: Params) -> Outcome {
    Err(ApiError::Invalid("Not Implemented".to_owned()))
}
