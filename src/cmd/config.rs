//! `hush server --config relay.toml`: the relay's settings from a file,
//! under the environment and the command line.
//!
//! ```text
//!   argv ──clap──▶ matches ──(--config FILE)──▶ TOML keys = long flag names
//!        each key whose flag came from its default ─▶ appended to argv
//!   argv' ──clap──▶ the settings: flag > HUSH_ variable > file > default
//!   --print-config ─▶ every setting, its value and where it came from
//! ```
//!
//! A key is a flag's long name (`max-file-size`, or `max_file_size`); a
//! value is a string, a number or a boolean (for a switch). A key that is
//! no flag is an error naming the closest one, so a typo never passes for
//! a setting. The file is parsed by clap like the command line, so every
//! value is checked the same way and errors say the same things.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;

/// Flags that make no sense in the file itself.
const NOT_IN_FILE: [&str; 4] = ["config", "print-config", "help", "version"];

/// The command line, with the file's settings appended for every flag the
/// command line and the environment left at its default; and the ids of
/// the flags set from the file.
///
/// # Errors
/// A file that cannot be read or parsed, an unknown key (naming the
/// closest), or a value of the wrong kind.
pub fn layer(
    server: &clap::Command,
    matches: &ArgMatches,
    file: &Path,
    mut argv: Vec<OsString>,
) -> Result<(Vec<OsString>, BTreeSet<String>)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the config file {}", file.display()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        anyhow::anyhow!("{}: not valid TOML: {}", file.display(), e.message())
    })?;
    let known: Vec<&clap::Arg> = server
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| !NOT_IN_FILE.contains(&l)))
        .collect();
    let mut from_file = BTreeSet::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let Some(arg) = known.iter().find(|a| a.get_long() == Some(name.as_str())) else {
            let closest = closest(&name, known.iter().filter_map(|a| a.get_long()));
            bail!(
                "{}: unknown setting '{key}'{}; `hush server --help` lists them",
                file.display(),
                closest.map_or_else(String::new, |c| format!(" (did you mean '{c}'?)"))
            );
        };
        let id = arg.get_id().as_str().to_owned();
        // The command line and the environment win over the file.
        if matches!(
            matches.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let switch = !arg.get_action().takes_values();
        let flag = format!("--{name}");
        match value {
            toml::Value::Boolean(on) if switch => {
                if *on {
                    argv.push(flag.into());
                }
            }
            toml::Value::String(s) if !switch => {
                argv.push(flag.into());
                argv.push(s.into());
            }
            toml::Value::Integer(n) if !switch => {
                argv.push(flag.into());
                argv.push(n.to_string().into());
            }
            toml::Value::Float(x) if !switch => {
                argv.push(flag.into());
                argv.push(x.to_string().into());
            }
            _ => bail!(
                "{}: '{key}' takes {}",
                file.display(),
                if switch {
                    "true or false"
                } else {
                    "a string or a number"
                }
            ),
        }
        from_file.insert(id);
    }
    Ok((argv, from_file))
}

/// `--print-config`: every setting, its value and where it came from, as
/// TOML a config file could hold.
#[must_use]
pub fn describe(
    server: &clap::Command,
    matches: &ArgMatches,
    from_file: &BTreeSet<String>,
) -> String {
    let mut out = String::new();
    for arg in server.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let id = arg.get_id().as_str();
        let value = matches
            .get_raw(id)
            .map(|vals| {
                vals.map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .or_else(|| matches.get_flag_if_switch(arg).map(|on| on.to_string()));
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) if from_file.contains(id) => "file".to_owned(),
            Some(ValueSource::CommandLine) => "flag".to_owned(),
            Some(ValueSource::EnvVariable) => format!(
                "env {}",
                arg.get_env()
                    .map_or_else(String::new, |e| e.to_string_lossy().into_owned())
            ),
            Some(ValueSource::DefaultValue) => "default".to_owned(),
            _ => "unset".to_owned(),
        };
        match value {
            Some(v) => {
                let shown = if v.parse::<i64>().is_ok() || v == "true" || v == "false" {
                    v
                } else {
                    format!("{v:?}")
                };
                out.push_str(&format!("{long} = {shown}    # {source}\n"));
            }
            None => out.push_str(&format!("# {long} is not set    # {source}\n")),
        }
    }
    out
}

/// Reads a switch's value from `matches` (clap keeps it as a bool).
trait SwitchValue {
    fn get_flag_if_switch(&self, arg: &clap::Arg) -> Option<bool>;
}

impl SwitchValue for ArgMatches {
    fn get_flag_if_switch(&self, arg: &clap::Arg) -> Option<bool> {
        if arg.get_action().takes_values() {
            return None;
        }
        self.try_get_one::<bool>(arg.get_id().as_str())
            .ok()
            .flatten()
            .copied()
    }
}

/// The name at the smallest edit distance from `name`, if any is close.
fn closest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (distance(name, n), n))
        .filter(|(d, n)| *d <= n.len().max(3) / 2)
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_is_offered() {
        let names = ["max-file-size", "file-quota", "bind", "idle-timeout"];
        assert_eq!(
            closest("max-filesize", names.into_iter()),
            Some("max-file-size")
        );
        assert_eq!(closest("bnd", names.into_iter()), Some("bind"));
        assert_eq!(closest("completely-else", names.into_iter()), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
