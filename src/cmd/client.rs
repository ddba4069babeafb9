//! `hush client`: flags → `hush_client::app::ClientConfig`, then run the
//! client on stdin/stdout.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use hush_client::app::{self, ClientConfig};
use hush_client::command::{parse_room, validate_nick};
use hush_client::pins::KnownRelays;
use hush_client::tui::TuiOptions;
use hush_proto::RoomName;
use hush_proto::e2e::HistoryVisibility;
use hush_room::RekeyPolicy;

use crate::keyfile;
use crate::paths::{default_data_dir, parse_duration};

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The relay: HOST or HOST:PORT (port 40623 if none is given). Several
    /// (repeat it, or separate with commas) are nodes of one cluster, tried
    /// in order: on a drop the client moves to the next and catches up.
    #[arg(
        long,
        env = "HUSH_SERVER",
        value_name = "HOST[:PORT]",
        value_delimiter = ',',
        required_unless_present = "listen"
    )]
    server: Vec<String>,
    /// Direct mode: be the relay yourself, on ADDR (default 0.0.0.0:40623),
    /// with your own key; others connect with --server YOUR-HOST and
    /// --expect YOUR-FINGERPRINT.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "0.0.0.0:40623", conflicts_with = "server")]
    listen: Option<String>,
    /// Refuse a relay that does not present this key (SHA256:...): the
    /// fingerprint of the person whose direct-mode client you connect to,
    /// or of a relay you were told.
    #[arg(long, env = "HUSH_EXPECT", value_name = "FINGERPRINT")]
    expect: Option<String>,
    /// Use an invitation code someone made with /code (like
    /// 417-crossover-clockwork): it tells the room, proves their key to you
    /// and yours to them, and lets you in. --server is the inviter's relay.
    #[arg(long, value_name = "CODE", conflicts_with = "listen")]
    code: Option<String>,
    /// Your private key file (made with `hush keygen`). An encrypted one is
    /// unlocked with HUSH_PASSPHRASE if set (readable by the same user in
    /// /proc/PID/environ and passed to child processes), else asked for.
    #[arg(long, env = "HUSH_KEY", value_name = "PATH")]
    key: PathBuf,
    /// A room to open (created if it does not exist); repeat it for
    /// several, the first is where typing goes. `#lobby` and `Lobby` mean
    /// `lobby`. The rooms open when the client last stopped open too, so
    /// once you have joined a room you may leave this out.
    #[arg(long, env = "HUSH_ROOM", value_name = "NAME", value_delimiter = ',')]
    room: Vec<String>,
    /// Your display name [default: the key file's name, e.g. alice for alice.pem].
    #[arg(long, env = "HUSH_NICK", value_name = "NAME")]
    nick: Option<String>,
    /// Print one JSON object per event instead of lines (for scripts and bots).
    #[arg(long, conflicts_with = "plain")]
    json: bool,
    /// Line mode: print events as lines and read lines, instead of opening
    /// the chat screen (also the mode when stdin or stdout is not a terminal).
    #[arg(long)]
    plain: bool,
    /// Do not ring the terminal bell when someone mentions your nick.
    #[arg(long)]
    no_bell: bool,
    /// Where /save puts files [default: $XDG_DOWNLOAD_DIR/hush, or
    /// ~/Downloads/hush]. Nothing is saved unless you ask with /save.
    #[arg(long, env = "HUSH_DOWNLOAD_DIR", value_name = "DIR")]
    download_dir: Option<PathBuf>,
    /// Show times in UTC instead of this machine's time zone.
    #[arg(long)]
    utc: bool,
    /// Also append the plaintext transcript to FILE (off unless asked for).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Folder for client state [default: $XDG_DATA_HOME/hush/client or ~/.local/share/hush/client].
    #[arg(long, env = "HUSH_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// File of pinned relay keys [default: DIR/known_relays].
    #[arg(long, env = "HUSH_KNOWN_RELAYS", value_name = "FILE")]
    known_relays: Option<PathBuf>,
    /// If this client creates the room: admit only people its creator
    /// invites with /invite. Ignored for an existing room.
    #[arg(long)]
    invite_only: bool,
    /// If this client creates the room: what newcomers may read, "joined"
    /// (from their admission on) or "shared" (the history the members hold).
    #[arg(long, value_name = "joined|shared", default_value = "joined", value_parser = parse_history)]
    history: HistoryVisibility,
    /// Show the room's history again from the start of what the relay keeps,
    /// instead of resuming after the last message shown (saved keys open
    /// epochs whose commits the relay no longer keeps).
    #[arg(long)]
    replay_history: bool,
    /// Start this room over: set its saved state aside and read what the
    /// relay has now (after a `rollback` warning: the relay's history was
    /// rewound).
    #[arg(long, conflicts_with = "replay_history")]
    reset_room: bool,
    /// Replace the room key after this many messages in one epoch (0: never).
    #[arg(long, env = "HUSH_REKEY_MESSAGES", value_name = "N", default_value_t = RekeyPolicy::default().max_messages)]
    rekey_messages: u64,
    /// Replace the room key once an epoch is this old, e.g. 12h (0: never).
    #[arg(long, env = "HUSH_REKEY_AFTER", value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    rekey_after: std::time::Duration,
}

