//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`)
//! and the stable-Rust corpus replay (`tests/fuzz_corpus.rs`), both of which include this file
//! with `#[path]`. Each function takes one input, drives hookbox's real parsing code with it, and
//! panics (an `assert!`) when an invariant breaks.

use hookbox::api::{ApiError, Params};
use hookbox::protocol::{
    parse_frame, to_ascii_string, ArgError, ClientFrame, FrameDecoder, FrameError, FrameKind,
    FrameTooLarge, InFrame, ResumeArg, MAX_TICKET_LEN,
};
use hookbox::webhook::decision::{quote, Decision, QUOTE_CHARS};
use hookbox::webhook::json_truthy;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use hookbox::transport::csp::packets::{
    close_packet, decode_packets, encode_packet, ClientPacket, PacketError, Vars,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// JSON equality where floats may differ in their last bits (serde_json's default float parser
/// is not exactly round-trip: hookbox does not enable `float_roundtrip`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) => {
                        (p - q).abs() <= 4.0 * f64::EPSILON * p.abs().max(q.abs())
                    }
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => same_map(x, y),
        _ => a == b,
    }
}

fn same_map(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len()
        && x.iter()
            .zip(y)
            .all(|((k1, v1), (k2, v2))| k1 == k2 && same_json(v1, v2))
}

/// hookbox's JSON text of `v`: ASCII only, and it reads back as the same value.
fn ascii_round_trip(v: &Value) -> String {
    let text = to_ascii_string(v);
    assert!(text.is_ascii(), "non-ASCII output: {text:?}");
    let back: Value = serde_json::from_str(&text).expect("hookbox's own JSON parses");
    assert!(same_json(v, &back), "{v:?} came back as {back:?}");
    text
}

/// A small deterministic generator, seeded from the input: chunk sizes and limits follow the
/// input, so that libFuzzer's mutations explore them too while seeds stay plain text.
struct Rng(u64);

