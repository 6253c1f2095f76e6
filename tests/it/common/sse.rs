//! A server-sent events client for `/sse`: reads the response body as it streams and splits it
//! into events the way a browser's EventSource does (comments kept apart, so that keep-alives
//! can be awaited).

use super::{http_client, GUARD};
use serde_json::{Map, Value};

/// One event: its type, its id (if the event set one) and its data, parsed as JSON.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub id: Option<String>,
    pub data: Value,
}

impl Event {
    pub fn args(&self) -> &Map<String, Value> {
        self.data.as_object().expect("event data is an object")
    }
}

/// What the stream sent next.
#[derive(Debug)]
pub enum Item {
    Event(Event),
    Comment(String),
    /// A `retry:` block: how long the browser is to wait before reconnecting.
    Retry(u64),
    /// The server ended the response.
    End,
}

pub struct Sse {
    resp: reqwest::Response,
    buf: String,
    /// The id of the last event that had one, as EventSource keeps it.
    pub last_id: Option<String>,
}

/// `GET /sse?query` with `headers` (and `Accept: text/event-stream`, as a browser's EventSource
/// sends it, unless `headers` name another); the response, whatever its status.
pub async fn request(base: &str, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = http_client().get(format!("{base}/sse?{query}"));
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        req = req.header("Accept", "text/event-stream");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    tokio::time::timeout(GUARD, req.send())
        .await
        .expect("hang guard: no response")
        .expect("request")
}

impl Sse {
    /// Opens a stream and asserts it started (200, `text/event-stream`).
    pub async fn open(base: &str, query: &str, headers: &[(&str, &str)]) -> Sse {
        let resp = request(base, query, headers).await;
        assert_eq!(resp.status().as_u16(), 200, "stream refused");
        let h = resp.headers();
        assert_eq!(h["content-type"], "text/event-stream");
        assert_eq!(h["cache-control"], "no-cache");
        // nginx must not buffer it; the TCP connection ends with the stream.
        assert_eq!(h["x-accel-buffering"], "no");
        assert_eq!(h["connection"], "close");
        Sse {
            resp,
            buf: String::new(),
            last_id: None,
        }
    }

    /// Opens a stream through a proxy (which consumes `X-Accel-Buffering` and sets its own
    /// `Connection`): asserts only that it started.
    pub async fn open_proxied(base: &str, query: &str, headers: &[(&str, &str)]) -> Sse {
        let resp = request(base, query, headers).await;
        assert_eq!(resp.status().as_u16(), 200, "stream refused");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            resp,
            buf: String::new(),
            last_id: None,
        }
    }

    /// The next event or comment (or the end), within the hang guard.
    pub async fn next_item(&mut self) -> Item {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(item) = self.parse(&block) {
                    return item;
                }
                continue;
            }
            let chunk = tokio::time::timeout(GUARD, self.resp.chunk())
                .await
                .expect("hang guard: nothing on the stream");
            match chunk {
                Ok(Some(bytes)) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(None) | Err(_) => {
                    assert!(self.buf.trim().is_empty(), "cut event: {:?}", self.buf);
                    return Item::End;
                }
            }
        }
    }

    fn parse(&mut self, block: &str) -> Option<Item> {
        let (mut name, mut id, mut data) = (None, None, Vec::new());
        for line in block.lines().filter(|l| !l.is_empty()) {
            if let Some(c) = line.strip_prefix(':') {
                return Some(Item::Comment(c.trim().to_owned()));
            }
            let (field, value) = line.split_once(": ").unwrap_or((line, ""));
            match field {
                "event" => name = Some(value.to_owned()),
                "id" => id = Some(value.to_owned()),
                "data" => data.push(value),
                "retry" => return Some(Item::Retry(value.parse().expect("retry is a number"))),
                other => panic!("unknown field {other:?} in {block:?}"),
            }
        }
        if id.is_some() {
            self.last_id = id.clone();
        }
        let name = name?;
        let data = serde_json::from_str(&data.join("\n")).expect("data is JSON");
        Some(Item::Event(Event { name, id, data }))
    }

    /// The next event (comments skipped); panics at the end of the stream.
    pub async fn next(&mut self) -> Event {
        loop {
            match self.next_item().await {
                Item::Event(e) => return e,
                Item::Comment(_) | Item::Retry(_) => {}
                Item::End => panic!("the stream ended"),
            }
        }
    }

    /// The next event, which must be a `name` event; returns its args.
    pub async fn expect(&mut self, name: &str) -> Map<String, Value> {
        let e = self.next().await;
        assert_eq!(e.name, name, "expected {name}, got {e:?}");
        e.args().clone()
    }

    /// Reads to the end of the stream, returning the events on the way.
    pub async fn until_end(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self.next_item().await {
                Item::Event(e) => events.push(e),
                Item::Comment(_) | Item::Retry(_) => {}
                Item::End => return events,
            }
        }
    }
}