/// `host:port`, adding the default port when there is none.
fn with_default_port(server: &str) -> Result<String> {
    let s = server.trim();
    if s.is_empty() {
        bail!("--server is empty: give the relay's HOST or HOST:PORT");
    }
    let has_port = if let Some(rest) = s.strip_prefix('[') {
        // [v6]:port
        rest.split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'))
    } else {
        s.matches(':').count() == 1
    };
    if has_port {
        let port = s.rsplit(':').next().unwrap_or("");
        // Port 0 means "any port" to a listener; no relay is reachable on it.
        if port.parse::<u16>().is_err() || port == "0" {
            bail!("--server {s}: '{port}' is not a port number (1-65535)");
        }
        Ok(s.to_owned())
    } else if s.contains(':') {
        Ok(format!("[{s}]:{}", hush_proto::DEFAULT_PORT))
    } else {
        Ok(format!("{s}:{}", hush_proto::DEFAULT_PORT))
    }
}

/// `$XDG_DOWNLOAD_DIR/hush`, or `~/Downloads/hush`.
fn default_download_dir() -> Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DOWNLOAD_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(xdg).join("hush"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join("Downloads").join("hush")),
        None => bail!("no home folder to save files in: give --download-dir DIR"),
    }
}

fn parse_history(text: &str) -> Result<HistoryVisibility, String> {
    match text {
        "joined" => Ok(HistoryVisibility::Joined),
        "shared" => Ok(HistoryVisibility::Shared),
        _ => Err("use joined (newcomers read from their admission on) or shared".into()),
    }
}

/// `hush send`: the client's flags, and the file.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The file to offer to the room.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// `hush send ... FILE`: `/send FILE` then `/quit`, in line mode: the
/// client uploads the file, offers it, waits until the relay confirmed the
/// offer, and exits 0, or non-zero saying why.
pub fn send(args: SendArgs) -> Result<()> {
    if args.client.room.len() != 1 {
        bail!("hush send: give the room with exactly one --room NAME");
    }
    if args.client.server.is_empty() {
        bail!("hush send: give the relay with --server HOST (it does not --listen)");
    }
    let shown = args.file.display().to_string();
    if shown.contains('\n') || shown.contains('\r') {
        bail!("hush send: {shown:?} has a line break in its name; rename it first");
    }
    if !args.file.is_file() {
        bail!("hush send: {shown} is not a file");
    }
    let config = config(&args.client)?;
    let runtime = runtime()?;
    let script = format!("/send {shown}\n/quit\n");
    let result = runtime.block_on(app::run(
        config,
        std::io::Cursor::new(script.into_bytes()),
        std::io::stdout(),
    ));
    runtime.shutdown_background();
    result.map_err(Into::into)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(args: ClientArgs) -> Result<()> {
    let mut config = config(&args)?;
    let runtime = runtime()?;
    // Direct mode: our own relay in this process, with our own key.
    let _relay = match &args.listen {
        Some(addr) => Some(listen(&runtime, addr, &mut config)?),
        None => None,
    };
    // The chat screen needs a terminal both ways; a pipe, a file or
    // --json/--plain mean lines.
    use std::io::IsTerminal;
    let tui = !args.plain
        && !args.json
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    let result = if tui {
        let options = TuiOptions {
            bell: !args.no_bell,
        };
        runtime.block_on(app::run_tui(config, options))
    } else {
        runtime.block_on(app::run_stdio(config))
    };
    // The stdin reader may be blocked in a read that never returns; do not
    // wait for it.
    runtime.shutdown_background();
    result.map_err(Into::into)
}

/// Starts the embedded relay of direct mode on `addr`, with the person's
/// own identity and its data under the client's data folder, and points
/// the client at it. The returned sender stops it when dropped.
fn listen(
    runtime: &tokio::runtime::Runtime,
    addr: &str,
    config: &mut ClientConfig,
) -> Result<tokio::sync::oneshot::Sender<()>> {
    let bind: std::net::SocketAddr = addr
        .parse()
        .or_else(|_| {
            addr.parse::<std::net::IpAddr>()
                .map(|ip| (ip, hush_proto::DEFAULT_PORT).into())
        })
        .map_err(|_| anyhow::anyhow!("--listen {addr}: give IP:PORT such as 0.0.0.0:40623"))?;
    let listener = std::net::TcpListener::bind(bind)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| {
            format!("--listen: cannot listen on {bind}: is something else using it?")
        })?;
    let port = listener.local_addr()?.port();
    let data = config
        .state_dir
        .clone()
        .context("--listen needs a data folder")?
        .join("relay");
    let relay_config = hush_server::RelayConfig {
        data_dir: data,
        limits: hush_server::Limits::default(),
        retention: hush_server::Retention::default(),
        files: hush_server::blobs::BlobLimits::default(),
    };
    let identity = config.identity.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = runtime.block_on(async {
        let l = tokio::net::TcpListener::from_std(listener)?;
        hush_server::Relay::on_listener(l, identity, relay_config)
            .await
            .map_err(anyhow::Error::from)
    })?;
    runtime.spawn(relay.run(async {
        let _ = stopped.await;
    }));
    let fp = config.identity.fingerprint();
    config.server = format!("127.0.0.1:{port}");
    config.servers = vec![config.server.clone()];
    config.reachable_as = Some(format!("YOUR-ADDRESS:{port}"));
    // Our own key is the relay's: nothing else may answer here.
    config.expect = Some(fp);
    config.greeting = vec![
        format!("direct mode: you are the relay, on {bind} (port {port}), with your own key {fp}"),
        format!(
            "others connect with: hush client --server YOUR-ADDRESS:{port} --expect {fp} --room ROOM --key THEIR-KEY"
        ),
    ];
    Ok(stop)
}