impl Rng {
    fn from(data: &[u8]) -> Rng {
        // FNV-1a
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in data {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `data` cut into chunks of 1..=`max` bytes.
fn chunks<'a>(data: &'a [u8], rng: &mut Rng, max: u64) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.below(max) as usize).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// The first value of each key of an urlencoded form, as hookbox's Web API and CSP read them.
fn first_values(data: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(data) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

// ---------------------------------------------------------------------------------------------
// rtjp_decode: FrameDecoder, parse_frame, FrameKind::parse

const FRAME_ERRORS: [&str; 6] = [
    "Invalid json",
    "Invalid frame (not a list)",
    "Invalid frame length",
    "Invalid frame id (must be int)",
    "Invalid frame name (must be string)",
    "Invalid frame keyword arguments (must be dictionary)",
];

const ARG_ERRORS: [&str; 9] = [
    "Missing cookie_string",
    "Invalid cookie_string (must be string)",
    "Invalid json for payload",
    "Invalid recovery (must be true or false)",
    "channel_name required",
    "name required",
    "Invalid name (must be a non-empty string)",
    "Invalid recover (must be {epoch: string, offset: integer})",
    "Invalid resume (must be true or a ticket string)",
];

const KINDS: [FrameKind; 6] = [
    FrameKind::Connect,
    FrameKind::Subscribe,
    FrameKind::Unsubscribe,
    FrameKind::Publish,
    FrameKind::Message,
    FrameKind::Resume,
];

/// The `\r\n`-terminated lines of `data` that are not blank (the unterminated rest is left out):
/// what the decoder must yield a result for, in order.
fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        if data[i] == b'\r' && data[i + 1] == b'\n' {
            let line = &data[start..i];
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push(line);
            }
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    out
}

/// A frame parsed from `line` is what the line says; an error is one of the original texts.
fn check_frame(line: Option<&[u8]>, result: &Result<InFrame, FrameError>) {
    match result {
        Ok(frame) => {
            // Round trip: the frame, encoded as hookbox encodes, parses back to itself.
            let text = ascii_round_trip(&json!([frame.id, frame.name, frame.args]));
            let again = parse_frame(text.as_bytes()).expect("an encoded frame parses");
            assert_eq!((again.id, &again.name), (frame.id, &frame.name));
            assert!(same_map(&again.args, &frame.args));
            if let Some(kind) = FrameKind::of(&frame.name) {
                assert_eq!(kind.name(), frame.name);
            }
            // Every kind's argument check, whatever the frame's name (more paths per input).
            for kind in KINDS {
                check_args(kind, &frame.args);
            }
        }
        Err(e) => {
            assert!(FRAME_ERRORS.contains(&e.msg), "unknown error {:?}", e.msg);
            if let (Some(id), Some(line)) = (e.id, line) {
                let v: Value = serde_json::from_slice(line).expect("an id implies JSON");
                assert_eq!(v.get(0).and_then(Value::as_i64), Some(id));
            }
        }
    }
}

/// `FrameKind::parse`: what it accepts is what the arguments say.
fn check_args(kind: FrameKind, args: &Map<String, Value>) {
    let text = |key: &str| args.get(key).and_then(Value::as_str);
    let payload_of = |key: &str| match args.get(key) {
        None | Some(Value::Null) => Value::Null,
        Some(v) => serde_json::from_str(v.as_str().expect("accepted payloads are text"))
            .expect("accepted payloads are JSON"),
    };
    match kind.parse(args) {
        Ok(ClientFrame::Connect {
            cookie,
            payload,
            recovery,
            resume,
        }) => {
            assert_eq!(kind, FrameKind::Connect);
            match (resume, args.get("resume")) {
                (None, None | Some(Value::Null | Value::Bool(false))) => {}
                (Some(ResumeArg::Ask), Some(Value::Bool(true))) => {}
                (Some(ResumeArg::Ask), Some(Value::String(t))) => assert!(t.len() > MAX_TICKET_LEN),
                (Some(ResumeArg::Ticket(t)), Some(Value::String(given))) => {
                    assert!(t == *given && t.len() <= MAX_TICKET_LEN)
                }
                (resume, given) => panic!("resume {resume:?} from {given:?}"),
            }
            assert_eq!(Some(cookie.as_str()), text("cookie_string"));
            let parsed: Value = serde_json::from_str(&payload).expect("CONNECT payload is JSON");
            assert!(same_json(&parsed, &payload_of("payload")));
            assert_eq!(recovery, args.get("recovery") == Some(&Value::Bool(true)));
        }
        Ok(ClientFrame::Subscribe { channel, recover }) => {
            assert_eq!(kind, FrameKind::Subscribe);
            assert!(!channel.is_empty());
            assert_eq!(Some(channel.as_str()), text("channel_name"));
            if let Some(p) = recover {
                assert!(p.epoch.len() <= 64);
                assert_eq!(Some(p.epoch.as_str()), args["recover"]["epoch"].as_str());
                assert_eq!(Some(p.offset), args["recover"]["offset"].as_u64());
            } else {
                assert!(args.get("recover").is_none_or(Value::is_null));
            }
        }
        Ok(ClientFrame::Resume) => assert_eq!(kind, FrameKind::Resume),
        Ok(ClientFrame::Unsubscribe { channel }) => {
            assert_eq!(kind, FrameKind::Unsubscribe);
            assert!(!channel.is_empty());
            assert_eq!(Some(channel.as_str()), text("channel_name"));
        }
        Ok(ClientFrame::Publish { channel, payload }) => {
            assert_eq!(kind, FrameKind::Publish);
            assert!(!channel.is_empty());
            assert_eq!(Some(channel.as_str()), text("channel_name"));
            assert!(same_json(&payload, &payload_of("payload")));
            ascii_round_trip(&payload);
        }
        Ok(ClientFrame::Message { recipient, payload }) => {
            assert_eq!(kind, FrameKind::Message);
            assert!(!recipient.is_empty());
            assert_eq!(Some(recipient.as_str()), text("name"));
            assert!(same_json(&payload, &payload_of("payload")));
            ascii_round_trip(&payload);
        }
        Err(ArgError(msg)) => assert!(ARG_ERRORS.contains(&msg), "unknown error {msg:?}"),
    }
}

/// Feeds the chunks to a decoder of the given bound: the frames it yielded until it first
/// refused a push, and whether it did.
fn decode_in(max: usize, parts: &[&[u8]]) -> (Vec<Result<InFrame, FrameError>>, bool) {
    let mut d = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut refused = false;
    for part in parts {
        match d.push(part) {
            Ok(f) if !refused => frames.extend(f),
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, FrameTooLarge(max));
                refused = true;
            }
        }
    }
    (frames, refused)
}

