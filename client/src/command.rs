//! What the user types: one input line parsed into text to send or a slash
//! command.
//!
//! - An empty or whitespace-only line (any Unicode whitespace) is ignored.
//! - A line starting with `//` sends the rest with a single leading `/`
//!   (`//etc` sends `/etc`).
//! - Any other line starting with `/` is a command; command names are
//!   case-insensitive (`/NICK` works).
//! - Everything else is sent exactly as typed (leading and trailing spaces
//!   kept), minus a trailing line ending.

use hush_room::{NickFlaw, check_nick};
use thiserror::Error;

/// One line of user input, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text to send to the room (already checked non-empty after trimming; kept exactly as
    /// typed except that a trailing "\r" or "\n" is removed).
    Text(String),
    /// A slash command.
    Command(Command),
}

/// A slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/nick NAME`: change our nickname (already validated by [`validate_nick`]).
    Nick(String),
    /// `/me ACTION`: send an action, shown as `* nick ACTION` (already
    /// checked against [`MAX_TEXT_BYTES`]).
    Me(String),
    /// `/members`: list the room's members.
    Members,
    /// `/whois NICK|FINGERPRINT`: the argument as typed; resolution happens elsewhere.
    Whois(String),
    /// `/verify [NICK|FINGERPRINT]`: the room fingerprint, or the safety
    /// number shared with one member.
    Verify(Option<String>),
    /// `/verify NICK|SHORTID|FINGERPRINT --mark`: record that the key now
    /// using that name is the person's (the user compared the safety
    /// number `/verify NICK` showed).
    Mark(String),
    /// `/verify NICK|SHORTID|FINGERPRINT --unmark`: remove that mark.
    Unmark(String),
    /// `/invite FINGERPRINT|NICK`: let someone into an invite-only room
    /// (its creator only).
    Invite(String),
    /// `/kick FINGERPRINT|NICK`: remove a member (the creator only).
    Kick(String),
    /// `/code`: make a one-time invitation code for the room.
    Code,
    /// `/send PATH`: offer a file to the room (sealed, through the relay).
    Send(std::path::PathBuf),
    /// `/files`: the files offered in the room, this run and earlier ones.
    Files,
    /// `/save ID [DIR|PATH]`: fetch, verify and save an offered file.
    Save(String, Option<std::path::PathBuf>),
    /// `/join ROOM`: open a room (joining it if we are not a member), or
    /// switch to it if it is open already.
    Join(hush_proto::RoomName),
    /// `/part`: close the current room's window, staying a member.
    Part,
    /// `/dm FINGERPRINT|SHORTID`: open the two-person invite-only room
    /// shared with that identity.
    Dm(String),
    /// `/leave`: leave the current room for good.
    Leave,
    /// `/quit`: disconnect and exit.
    Quit,
    /// `/help`: show [`HELP`].
    Help,
}

/// Why an input line was refused. Every message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// A `/word` that is not a command (the word as typed, without the `/`).
    #[error(
        "unknown command /{0}: type /help for the list, or start the line with // to send text beginning with /"
    )]
    Unknown(String),
    /// A command that needs an argument was given none.
    #[error("/{command} needs an argument: usage: {usage}")]
    MissingArgument {
        /// The command name, without the `/`.
        command: &'static str,
        /// How to use it.
        usage: &'static str,
    },
    /// A command was given more arguments than it takes.
    #[error("too many arguments to /{command}: usage: {usage}")]
    TooManyArguments {
        /// The command name, without the `/`.
        command: &'static str,
        /// How to use it.
        usage: &'static str,
    },
    /// An option a command does not take (`/verify bob --frob`).
    #[error("/{command} has no option {option}: usage: {usage}")]
    UnknownOption {
        /// The command name, without the `/`.
        command: &'static str,
        /// The option as typed.
        option: String,
        /// How to use it.
        usage: &'static str,
    },
    /// Not a room name.
    #[error(
        "invalid room name {0}: use 1 to 64 letters, digits, '-', '_' or '.' (a leading # is fine), not starting with '.'"
    )]
    BadRoom(String),
    /// The nickname is not acceptable; the reason says what is allowed.
    #[error("invalid nickname: {0}")]
    BadNick(String),
    /// The text is longer than [`MAX_TEXT_BYTES`].
    #[error(
        "message too long: {len} bytes, the limit is {max} bytes; split it into several messages"
    )]
    TooLong {
        /// The limit, in bytes.
        max: usize,
        /// The refused text's length, in bytes.
        len: usize,
    },
}

