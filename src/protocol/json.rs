//! The server's JSON dialect: Python `json.dumps` defaults.
//!
//! The original clients hand received text to their JSON parser as a UTF-8 *byte* string, so every
//! non-ASCII character must leave the server as a `\uXXXX` escape (astral characters as surrogate
//! pairs). Separators are `", "` and `": "`, as Python prints them.

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};
use std::io::{self, Write};

/// A `serde_json` formatter that writes ASCII-only output with Python's separators.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut utf16 = [0u16; 2];
        for ch in fragment.chars() {
            if ch.is_ascii() {
                w.write_all(&[ch as u8])?;
            } else {
                for unit in ch.encode_utf16(&mut utf16) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return write!(w, "\\u{byte:04x}"),
        };
        w.write_all(s)
    }
}

/// Appends the ASCII-only, Python-style JSON text of `value` to `out`.
pub fn write_ascii<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut ser = Serializer::with_formatter(out, PythonFormatter);
    // Serializing a `serde_json::Value` or plain data into a Vec cannot fail.
    value
        .serialize(&mut ser)
        .expect("serializing JSON into memory cannot fail");
}

/// The ASCII-only, Python-style JSON text of `value`.
pub fn to_ascii_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(64);
    write_ascii(&mut out, value);
    // The formatter only ever writes ASCII bytes.
    String::from_utf8(out).expect("ASCII output is valid UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_separators_and_ascii_escapes() {
        let v = json!({"msg": "h\u{e9}llo \u{2603}", "n": [1, 2.5, null, true], "e": "\u{1F600}"});
        assert_eq!(
            to_ascii_string(&v),
            r#"{"msg": "h\u00e9llo \u2603", "n": [1, 2.5, null, true], "e": "\ud83d\ude00"}"#
        );
    }

    #[test]
    fn control_characters_escaped_like_python() {
        let v = json!("a\"b\\c\n\r\t\u{1}/");
        assert_eq!(to_ascii_string(&v), r#""a\"b\\c\n\r\t\u0001/""#);
    }
}