pub fn rtjp_decode(data: &[u8]) {
    let lines = lines(data);
    let model: Vec<_> = lines.iter().map(|line| parse_frame(line)).collect();
    let mut rng = Rng::from(data);
    // However the bytes are split, an unbounded decoder yields the same frames.
    let whole = decode_in(usize::MAX, &[data]);
    assert_eq!(whole, (model.clone(), false));
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(decode_in(usize::MAX, &bytes), (model.clone(), false));
    let parts = chunks(data, &mut rng, 16);
    assert_eq!(decode_in(usize::MAX, &parts), (model.clone(), false));
    // A bounded one yields them too unless it refuses; what it yielded before is a prefix.
    let max = rng.below(256) as usize;
    let (frames, refused) = decode_in(max, &parts);
    if refused {
        assert!(model.starts_with(&frames));
    } else {
        assert_eq!(frames, model);
    }
    // Each frame, and the whole input as one line.
    for (line, result) in lines.into_iter().zip(&model) {
        check_frame(Some(line), result);
    }
    check_frame(Some(data), &parse_frame(data));
}

// ---------------------------------------------------------------------------------------------
// csp_packets: Vars::update, request_body, comet_frame, decode_packets, encode_packet

/// Bytes allowed in what a JSONP wrapper puts around the server's JSON (anything else could
/// turn a response into script of the attacker's choosing).
fn wrapper_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" _$.;()[]\r\n:".contains(&b)
}

fn check_vars(v: &Vars) {
    // JSONP prefixes: empty, or a dotted identifier of at most 128 bytes.
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    for prefix in [&v.rp, &v.bp] {
        assert!(prefix.len() <= 128);
        assert!(
            prefix.is_empty()
                || prefix.split('.').all(|part| {
                    part.bytes().all(ident)
                        && part.bytes().next().is_some_and(|b| !b.is_ascii_digit())
                }),
            "unsafe prefix {prefix:?}"
        );
    }
    assert!(matches!(v.rs.as_str(), "" | ";") && matches!(v.bs.as_str(), "" | ";"));
    assert!(v.p.len() <= 128 && v.p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' '));
    assert!(v.du.is_finite() && v.du >= 0.0);
    assert!(v.ps <= 4096);
    assert!(matches!(
        v.ct,
        "text/html"
            | "text/plain"
            | "text/javascript"
            | "application/javascript"
            | "application/x-javascript"
            | "application/json"
    ));
    assert_eq!(
        v.request_body("\"OK\""),
        format!("{}(\"OK\"){}", v.rp, v.rs)
    );
    for (count, last_id) in [(0, 0), (3, 17)] {
        let (head, tail) = v.comet_frame(count, last_id);
        assert_eq!(head, format!("{}{}{}([", " ".repeat(v.ps), v.p, v.bp));
        let sse = match (v.se, count) {
            (false, _) => String::new(),
            (true, 0) => "\r\n".to_owned(),
            (true, _) => format!("id: {last_id}\r\n\r\n"),
        };
        assert_eq!(tail, format!("]){}{sse}", v.bs));
        assert!(head.bytes().chain(tail.bytes()).all(wrapper_byte));
    }
    let (head, tail) = v.comet_frame(0, 0);
    assert_eq!(v.empty_batch(), head + &tail);
}

