//! Making configuration errors point at what the user typed: "did you mean" for a misspelt flag
//! or file key, the line and column of a TOML syntax error, and the `HOOKBOX_*` variable (or the
//! file key) when that is where a bad value came from.

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::ArgMatches;
use std::ffi::OsString;

/// Edit distance between two short strings (for suggestions).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The known name closest to `given`, if it is close enough to be a typo.
pub fn closest<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (distance(given, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A clap error as one line: with its suggestion, and naming the environment variable when the
/// bad value came from one (`args` are the command line's arguments).
pub fn cli_error(e: &clap::Error, command: &clap::Command, args: &[OsString]) -> String {
    let mut msg = super::first_line(&e.to_string())
        .trim_start_matches("error: ")
        .to_owned();
    if let Some(ContextValue::String(s)) = e.get(ContextKind::SuggestedArg) {
        msg.push_str(&format!(" (did you mean '{s}'?)"));
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return msg;
    };
    let long = arg.split_whitespace().next().unwrap_or("");
    let Some(def) = command
        .get_arguments()
        .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == long))
    else {
        return msg;
    };
    let short = def.get_short().map(|c| format!("-{c}"));
    let on_command_line = args.iter().filter_map(|a| a.to_str()).any(|a| {
        a == long
            || a.starts_with(&format!("{long}="))
            || short.as_deref().is_some_and(|s| a.starts_with(s))
    });
    match def.get_env().and_then(|v| v.to_str()) {
        Some(var) if !on_command_line && std::env::var_os(var).is_some() => {
            msg.replace(&format!("'{arg}'"), var)
        }
        _ => msg,
    }
}

/// Where an option's value came from, to name it in an error: the flag, its variable, or its key
/// in the file.
pub fn source_name(
    option: &str,
    matches: &ArgMatches,
    command: &clap::Command,
    file: Option<&std::path::Path>,
) -> String {
    let long = option.trim_start_matches("--");
    let Some(def) = command.get_arguments().find(|a| a.get_long() == Some(long)) else {
        return option.to_owned();
    };
    match matches.value_source(def.get_id().as_str()) {
        Some(ValueSource::CommandLine) => option.to_owned(),
        Some(ValueSource::EnvVariable) => def
            .get_env()
            .and_then(|v| v.to_str())
            .map_or_else(|| option.to_owned(), str::to_owned),
        _ => match file {
            Some(path) => format!("{long} in {}", path.display()),
            None => option.to_owned(),
        },
    }
}

/// A TOML error as one line: where (line and column), what, and a suggestion for an unknown
/// key.
pub fn toml_error(e: &toml::de::Error, text: &str, keys: &[&str]) -> String {
    let mut msg = super::first_line(e.message());
    let unknown = msg
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    if let Some(unknown) = unknown {
        msg = format!("unknown key `{unknown}`");
        if let Some(k) = closest(&unknown, keys.iter().copied()) {
            msg.push_str(&format!(" (did you mean `{k}`?)"));
        }
    }
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        let keys = ["port", "interface", "webhook-timeout"];
        assert_eq!(closest("prot", keys), Some("port"));
        assert_eq!(closest("webhok-timeout", keys), Some("webhook-timeout"));
        assert_eq!(closest("zebra", keys), None);
    }
}