pub use hush_room::MAX_NICK_CHARS;

/// Longest text message a user may send, in bytes (8 KiB); longer lines are
/// refused by [`parse_line`] with [`CommandError::TooLong`].
pub const MAX_TEXT_BYTES: usize = 8192;

/// The `/help` text: one line per command with a short description.
pub const HELP: &str = "\
/nick NAME               change your nickname (1 to 32 characters, no spaces)
/me ACTION               send an action, shown as * yourname ACTION
/members (/names)        list the room's members with their short ids, marking you and who is offline
/whois NICK|FINGERPRINT  show who uses a nickname, or the nickname of a fingerprint
/verify                  show the room fingerprint: members who see the same one share the same room
/verify NICK|FINGERPRINT show your safety number with one member, to compare out of band
/verify NICK --mark      after comparing it: remember that key as verified (--unmark forgets it)
/invite FINGERPRINT|NICK let someone into an invite-only room (its creator only)
/kick FINGERPRINT|NICK   remove a member; the room is rekeyed without them (the creator only)
/code                    make a one-time code (10 minutes) that lets one person in and proves both your keys
/join ROOM               open a room (joining it if need be), or switch to it
/part                    close this room's window; you stay a member and /join reopens it
/dm FINGERPRINT|SHORTID  open the private two-person room you share with someone
/send PATH               offer a file to the room, sealed (the relay never sees it)
/files                   list the files offered in the room
/save ID [FOLDER|PATH]   fetch, verify and save an offered file
/leave                   leave this room for good (you must be admitted again to come back); the last room closed exits
/quit (/exit, /q)        disconnect and exit; you stay a member of every room and are in at once next time
/help                    show this list
//text                   send a line that begins with /";

const USAGE_NICK: &str = "/nick NAME";
const USAGE_JOIN: &str = "/join ROOM";

/// A room name as people type it: a leading `#` is dropped, and names
/// are folded to lower case, so `#Lobby` and `lobby` are one room (the
/// protocol itself is case-sensitive; hush's client always folds, for
/// `--room` and `/join` alike: docs/CLIENT.md).
///
/// # Errors
/// [`CommandError::BadRoom`] for anything that is not a room name.
pub fn parse_room(typed: &str) -> Result<hush_proto::RoomName, CommandError> {
    let trimmed = typed.trim();
    let bare = trimmed.strip_prefix('#').unwrap_or(trimmed);
    hush_proto::RoomName::new(&bare.to_ascii_lowercase())
        .map_err(|_| CommandError::BadRoom(trimmed.to_owned()))
}
const USAGE_WHOIS: &str = "/whois NICK|FINGERPRINT";
/// How `/verify` is used.
const USAGE_VERIFY: &str = "/verify [NICK|SHORTID|FINGERPRINT [--mark|--unmark]]";

/// What nicknames may look like, appended to every [`CommandError::BadNick`].
const NICK_RULES: &str = "use 1 to 32 characters with no spaces, parentheses, control or invisible characters, not starting with /";

/// Validates a nickname and returns it trimmed: the rules of
/// [`hush_room::check_nick`], which every receiver applies too.
///
/// # Errors
/// [`CommandError::BadNick`], whose reason says what is allowed.
pub fn validate_nick(s: &str) -> Result<String, CommandError> {
    check_nick(s).map_err(|flaw| {
        let why = match flaw {
            NickFlaw::Empty => "it is empty".to_owned(),
            NickFlaw::TooLong { chars } => format!("it is {chars} characters long"),
            NickFlaw::StartsWithSlash => "it starts with /".to_owned(),
            NickFlaw::Whitespace => "it contains a space".to_owned(),
            NickFlaw::Control => "it contains a control character".to_owned(),
            NickFlaw::Invisible => {
                "it contains an invisible or text-direction character".to_owned()
            }
            NickFlaw::Parenthesis => {
                "it contains a parenthesis (names are shown as name (shortid))".to_owned()
            }
        };
        CommandError::BadNick(format!("{why}; {NICK_RULES}"))
    })
}

