//! Properties of the RTJP encoder and decoder over random frames: whatever the frame (any
//! arguments: nested lists and objects, any Unicode text, big integers) and however the bytes are
//! cut into reads, the frames hookbox's encoder writes decode back to themselves, in order; and
//! the encoder writes ASCII only, one frame per `\r\n`-ended line.

use hookbox::protocol::{to_ascii_string, FrameDecoder};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON values without floats (whose text form is not what this checks).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn frame() -> impl Strategy<Value = (i64, String, Map<String, Value>)> {
    (
        any::<i64>(),
        "[A-Z_]{1,12}",
        prop::collection::btree_map(any::<String>(), json_value(), 0..5),
    )
        .prop_map(|(id, name, args)| (id, name, args.into_iter().collect()))
}

proptest! {
    #[test]
    fn encoded_frames_decode_to_themselves_whatever_the_reads(
        frames in prop::collection::vec(frame(), 1..8),
        cuts in prop::collection::vec(1usize..64, 1..32),
    ) {
        let mut wire = Vec::new();
        for (id, name, args) in &frames {
            let line = to_ascii_string(&(id, name, args));
            prop_assert!(line.is_ascii());
            prop_assert!(!line.contains('\n') && !line.contains('\r'));
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        let mut decoder = FrameDecoder::new(wire.len());
        let mut decoded = Vec::new();
        let mut rest = &wire[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*cut.next().unwrap()).min(rest.len());
            let (now, later) = rest.split_at(n);
            for f in decoder.push(now).expect("within the bound") {
                let f = f.expect("a valid frame");
                decoded.push((f.id, f.name, f.args));
            }
            rest = later;
        }
        prop_assert_eq!(decoded, frames);
    }
}