/// The client's settings from its flags.
fn config(args: &ClientArgs) -> Result<ClientConfig> {
    let mut servers = Vec::new();
    for typed in &args.server {
        let s = with_default_port(typed)?;
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    // Direct mode (no --server): the client's own relay, set by `run`.
    let server = servers.first().cloned().unwrap_or_default();
    let expect = match &args.expect {
        Some(text) => Some(text.trim().parse::<hush_crypto::Fingerprint>().map_err(|_| {
            anyhow::anyhow!("--expect {text}: not a fingerprint; give the SHA256:... form that `hush fingerprint` prints")
        })?),
        None => None,
    };
    let code = match &args.code {
        Some(text) => Some(
            text.parse::<hush_proto::code::Code>()
                .map_err(|e| anyhow::anyhow!("--code {text}: {e}"))?,
        ),
        None => None,
    };
    let mut rooms: Vec<RoomName> = Vec::new();
    for typed in &args.room {
        let room = parse_room(typed).map_err(|e| anyhow::anyhow!("--room: {e}"))?;
        if !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    let nick = match &args.nick {
        Some(n) => validate_nick(n).map_err(|e| anyhow::anyhow!("--nick: {e}"))?,
        None => {
            let stem = args
                .key
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("me")
                .to_owned();
            validate_nick(&stem).unwrap_or_else(|_| "me".to_owned())
        }
    };
    let identity = Arc::new(keyfile::load_identity(&args.key)?);
    let data = match args.data.clone() {
        Some(d) => d,
        None => default_data_dir("client")?,
    };
    let known = args
        .known_relays
        .clone()
        .unwrap_or_else(|| data.join("known_relays"));
    let config = ClientConfig {
        server,
        servers,
        identity,
        rooms,
        nick_given: args.nick.is_some(),
        nick,
        json: args.json,
        utc: args.utc,
        expect,
        greeting: Vec::new(),
        reachable_as: None,
        code,
        download_dir: match args.download_dir.clone() {
            Some(d) => d,
            None => default_download_dir()?,
        },
        transcript: args.output.clone(),
        known_relays: KnownRelays::new(known),
        // Announced in the hello: the relay packs records up to its own
        // limit, never above this one (audit M7).
        max_frame: hush_proto::frame::MAX_FRAME_CEILING,
        rekey: RekeyPolicy {
            max_messages: args.rekey_messages,
            max_age: args.rekey_after,
        },
        state_dir: Some(data),
        create_as: (args.invite_only, args.history),
        replay_history: args.replay_history,
        reset_room: args.reset_room,
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::with_default_port;

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(
            with_default_port("example.org").ok().as_deref(),
            Some("example.org:40623")
        );
        assert_eq!(with_default_port("h:1234").ok().as_deref(), Some("h:1234"));
        assert_eq!(
            with_default_port("::1").ok().as_deref(),
            Some("[::1]:40623")
        );
        assert_eq!(
            with_default_port("[::1]:5").ok().as_deref(),
            Some("[::1]:5")
        );
        assert!(with_default_port("h:notaport").is_err());
        assert!(with_default_port("h:70000").is_err());
        assert!(with_default_port("").is_err());
    }
}