/// Text to send, after the length check.
fn text(s: &str) -> Result<Option<Input>, CommandError> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(CommandError::TooLong {
            max: MAX_TEXT_BYTES,
            len: s.len(),
        });
    }
    Ok(Some(Input::Text(s.to_owned())))
}

/// A path as typed: a leading `~/` is the home folder.
fn expand_home(typed: &str) -> std::path::PathBuf {
    match (typed.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => std::path::PathBuf::from(typed),
    }
}

/// Refuses arguments to a command that takes none.
fn no_args(
    args: &str,
    command: &'static str,
    usage: &'static str,
    cmd: Command,
) -> Result<Option<Input>, CommandError> {
    if args.is_empty() {
        Ok(Some(Input::Command(cmd)))
    } else {
        Err(CommandError::TooManyArguments { command, usage })
    }
}

/// `/verify`'s arguments: nothing, one name, or one name and `--mark`
/// or `--unmark` (either order).
fn parse_verify(args: &str) -> Result<Option<Input>, CommandError> {
    let (command, usage) = ("verify", USAGE_VERIFY);
    let mut who = None;
    let mut option: Option<&str> = None;
    for word in args.split_whitespace() {
        if word.starts_with("--") {
            if !matches!(word, "--mark" | "--unmark") {
                return Err(CommandError::UnknownOption {
                    command,
                    option: word.to_owned(),
                    usage,
                });
            }
            if option.is_some() {
                return Err(CommandError::TooManyArguments { command, usage });
            }
            option = Some(word);
        } else if who.replace(word).is_some() {
            return Err(CommandError::TooManyArguments { command, usage });
        }
    }
    let who = who.map(str::to_owned);
    let cmd = match (option, who) {
        (None, who) => Command::Verify(who),
        (Some(_), None) => return Err(CommandError::MissingArgument { command, usage }),
        (Some("--mark"), Some(who)) => Command::Mark(who),
        (Some(_), Some(who)) => Command::Unmark(who),
    };
    Ok(Some(Input::Command(cmd)))
}

