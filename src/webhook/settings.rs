//! Where hooks are sent. These settings can change at run time (`/web/set_config`).

use serde::{Deserialize, Serialize};

/// The eight webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Connect,
    Disconnect,
    CreateChannel,
    DestroyChannel,
    Subscribe,
    Unsubscribe,
    Publish,
    Message,
}

impl Hook {
    pub const ALL: [Hook; 8] = [
        Hook::Connect,
        Hook::Disconnect,
        Hook::CreateChannel,
        Hook::DestroyChannel,
        Hook::Subscribe,
        Hook::Unsubscribe,
        Hook::Publish,
        Hook::Message,
    ];

    /// The `action` form field, and the default path segment.
    pub fn action(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Disconnect => "disconnect",
            Hook::CreateChannel => "create_channel",
            Hook::DestroyChannel => "destroy_channel",
            Hook::Subscribe => "subscribe",
            Hook::Unsubscribe => "unsubscribe",
            Hook::Publish => "publish",
            Hook::Message => "message",
        }
    }
}

/// How webhook bodies are encoded (`--webhook-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookFormat {
    /// `application/x-www-form-urlencoded`, text values: the original's.
    #[default]
    Form,
    /// `application/json`: the same fields, with their types.
    Json,
}

/// Webhook addressing and identity, as given by `--cb*` and `-s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSettings {
    pub cbhost: String,
    pub cbport: u16,
    pub cbpath: String,
    pub cbhttps: bool,
    pub cbtrailingslash: bool,
    pub cbsendhookboxversion: bool,
    /// Per-hook path segment, indexed like [`Hook::ALL`].
    pub cb_paths: [String; 8],
    pub cb_single_url: Option<String>,
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub format: WebhookFormat,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            cbhost: "127.0.0.1".to_owned(),
            cbport: 80,
            cbpath: "/hookbox".to_owned(),
            cbhttps: false,
            cbtrailingslash: false,
            cbsendhookboxversion: false,
            cb_paths: Hook::ALL.map(|h| h.action().to_owned()),
            cb_single_url: None,
            webhook_secret: None,
            format: WebhookFormat::Form,
        }
    }
}

impl WebhookSettings {
    /// The full URL of `hook`.
    pub fn url(&self, hook: Hook) -> String {
        if let Some(url) = &self.cb_single_url {
            return url.clone();
        }
        let scheme = if self.cbhttps { "https" } else { "http" };
        let name = &self.cb_paths[hook as usize];
        let mut url = format!(
            "{scheme}://{}:{}{}/{}",
            self.cbhost, self.cbport, self.cbpath, name
        );
        if self.cbtrailingslash && !url.ends_with('/') {
            url.push('/');
        }
        url
    }

    /// The origins (`scheme://host[:port]`, as browsers write `Origin`) of the web app these
    /// settings send webhooks to: where its pages are, unless `--allowed-origins` says otherwise.
    pub fn origins(&self) -> Vec<String> {
        url::Url::parse(&self.url(Hook::Connect))
            .ok()
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null")
            .into_iter()
            .collect()
    }

    /// The hosts (with ports) these settings send webhooks to.
    pub fn targets(&self) -> Vec<crate::net::HostRule> {
        let mut urls = vec![self.url(Hook::Connect)];
        if self.cb_single_url.is_some() {
            // The single URL replaces the cb* address, which may come back through set_config.
            let mut plain = self.clone();
            plain.cb_single_url = None;
            urls.push(plain.url(Hook::Connect));
        }
        urls.iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .filter_map(|u| crate::net::HostRule::of_url(&u))
            .collect()
    }

    pub fn cb_path_mut(&mut self, hook: Hook) -> &mut String {
        &mut self.cb_paths[hook as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_building() {
        let mut s = WebhookSettings::default();
        assert_eq!(s.url(Hook::Connect), "http://127.0.0.1:80/hookbox/connect");
        s.cbpath = String::new();
        s.cbhttps = true;
        s.cbtrailingslash = true;
        *s.cb_path_mut(Hook::CreateChannel) = "create.php".into();
        assert_eq!(
            s.url(Hook::CreateChannel),
            "https://127.0.0.1:80/create.php/"
        );
        s.cb_single_url = Some("https://app.example/hooks?x=1".into());
        assert_eq!(s.url(Hook::Publish), "https://app.example/hooks?x=1");
    }
}
