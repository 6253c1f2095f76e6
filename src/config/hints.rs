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

/// A flag taken as another flag's value, as in `--webhook-secret -p 0` (a forgotten value): the
/// error to give, if `args` (the command line, program name first) hold one. A value that only
/// starts with `-` (`-s -secret`, as optparse allowed) is fine, and so is `--webhook-secret=-p`,
/// which says what it means.
pub fn flag_as_value(command: &clap::Command, args: &[OsString]) -> Option<String> {
    let mut flags: Vec<String> = vec![
        "-h".into(),
        "--help".into(),
        "-V".into(),
        "--version".into(),
    ];
    let mut takes_value: Vec<String> = Vec::new();
    for a in command.get_arguments().filter(|a| !a.is_positional()) {
        let mut names: Vec<String> = a.get_short().map(|c| format!("-{c}")).into_iter().collect();
        names.extend(a.get_long().map(|l| format!("--{l}")));
        names.extend(
            a.get_all_aliases()
                .into_iter()
                .flatten()
                .map(|l| format!("--{l}")),
        );
        if a.get_action().takes_values() && !a.is_require_equals_set() {
            takes_value.extend(names.iter().cloned());
        }
        flags.extend(names);
    }
    let args: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let (arg, next) = (args[i], args[i + 1]);
        if arg == "--" {
            break;
        }
        if takes_value.iter().any(|f| f == arg) {
            let next_name = next.split('=').next().unwrap_or(next);
            if flags.iter().any(|f| f == next_name) {
                return Some(format!(
                    "{arg} needs a value, but the next argument is the flag {next} \
                     (write {arg}={next} if that is the value)"
                ));
            }
            i += 1;
        }
        i += 1;
    }
    None
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
    fn a_flag_is_not_taken_as_a_value() {
        use clap::CommandFactory;
        let command = super::super::Options::command();
        let check = |args: &[&str]| {
            let args: Vec<OsString> = std::iter::once("hookbox")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            flag_as_value(&command, &args)
        };
        let e = check(&["--demo", "--webhook-secret", "-p", "0"]).unwrap();
        assert!(e.contains("--webhook-secret needs a value") && e.contains("--webhook-secret=-p"));
        assert!(check(&["-s", "--port=9"]).is_some());
        assert!(check(&["-r", "--rest-secret", "x"]).is_some());
        // Values that merely start with a dash, and explicit `=` values, are values.
        assert!(check(&["-s", "-secret", "--cbport", "-5"]).is_none());
        assert!(check(&["--webhook-secret=-p", "-p", "0"]).is_none());
        // A switch takes no value: what follows it is the next flag.
        assert!(check(&["--demo", "-p", "0", "--cbhttps", "-i", "x"]).is_none());
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let keys = ["port", "interface", "webhook-timeout"];
        assert_eq!(closest("prot", keys), Some("port"));
        assert_eq!(closest("webhok-timeout", keys), Some("webhook-timeout"));
        assert_eq!(closest("zebra", keys), None);
    }
}