/// Parses one input line.
///
/// Returns `Ok(None)` for lines that must not be sent: empty or
/// whitespace-only (spaces, tabs, any Unicode whitespace). A trailing
/// `"\n"`, `"\r\n"` or `"\r"` is removed first. A line starting with `//`
/// sends the rest starting with a single `/` (escape for text that starts
/// with a slash). Any other line starting with `/` is a command, its name
/// case-insensitive. Anything else is [`Input::Text`], kept as typed.
///
/// A message of several lines (only the terminal app makes them: Alt-Enter
/// or a paste) is always text, kept exactly as typed, even when its first
/// line begins with `/`: commands are one line, and pasted text such as
/// `/etc/hosts` plus its contents must not run as one.
///
/// # Errors
/// - [`CommandError::Unknown`] for a `/word` that is not a command;
/// - [`CommandError::MissingArgument`] for `/nick` or `/whois` alone;
/// - [`CommandError::TooManyArguments`] for arguments to `/members`,
///   `/leave`, `/quit`, `/help`, or more than one to `/whois`;
/// - [`CommandError::UnknownOption`] for a `/verify` option other than
///   `--mark` or `--unmark` (and `MissingArgument` for either without a name);
/// - [`CommandError::BadNick`] for a `/nick` argument [`validate_nick`] refuses;
/// - [`CommandError::TooLong`] for text longer than [`MAX_TEXT_BYTES`].
pub fn parse_line(line: &str) -> Result<Option<Input>, CommandError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(None);
    }
    if line.contains('\n') {
        return text(line);
    }
    if line.starts_with("//") {
        // Drop the first '/' of the escape, keep the second.
        return text(&line[1..]);
    }
    let Some(body) = line.strip_prefix('/') else {
        return text(line);
    };
    let (name, args) = match body.find(char::is_whitespace) {
        Some(i) => (&body[..i], body[i..].trim()),
        None => (body, ""),
    };
    match name.to_lowercase().as_str() {
        "nick" => {
            if args.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "nick",
                    usage: USAGE_NICK,
                });
            }
            let nick = validate_nick(args)?;
            Ok(Some(Input::Command(Command::Nick(nick))))
        }
        "whois" => {
            if args.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "whois",
                    usage: USAGE_WHOIS,
                });
            }
            if args.contains(char::is_whitespace) {
                return Err(CommandError::TooManyArguments {
                    command: "whois",
                    usage: USAGE_WHOIS,
                });
            }
            Ok(Some(Input::Command(Command::Whois(args.to_owned()))))
        }
        "verify" => parse_verify(args),
        "invite" | "kick" => {
            let (command, usage): (&'static str, &'static str) =
                if name.eq_ignore_ascii_case("invite") {
                    ("invite", "/invite FINGERPRINT|NICK")
                } else {
                    ("kick", "/kick FINGERPRINT|NICK")
                };
            if args.is_empty() {
                return Err(CommandError::MissingArgument { command, usage });
            }
            if args.contains(char::is_whitespace) {
                return Err(CommandError::TooManyArguments { command, usage });
            }
            Ok(Some(Input::Command(if command == "invite" {
                Command::Invite(args.to_owned())
            } else {
                Command::Kick(args.to_owned())
            })))
        }
        "join" => {
            if args.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "join",
                    usage: USAGE_JOIN,
                });
            }
            if args.contains(char::is_whitespace) {
                return Err(CommandError::TooManyArguments {
                    command: "join",
                    usage: USAGE_JOIN,
                });
            }
            Ok(Some(Input::Command(Command::Join(parse_room(args)?))))
        }
        "part" => no_args(args, "part", "/part", Command::Part),
        "code" => no_args(args, "code", "/code", Command::Code),
        "send" => {
            if args.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "send",
                    usage: "/send PATH",
                });
            }
            // The rest of the line is the path: names may hold spaces.
            Ok(Some(Input::Command(Command::Send(expand_home(args)))))
        }
        "files" => no_args(args, "files", "/files", Command::Files),
        "save" => {
            let usage = "/save ID [FOLDER|PATH]";
            let mut parts = args.splitn(2, char::is_whitespace);
            let Some(id) = parts.next().filter(|s| !s.is_empty()) else {
                return Err(CommandError::MissingArgument {
                    command: "save",
                    usage,
                });
            };
            let to = parts
                .next()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(expand_home);
            Ok(Some(Input::Command(Command::Save(id.to_owned(), to))))
        }
        "dm" => {
            let usage = "/dm FINGERPRINT|SHORTID";
            if args.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "dm",
                    usage,
                });
            }
            if args.contains(char::is_whitespace) {
                return Err(CommandError::TooManyArguments {
                    command: "dm",
                    usage,
                });
            }
            Ok(Some(Input::Command(Command::Dm(args.to_owned()))))
        }
        "me" => {
            if args.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "me",
                    usage: "/me ACTION",
                });
            }
            match text(args)? {
                Some(Input::Text(t)) => Ok(Some(Input::Command(Command::Me(t)))),
                other => Ok(other),
            }
        }
        // Aliases people bring from IRC clients (usability F16).
        "members" | "names" => no_args(args, "members", "/members", Command::Members),
        "leave" => no_args(args, "leave", "/leave", Command::Leave),
        "quit" | "exit" | "q" => no_args(args, "quit", "/quit", Command::Quit),
        "help" => no_args(args, "help", "/help", Command::Help),
        _ => Err(CommandError::Unknown(name.to_owned())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        match parse_line(line) {
            Ok(Some(Input::Command(c))) => c,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn txt(line: &str) -> String {
        match parse_line(line) {
            Ok(Some(Input::Text(t))) => t,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn blank_lines_are_ignored() {
        for line in [
            "",
            "   ",
            "\t",
            "\u{3000}",
            " \t\u{a0}\u{2003} ",
            "\n",
            "\r\n",
            "  \r\n",
        ] {
            assert_eq!(parse_line(line), Ok(None), "{line:?}");
        }
    }

    #[test]
    fn text_is_kept_as_typed() {
        assert_eq!(txt("hi"), "hi");
        assert_eq!(txt("  hi  "), "  hi  ");
        assert_eq!(txt("hi\n"), "hi");
        assert_eq!(txt("hi\r\n"), "hi");
        assert_eq!(txt("hi\r"), "hi");
        assert_eq!(txt("a\tb 👋 日本"), "a\tb 👋 日本");
        assert_eq!(txt("  /nick bob"), "  /nick bob");
        assert_eq!(txt("//etc"), "/etc");
        assert_eq!(txt("//"), "/");
        assert_eq!(txt("// x"), "/ x");
        assert_eq!(txt("///"), "//");
    }

    #[test]
    fn commands() {
        assert_eq!(cmd("/nick bob"), Command::Nick("bob".into()));
        assert_eq!(cmd("/NICK bob"), Command::Nick("bob".into()));
        assert_eq!(cmd("/Nick   bob  \n"), Command::Nick("bob".into()));
        assert_eq!(cmd("/members"), Command::Members);
        assert_eq!(cmd("/Members "), Command::Members);
        assert_eq!(cmd("/whois bob"), Command::Whois("bob".into()));
        assert_eq!(cmd("/verify"), Command::Verify(None));
        assert_eq!(cmd("/invite bob"), Command::Invite("bob".into()));
        assert_eq!(cmd("/code"), Command::Code);
        assert!(parse_line("/code 7-crossover-clockwork").is_err());
        assert_eq!(cmd("/Kick bob"), Command::Kick("bob".into()));
        assert!(parse_line("/kick").is_err());
        assert!(parse_line("/invite a b").is_err());
        assert_eq!(cmd("/VERIFY bob"), Command::Verify(Some("bob".into())));
        assert!(parse_line("/verify bob carol").is_err());
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        assert_eq!(cmd(&format!("/whois {fp}")), Command::Whois(fp.into()));
        assert_eq!(cmd("/leave"), Command::Leave);
        assert_eq!(cmd("/quit"), Command::Quit);
        assert_eq!(cmd("/QUIT\r\n"), Command::Quit);
        assert_eq!(cmd("/help"), Command::Help);
        assert_eq!(cmd("/names"), Command::Members);
        assert_eq!(
            cmd("/send /tmp/a file.txt"),
            Command::Send("/tmp/a file.txt".into())
        );
        assert!(parse_line("/send").is_err());
        assert_eq!(cmd("/files"), Command::Files);
        assert_eq!(
            cmd("/save 3f2a1b9c"),
            Command::Save("3f2a1b9c".into(), None)
        );
        assert_eq!(
            cmd("/save 3f2a1b9c /tmp/my dir"),
            Command::Save("3f2a1b9c".into(), Some("/tmp/my dir".into()))
        );
        assert!(parse_line("/save").is_err());
        assert_eq!(cmd("/exit"), Command::Quit);
        assert_eq!(cmd("/Q"), Command::Quit);
    }

    #[test]
    fn verify_marks_and_unmarks_a_name_short_id_or_fingerprint() {
        assert_eq!(cmd("/verify bob --mark"), Command::Mark("bob".into()));
        assert_eq!(cmd("/verify --mark bob"), Command::Mark("bob".into()));
        assert_eq!(cmd("/VERIFY  bob   --mark "), Command::Mark("bob".into()));
        assert_eq!(cmd("/verify bob --unmark"), Command::Unmark("bob".into()));
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        assert_eq!(
            cmd(&format!("/verify {fp} --mark")),
            Command::Mark(fp.into())
        );
        assert_eq!(
            cmd("/verify 47DEQpj8 --mark"),
            Command::Mark("47DEQpj8".into())
        );
        // Without an option it is still the safety number.
        assert_eq!(cmd("/verify bob"), Command::Verify(Some("bob".into())));
        let e = parse_line("/verify --mark").unwrap_err();
        assert_eq!(
            e,
            CommandError::MissingArgument {
                command: "verify",
                usage: USAGE_VERIFY
            }
        );
        assert!(e.to_string().contains("--mark|--unmark"), "{e}");
        for line in [
            "/verify bob --mark --unmark",
            "/verify bob --mark --mark",
            "/verify bob carol --mark",
        ] {
            assert!(
                matches!(
                    parse_line(line),
                    Err(CommandError::TooManyArguments {
                        command: "verify",
                        ..
                    })
                ),
                "{line}"
            );
        }
        let e = parse_line("/verify bob --marked").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/verify has no option --marked: usage: /verify [NICK|SHORTID|FINGERPRINT [--mark|--unmark]]"
        );
    }

    #[test]
    fn a_message_of_several_lines_is_text_even_after_a_slash() {
        assert_eq!(
            txt("/etc/hosts\n127.0.0.1 localhost"),
            "/etc/hosts\n127.0.0.1 localhost"
        );
        assert_eq!(txt("/nick a\nb"), "/nick a\nb");
        assert_eq!(txt("//x\ny"), "//x\ny");
        assert!(matches!(
            parse_line(&format!("a\n{}", "b".repeat(MAX_TEXT_BYTES))),
            Err(CommandError::TooLong { .. })
        ));
    }

    #[test]
    fn missing_arguments() {
        for line in ["/nick", "/nick   ", "/NICK\n"] {
            let e = parse_line(line).unwrap_err();
            assert_eq!(
                e,
                CommandError::MissingArgument {
                    command: "nick",
                    usage: "/nick NAME"
                }
            );
            assert!(e.to_string().contains("/nick NAME"), "{e}");
        }
        let e = parse_line("/whois").unwrap_err();
        assert!(matches!(
            e,
            CommandError::MissingArgument {
                command: "whois",
                ..
            }
        ));
        assert!(e.to_string().contains("/whois NICK|FINGERPRINT"), "{e}");
    }

    #[test]
    fn extra_arguments() {
        for (line, usage) in [
            ("/quit now", "/quit"),
            ("/members all", "/members"),
            ("/leave #ops", "/leave"),
            ("/help nick", "/help"),
            ("/whois bob alice", "/whois NICK|FINGERPRINT"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(
                matches!(e, CommandError::TooManyArguments { usage: u, .. } if u == usage),
                "{line:?}: {e:?}"
            );
            assert!(e.to_string().contains(usage), "{e}");
        }
    }

    #[test]
    fn unknown_commands() {
        let e = parse_line("/frobnicate").unwrap_err();
        assert_eq!(e, CommandError::Unknown("frobnicate".into()));
        let msg = e.to_string();
        assert!(msg.contains("/frobnicate") && msg.contains("/help") && msg.contains("//"));
        assert!(matches!(
            parse_line("/usr/bin/env"),
            Err(CommandError::Unknown(_))
        ));
        assert!(matches!(parse_line("/"), Err(CommandError::Unknown(_))));
        assert!(matches!(parse_line("/ hi"), Err(CommandError::Unknown(_))));
    }

    #[test]
    fn long_lines() {
        let ok = "a".repeat(MAX_TEXT_BYTES);
        assert_eq!(txt(&ok), ok);
        assert_eq!(txt(&format!("{ok}\n")), ok);
        let long = "a".repeat(MAX_TEXT_BYTES + 1);
        let e = parse_line(&long).unwrap_err();
        assert_eq!(
            e,
            CommandError::TooLong {
                max: MAX_TEXT_BYTES,
                len: MAX_TEXT_BYTES + 1
            }
        );
        assert!(e.to_string().contains("8192"), "{e}");
        // Bytes, not characters.
        let wide = "日".repeat(MAX_TEXT_BYTES / 3 + 1);
        assert!(matches!(
            parse_line(&wide),
            Err(CommandError::TooLong { .. })
        ));
        // The // escape counts what is sent.
        let slash = format!("/{}", "a".repeat(MAX_TEXT_BYTES - 1));
        assert_eq!(txt(&format!("/{slash}")), slash);
        assert!(matches!(
            parse_line(&format!("//{ok}")),
            Err(CommandError::TooLong { .. })
        ));
    }

    #[test]
    fn rooms_are_typed_with_or_without_a_hash_and_fold_to_lower_case() {
        let lobby = hush_proto::RoomName::new("lobby").unwrap();
        for typed in [
            "/join lobby",
            "/join #lobby",
            "/JOIN #Lobby",
            "/join   LOBBY  ",
        ] {
            assert_eq!(cmd(typed), Command::Join(lobby.clone()), "{typed}");
        }
        assert_eq!(parse_room("#ops-2.b_c").unwrap().as_str(), "ops-2.b_c");
        for bad in ["/join ##x", "/join a/b", "/join .hidden", "/join #"] {
            assert!(
                matches!(parse_line(bad), Err(CommandError::BadRoom(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_line("/join"),
            Err(CommandError::MissingArgument {
                command: "join",
                ..
            })
        ));
        assert!(matches!(
            parse_line("/join a b"),
            Err(CommandError::TooManyArguments {
                command: "join",
                ..
            })
        ));
        assert_eq!(cmd("/part"), Command::Part);
        assert_eq!(cmd("/me waves  hello"), Command::Me("waves  hello".into()));
        assert!(matches!(
            parse_line("/me"),
            Err(CommandError::MissingArgument { command: "me", .. })
        ));
        let long = format!("/me {}", "x".repeat(MAX_TEXT_BYTES + 1));
        assert!(matches!(
            parse_line(&long),
            Err(CommandError::TooLong { .. })
        ));
        assert!(parse_line("/part now").is_err());
    }

    #[test]
    fn nicks() {
        assert_eq!(validate_nick("bob"), Ok("bob".into()));
        assert_eq!(validate_nick("  bob\t"), Ok("bob".into()));
        assert_eq!(validate_nick("日本の名前"), Ok("日本の名前".into()));
        assert_eq!(validate_nick("bob👋"), Ok("bob👋".into()));
        let max = "x".repeat(MAX_NICK_CHARS);
        assert_eq!(validate_nick(&max), Ok(max.clone()));
        let bad = [
            "",
            "   ",
            "bob smith",
            "bob\u{3000}smith",
            "bob\x1b[31m",
            "bob\u{7f}",
            "bob\u{9b}",
            "bob\u{202e}",
            "bob\u{200b}",
            "bo\u{feff}b",
            "/bob",
        ];
        for n in bad {
            let e = validate_nick(n).unwrap_err();
            assert!(matches!(e, CommandError::BadNick(_)), "{n:?}");
            assert!(e.to_string().contains("1 to 32 characters"), "{e}");
        }
        assert!(validate_nick(&"x".repeat(MAX_NICK_CHARS + 1)).is_err());
        assert!(matches!(
            parse_line("/nick bob smith"),
            Err(CommandError::BadNick(_))
        ));
        assert!(matches!(
            parse_line("/nick /bob"),
            Err(CommandError::BadNick(_))
        ));
    }

    #[test]
    fn help_lists_every_command() {
        for line in HELP.lines() {
            let first = line.split_whitespace().next().unwrap();
            assert!(first.starts_with('/'), "{line}");
        }
        for name in [
            "/nick", "/members", "/whois", "/verify", "/code", "/leave", "/quit", "/help",
        ] {
            assert!(
                HELP.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{name} missing from HELP"
            );
            // The name HELP shows parses as a command (never Unknown).
            assert!(!matches!(parse_line(name), Err(CommandError::Unknown(_))));
        }
        // Marking a verified key is in the list, and parses as shown.
        let mark = HELP
            .lines()
            .find(|l| l.contains("--mark"))
            .expect("/verify --mark in HELP");
        assert!(mark.contains("--unmark"), "{mark}");
        assert_eq!(cmd("/verify NICK --mark"), Command::Mark("NICK".into()));
    }
}
