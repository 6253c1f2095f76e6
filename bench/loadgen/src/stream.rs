//! An HTTP streaming subscriber (Pushpin's `Grip-Hold: stream`): one GET whose response body
//! never ends; each publication arrives as a `\r\n`-terminated line of it.

use std::time::Instant;

pub struct StreamLink {
    resp: reqwest::Response,
}

impl StreamLink {
    /// Opens the stream; the subscription holds once the response headers are in.
    pub async fn open(
        http: reqwest::Client,
        url: String,
        deadline: Instant,
    ) -> Result<Self, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = tokio::time::timeout(left, http.get(url).send())
            .await
            .map_err(|_| "stream: timeout".to_string())?
            .map_err(|e| format!("stream: {e}"))?;
        if resp.status().as_u16() != 200 {
            return Err(format!("stream: HTTP {}", resp.status()));
        }
        Ok(StreamLink { resp })
    }

    /// The next chunk of the body; Err once the server ended it.
    pub async fn next(&mut self) -> Result<Vec<u8>, String> {
        match self.resp.chunk().await {
            Ok(Some(b)) => Ok(b.to_vec()),
            Ok(None) => Err("eof".into()),
            Err(e) => Err(format!("read: {e}")),
        }
    }
}