/// Invariants of one `decode_packets` call.
fn check_packets(d: &str, last_id: u64) {
    let result = decode_packets(d, last_id);
    let sane = last_id < u64::MAX / 2; // ids cannot get anywhere near u64::MAX in a session
    match &result {
        Ok(packets) => {
            for (i, (id, packet)) in packets.iter().enumerate() {
                if sane {
                    assert_eq!(*id, last_id + 1 + i as u64, "ids continue the sequence");
                } else {
                    assert!(*id >= last_id.saturating_add(1));
                }
                if let ClientPacket::Data(bytes) = packet {
                    // What the session hands on: RTJP bytes for the connection's decoder.
                    let mut decoder = FrameDecoder::new(64 * 1024);
                    if let Ok(frames) = decoder.push(bytes) {
                        for f in &frames {
                            check_frame(None, f);
                        }
                    }
                }
            }
            // Packets already received are skipped: from a later last id, the rest comes out.
            if sane {
                for k in [1, packets.len()] {
                    if k == 0 || k > packets.len() {
                        continue;
                    }
                    let later = decode_packets(d, packets[k - 1].0).expect("a suffix decodes");
                    assert_eq!(later.as_slice(), &packets[k..]);
                }
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match *e {
                PacketError::OutOfOrder { got, expected } => {
                    assert!(!sane || (got > expected && expected > last_id))
                }
                PacketError::BadBase64(id) => assert!(!sane || id > last_id),
                PacketError::NotAList | PacketError::BadPacket(_) => {}
            }
        }
    }
}

/// Input: `<query string>` then optionally `\n<POST body>`; the body becomes the form's `d`, as
/// in hookbox's CSP handler. The key `_last` (the harness's, not the protocol's) gives the
/// session's last client packet id (default 0).
pub fn csp_packets(data: &[u8]) {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let mut form = first_values(query);
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        form.insert("d".to_owned(), String::from_utf8_lossy(body).into_owned());
    }
    let get = |k: &str| form.get(k).cloned();

    // Sticky variables: whatever the request says, only safe values are taken, and taking the
    // same request twice changes nothing more.
    let mut vars = Vars::default();
    check_vars(&vars);
    vars.update(get);
    check_vars(&vars);
    let once = format!("{vars:?}");
    vars.update(get);
    assert_eq!(format!("{vars:?}"), once);
    // A later request with other values keeps the rule.
    let reversed: HashMap<String, String> = form
        .iter()
        .map(|(k, v)| (k.clone(), v.chars().rev().collect()))
        .collect();
    vars.update(|k| reversed.get(k).cloned());
    check_vars(&vars);

    let last_id = form
        .get("_last")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if let Some(d) = form.get("d") {
        check_packets(d, last_id);
    }
    check_packets(&String::from_utf8_lossy(data), last_id);

    // Round trip: a frame the server would send as a packet decodes back on the client side
    // (standard-alphabet base64 too), followed by a close.
    if last_id < u64::MAX / 2 {
        let id = last_id + 1;
        let sent = encode_packet(id, data);
        let close = close_packet(id + 1);
        let d = format!(
            "[{}, {}]",
            std::str::from_utf8(&sent).expect("packets are text"),
            std::str::from_utf8(&close).expect("packets are text")
        );
        let want = vec![
            (id, ClientPacket::Data(data.to_vec())),
            (id + 1, ClientPacket::Close),
        ];
        assert_eq!(decode_packets(&d, last_id), Ok(want));
        use base64::Engine;
        let standard = base64::engine::general_purpose::STANDARD.encode(data);
        let d = format!("[[{id}, 1, \"{standard}\"]]");
        assert_eq!(
            decode_packets(&d, last_id),
            Ok(vec![(id, ClientPacket::Data(data.to_vec()))])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// web_api_form: Params::parse, get, required, payload, options, send_hook

/// The skip lists the Web API methods pass to `options`.
const OPTION_SKIPS: [&[&str]; 3] = [&["channel_name", "send_hook"], &["user_name"], &[]];

/// Input: a query string or urlencoded POST body, as `/web/<method>` receives it.
pub fn web_api_form(data: &[u8]) {
    let params = Params::parse(data);
    let model = first_values(data);

    // The first value of a repeated key wins, and every key is there.
    let mut seen = 0;
    for (k, v) in params.keys() {
        assert_eq!(model.get(k), Some(v));
        seen += 1;
    }
    assert_eq!(seen, model.len());
    for (k, v) in &model {
        assert_eq!(params.get(k), Some(v.as_str()));
    }
    for key in ["payload", "channel_name", "send_hook", "nope"] {
        assert_eq!(params.get(key), model.get(key).map(String::as_str));
    }

    // Required parameters: present and non-empty.
    for key in ["channel_name", "name", "user_name", "key", "channel_names"] {
        match params.required(key) {
            Ok(v) => assert!(!v.is_empty() && model.get(key).map(String::as_str) == Some(v)),
            Err(ApiError::Missing(k)) => {
                assert_eq!(k, key);
                assert!(model.get(key).is_none_or(String::is_empty));
                assert_eq!(ApiError::Missing(k).to_string(), format!("Missing {key}"));
            }
            Err(e) => panic!("required() failed with {e}"),
        }
    }
    assert_eq!(
        params.send_hook(),
        model.get("send_hook").map(String::as_str) == Some("1")
    );

    // The payload: JSON text, null when absent.
    match (params.payload(), model.get("payload")) {
        (Ok(v), None) => assert_eq!(v, Value::Null),
        (Ok(v), Some(text)) => {
            let want: Value = serde_json::from_str(text).expect("accepted payloads are JSON");
            assert!(same_json(&v, &want));
            ascii_round_trip(&v);
        }
        (Err(ApiError::BadPayload), Some(text)) => {
            assert!(serde_json::from_str::<Value>(text).is_err())
        }
        (Err(e), text) => panic!("payload() failed with {e} for {text:?}"),
    }

    // Options: every other key, each JSON; a failure names the first bad key in sorted order.
    for skip in OPTION_SKIPS {
        let mut keys: Vec<&String> = model
            .keys()
            .filter(|k| !skip.contains(&k.as_str()))
            .collect();
        keys.sort();
        let first_bad = keys
            .iter()
            .find(|k| serde_json::from_str::<Value>(&model[k.as_str()]).is_err());
        match params.options(skip) {
            Ok(options) => {
                assert!(first_bad.is_none());
                let got: Vec<&String> = options.keys().collect();
                assert_eq!(got, keys);
                for (k, v) in &options {
                    let want: Value = serde_json::from_str(&model[k]).expect("parsed before");
                    assert!(same_json(v, &want));
                }
                ascii_round_trip(&Value::Object(options));
            }
            Err(ApiError::BadOption(k)) => assert_eq!(Some(&&k), first_bad),
            Err(e) => panic!("options() failed with {e}"),
        }
    }

    // The token check compares digests: equal exactly when the texts are.
    for token in ["security_token", "secret"] {
        if let Some(given) = params.get(token) {
            assert!(hookbox::secret::equal(given, given));
            assert_eq!(hookbox::secret::equal(given, "t"), given == "t");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// webhook_reply: Decision::parse, quote, reply_msg, error_msg

const SHAPE_ERRORS: [&str; 2] = [
    "Invalid response (expected json list of length 2)",
    "Invalid response (expected json object in response index 1)",
];

/// Input: a webhook's `200` body. An input of even length comes with a `Set-Cookie` header.
pub fn webhook_reply(data: &[u8]) {
    // quote: at most QUOTE_CHARS characters of the body, then an ellipsis if it was cut.
    let q = quote(data);
    let text = String::from_utf8_lossy(data);
    let chars = text.chars().count();
    if chars <= QUOTE_CHARS {
        assert_eq!(q, text);
    } else {
        let cut: String = text.chars().take(QUOTE_CHARS).collect();
        assert_eq!(q, cut + "…");
    }
    assert!(q.chars().count() <= QUOTE_CHARS + 1);
    assert!(q.len() <= 4 * QUOTE_CHARS + '…'.len_utf8());

    let cookie = (data.len() % 2 == 0).then(|| "sid=1; Path=/".to_owned());
    match Decision::parse(data, cookie.clone()) {
        Ok(d) => {
            let v: Value = serde_json::from_slice(data).expect("a decision is JSON");
            let items = v.as_array().expect("a decision is a list");
            assert_eq!(items.len(), 2);
            assert_eq!(d.success, json_truthy(&items[0]));
            assert!(same_map(&d.options, items[1].as_object().expect("options")));
            assert_eq!(d.set_cookie, cookie);
            assert!(!d.retryable);
            assert_eq!(
                d.reply_msg().as_deref(),
                d.options.get("msg").and_then(Value::as_str)
            );
            let msg = d.error_msg();
            match d.options.get("error") {
                Some(Value::String(s)) => assert_eq!(&msg, s),
                None | Some(Value::Null) => assert_eq!(msg, "Unauthorized"),
                Some(other) => assert_eq!(msg, ascii_round_trip(other)),
            }
            // Round trip: the decision, written as hookbox writes JSON, reads back the same.
            let text = ascii_round_trip(&json!([d.success, d.options]));
            let again = Decision::parse(text.as_bytes(), None).expect("re-encoded reply parses");
            assert_eq!(again.success, d.success);
            assert!(same_map(&again.options, &d.options));
        }
        Err(bad) => {
            if serde_json::from_slice::<Value>(data).is_err() {
                assert_eq!(bad.public, "Invalid json");
                assert_eq!(bad.detail, format!("Invalid json: {q}"));
                assert!(bad.detail.chars().count() <= "Invalid json: ".len() + QUOTE_CHARS + 1);
            } else {
                assert!(SHAPE_ERRORS.contains(&bad.public.as_str()));
                assert_eq!(bad.detail, bad.public);
            }
        }
    }

    // A denial made by hookbox itself shows its text as it is.
    let failure = Decision::failure(text.clone().into_owned());
    assert!(!failure.success);
    assert_eq!(failure.error_msg(), text);
    assert_eq!(failure.reply_msg(), None);
}
