//! `hush bench admit`: how long a room of M members takes to admit a
//! newcomer, from its join request to the first message it can read.
//!
//! ```text
//!   relay (child, frame limit raised for big commits)
//!     ▲▼ committer: real Room on a real connection (lowest fingerprint: designated)
//!     ▲▼ sender:    real Room; sends a line as soon as it holds the new epoch
//!     ▲▼ newcomer:  real Room; join request ─▶ … ─▶ first message shown
//!   the M - 2 other members: real, distinct RSA identities (public keys
//!   cached on disk), roster entries only: nobody runs their Room
//! ```
//!
//! The room starts with one full commit, built by the bench as the
//! committer, naming all M members. Each round a fresh newcomer connects,
//! catches up (it reads that commit: the roster), asks to join, and the
//! timeline is split: join request to the committer, commit build, commit
//! to the newcomer and the sender, their processing, the sender's message
//! to the newcomer, and the newcomer opening it. The committer's Room
//! admits with an add-only commit (PROTOCOL.md §9.2.3), reported as
//! `commit_kind`; the newcomer's catch-up before its request is reported
//! apart (`catch_up`).
//!
//! The relay's frame limit is raised so that one full commit of the whole
//! roster fits (a Room admits only while it does). Should a Room still
//! refuse (`room_full`), the bench builds a full commit itself with the
//! same operations as `Room::commit` and reports `commit_by: "bench"`;
//! every Room still verifies and applies it. Rooms refuse any roster of
//! more than `MAX_ROSTER` members: beyond it the bench only builds (and
//! times) a full commit and says what blocks the admission.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_client::display::ClientEvent;
use hush_client::link::{Connection, LinkReader, LinkWriter};
use hush_client::room::{Action, Room, now_ms};
use hush_crypto::{Fingerprint, Identity, PublicIdentity, Secret32};
use hush_proto::e2e::{
    self, Commit, EPOCH_KEY_LABEL, EVENT_SIGNATURE_CONTEXT, HistoryVisibility, KeyEnvelope,
    MAX_ROSTER, Member, Payload, RoomSettings, SignedBody,
};
use hush_proto::msg::{decode, encode};
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName};
use tokio::sync::mpsc;

use crate::bench_cmd::{bench_identity, start_relay_with};

#[derive(Debug, clap::Args)]
pub struct AdmitArgs {
    /// Members already in the room, the committer and the sender included.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Newcomers admitted one after the other (one sample each).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Largest frame `hush server` accepts (`--max-frame-bytes`).
const MAX_FRAME_LIMIT: usize = 16 * 1024 * 1024;

/// A round that takes longer than this is reported as stuck.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(a: &AdmitArgs) -> Result<()> {
    if a.members < 2 {
        bail!("--members must be at least 2 (a committer and a sender)");
    }
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let others = roster_keys(a.members - 2)?;
    if a.members + 1 > MAX_ROSTER {
        return build_only(a, &others);
    }
    let rounds = a.rounds.min(MAX_ROSTER - a.members);
    if rounds < a.rounds {
        eprintln!("only {rounds} rounds fit under the roster limit of {MAX_ROSTER} members");
    }
    eprintln!(
        "generating {} live identities (committer, sender, newcomers)",
        rounds + 2
    );
    let mut live = generate(rounds + 2)?;
    // The committer must be the designated member: the lowest fingerprint
    // of everyone online.
    live.sort_by_key(Identity::fingerprint);
    let live: Vec<Arc<Identity>> = live.into_iter().map(Arc::new).collect();
    let committer = live[0].clone();
    let sender = live[1].clone();
    let newcomers = live[2..].to_vec();

    let mut roster: Vec<(PublicIdentity, String)> = vec![
        (committer.public().clone(), "committer".into()),
        (sender.public().clone(), "sender".into()),
    ];
    roster.extend(
        others
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, format!("m{i}"))),
    );
    let apart = Apart::measure(&committer, &roster)?;
    let per_member = member_bytes(&roster[0].0);
    let frame = ((a.members + rounds + 1) * per_member + 256 * 1024)
        .clamp(hush_proto::DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT);
    let (_, key_path) = bench_identity()?;
    let relay = start_relay_with(
        &key_path,
        &["--max-frame-bytes".to_owned(), frame.to_string()],
    )?;
    let addr = relay.addr.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let samples = runtime.block_on(admit_rounds(
        &addr, frame, committer, sender, newcomers, roster,
    ))?;
    drop(relay);
    print_results(a, frame, &samples, &apart);
    Ok(())
}

/// Costs inside a commit's processing, measured alone (no relay, no
/// other work competing): what every member pays per commit.
struct Apart {
    /// Parsing every roster key (SPKI DER to an RSA key, fingerprint).
    parse_roster: Duration,
    /// One OAEP unwrap: the newcomer's private-key operation.
    unwrap_one: Duration,
    /// One OAEP wrap, the committer's cost per member.
    wrap_one: Duration,
}

impl Apart {
    fn measure(me: &Identity, roster: &[(PublicIdentity, String)]) -> Result<Self> {
        let t = Instant::now();
        for (k, _) in roster {
            PublicIdentity::from_spki_der(k.spki_der())?;
        }
        let parse_roster = t.elapsed();
        let secret = Secret32::random();
        let t = Instant::now();
        let wrapped = me.public().wrap(EPOCH_KEY_LABEL, &secret)?;
        let wrap_one = t.elapsed();
        let t = Instant::now();
        me.unwrap(EPOCH_KEY_LABEL, wrapped.as_bytes())?;
        let unwrap_one = t.elapsed();
        Ok(Self {
            parse_roster,
            unwrap_one,
            wrap_one,
        })
    }
}

/// Bytes one member adds to a commit: key, envelope, nick and framing
/// (as the Room counts it).
fn member_bytes(key: &PublicIdentity) -> usize {
    key.spki_der().len() + key.bits() / 8 + 64
}

// ─── Identities ──────────────────────────────────────────────────────────

/// `n` fresh identities of the default size, generated on every core.
fn generate(n: usize) -> Result<Vec<Identity>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |c| c.get())
        .min(n.max(1));
    let results: Vec<Result<Vec<Identity>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = n / threads + usize::from(t < n % threads);
                s.spawn(move || {
                    (0..count)
                        .map(|_| {
                            Identity::generate(hush_crypto::DEFAULT_BITS)
                                .map_err(anyhow::Error::from)
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("key generation panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(n);
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// `n` distinct public keys of real identities (generated once, then
/// cached as hex SPKI DER, one a line, next to the bench identity; the
/// private halves are not kept: nobody runs these members' Rooms).
fn roster_keys(n: usize) -> Result<Vec<PublicIdentity>> {
    let dir = crate::paths::default_data_dir("bench")?;
    hush_server::create_private_dir(&dir)?;
    let path = dir.join(format!("admit-roster-{}.hex", hush_crypto::DEFAULT_BITS));
    let mut keys = Vec::with_capacity(n);
    if let Ok(text) = std::fs::read_to_string(&path) {
        for line in text.lines().take(n) {
            let der = from_hex(line.trim()).context("corrupt roster key cache")?;
            keys.push(PublicIdentity::from_spki_der(&der)?);
        }
    }
    if keys.len() < n {
        let missing = n - keys.len();
        let started = Instant::now();
        eprintln!(
            "generating {missing} roster identities of {} bits once (cached in {})",
            hush_crypto::DEFAULT_BITS,
            path.display()
        );
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        while keys.len() < n {
            let batch = (n - keys.len()).min(100);
            for id in generate(batch)? {
                writeln!(file, "{}", to_hex(id.public().spki_der()))?;
                keys.push(id.public().clone());
            }
            eprintln!(
                "  {} of {n} ({:.0} s)",
                keys.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(keys)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

// ─── Commits the bench builds ────────────────────────────────────────────

/// A commit opening `parent + 1` for `members`, signed by `me`: the same
/// operations as `Room::commit` (fresh epoch key, one OAEP envelope per
/// member, one signature). Rules: open room, history from admission on.
pub(crate) fn build_commit(
    me: &Identity,
    room: &RoomName,
    parent: u64,
    members: &[(PublicIdentity, String)],
) -> Result<RoomEvent> {
    let key = Secret32::random();
    let mut envelopes = Vec::with_capacity(members.len());
    for (m, _) in members {
        envelopes.push(KeyEnvelope {
            member: m.fingerprint(),
            wrapped: m.wrap(EPOCH_KEY_LABEL, &key)?.as_bytes().to_vec(),
        });
    }
    let payload = encode(&Payload::Commit(Commit {
        parent_epoch: parent,
        committer_key: me.public().spki_der().to_vec(),
        members: members
            .iter()
            .map(|(k, nick)| Member {
                public_key: k.spki_der().to_vec(),
                nick: nick.clone(),
            })
            .collect(),
        envelopes,
        settings: RoomSettings {
            creator: me.fingerprint(),
            invite_only: false,
            history: HistoryVisibility::Joined,
        },
        history: Vec::new(),
    }));
    let epoch = parent + 1;
    let digest = e2e::signing_digest(room, &me.fingerprint(), EventKind::Commit, epoch, &payload);
    let signature = me.sign(EVENT_SIGNATURE_CONTEXT, &digest)?.into_bytes();
    Ok(RoomEvent {
        room: room.clone(),
        sender: me.fingerprint(),
        kind: EventKind::Commit,
        epoch,
        body: encode(&SignedBody { payload, signature }),
    })
}

/// Beyond `MAX_ROSTER` no Room accepts the commit: time building it and
/// report its size, and what blocks the admission.
fn build_only(a: &AdmitArgs, others: &[PublicIdentity]) -> Result<()> {
    eprintln!(
        "{} members exceed the roster limit of {MAX_ROSTER}: timing the commit alone",
        a.members + 1
    );
    let ids = generate(3)?;
    let mut members: Vec<(PublicIdentity, String)> = ids
        .iter()
        .map(|i| (i.public().clone(), "live".to_owned()))
        .collect();
    members.extend(others.iter().map(|k| (k.clone(), "m".to_owned())));
    let room = RoomName::new("bench-admit")?;
    let mut builds = Vec::new();
    let mut bytes = 0;
    for _ in 0..a.rounds {
        let t = Instant::now();
        let ev = build_commit(&ids[0], &room, 1, &members)?;
        builds.push(t.elapsed());
        bytes = ev.body.len();
    }
    let build = median(&builds);
    let why = format!(
        "Rooms refuse commits of more than MAX_ROSTER = {MAX_ROSTER} members (hush_proto::e2e)"
    );
    if a.json {
        println!(
            "{{\"workload\":\"admit\",\"members\":{},\"rounds\":{},\"admitted\":false,\"blocked_by\":\"{why}\",\"commit_bytes\":{bytes},\"ms\":{{\"commit_build\":{:.3}}}}}",
            a.members,
            a.rounds,
            ms(build)
        );
    } else {
        println!(
            "hush bench admit: {} members + 1 newcomer: NOT ADMITTED",
            a.members
        );
        println!("  blocked by             {why}");
        println!("  commit build           {:>10.1} ms", ms(build));
        println!("  commit size            {bytes:>10} B");
    }
    Ok(())
}

// ─── Live members ────────────────────────────────────────────────────────

/// A member running a real Room on a real connection, driven as the
/// client app drives it.
pub(crate) struct Live {
    pub(crate) reader: LinkReader,
    pub(crate) writer: LinkWriter,
    relay: PublicIdentity,
    pub(crate) room: Room,
}

impl Live {
    /// Connects as `id` and joins the room of `room`.
    pub(crate) async fn connect(
        addr: &str,
        id: &Arc<Identity>,
        room: Room,
        frame: usize,
    ) -> Result<Self> {
        let c = Connection::connect(addr, id.clone(), frame, |_| Ok(())).await?;
        let mut room = room;
        let relay_frame = usize::try_from(c.welcome.max_frame).unwrap_or(usize::MAX);
        room.set_frame_limit(relay_frame.min(frame));
        let name = room.name().clone();
        let mut live = Self {
            reader: c.reader,
            writer: c.writer,
            relay: c.relay,
            room,
        };
        live.writer.send(&ClientMsg::Join { room: name }).await?;
        Ok(live)
    }

    /// One relay message through the Room (as `hush_client::app` does).
    pub(crate) async fn on_relay(&mut self, msg: RelayMsg) -> Result<Vec<Action>> {
        let now = Instant::now();
        let name = self.room.name().clone();
        Ok(match msg {
            RelayMsg::Joined { online, .. } => {
                self.room.on_joined(&online);
                self.writer
                    .send(&ClientMsg::Backfill {
                        room: name,
                        after_seq: self.room.last_seq(),
                    })
                    .await?;
                Vec::new()
            }
            RelayMsg::Event(e) => self.room.on_event(e, now),
            RelayMsg::BackfillDone {
                up_to, complete, ..
            } => {
                let mut actions = self.room.on_backfill_done(up_to, now);
                if complete {
                    actions.extend(self.room.caught_up(now));
                } else {
                    self.writer
                        .send(&ClientMsg::Backfill {
                            room: name,
                            after_seq: up_to,
                        })
                        .await?;
                }
                actions
            }
            RelayMsg::Presence { member, online, .. } => {
                self.room.on_presence(member, online);
                Vec::new()
            }
            RelayMsg::Rejected {
                request, reason, ..
            } => self.room.on_rejected(request, reason, now),
            RelayMsg::Ping { nonce } => {
                self.writer.send(&ClientMsg::Pong { nonce }).await?;
                Vec::new()
            }
            RelayMsg::Checkpoint(cp) => self.room.on_checkpoint(cp, &self.relay),
            RelayMsg::Closing { reason } => bail!("the relay closed the connection: {reason:?}"),
            _ => Vec::new(),
        })
    }

    /// Sends the actions' events; problems go to `marks`.
    async fn perform(&mut self, actions: &[Action], who: Who, marks: &Marks) -> Result<()> {
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::Publish { request, event } => out.push(ClientMsg::Publish {
                    request: *request,
                    event: event.clone(),
                }),
                Action::Show(ClientEvent::Warning { kind, text, .. }) if kind != "room_full" => {
                    let _ = marks.send(Mark::Problem(format!("{who:?}: {kind}: {text}")));
                }
                Action::Show(ClientEvent::Error { text }) => {
                    let _ = marks.send(Mark::Problem(format!("{who:?}: {text}")));
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            self.writer.send_all(&out).await?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Committer,
    Sender,
    Newcomer,
}

/// What the live members observed, and when.
enum Mark {
    Ready,
    JoinSent(Instant),
    JoinSeen(Instant),
    CommitSent {
        at: Instant,
        build: Duration,
        by_room: bool,
        bytes: usize,
        kind: &'static str,
    },
    NewcomerCommit {
        arrived: Instant,
        took: Duration,
    },
    SenderCommit {
        took: Duration,
    },
    MessageSent(Instant),
    Readable {
        arrived: Instant,
        took: Duration,
        at: Instant,
    },
    Problem(String),
}

type Marks = mpsc::UnboundedSender<Mark>;

fn publishes(actions: &[Action], kind: EventKind) -> Option<&RoomEvent> {
    actions.iter().find_map(|a| match a {
        Action::Publish { event, .. } if event.kind == kind => Some(event),
        _ => None,
    })
}

/// The committer: its Room admits each newcomer; when the Room refuses
/// (`room_full`), the bench builds the same commit for it.
async fn committer(
    mut live: Live,
    me: Arc<Identity>,
    mut roster: Vec<(PublicIdentity, String)>,
    marks: Marks,
) -> Result<()> {
    let mut ready = false;
    let mut request = 1_000_000;
    loop {
        let msg = live.reader.recv().await?;
        let arrived = Instant::now();
        let mut newcomer = None;
        if let RelayMsg::Event(e) = &msg
            && e.event.kind == EventKind::JoinRequest
        {
            let _ = marks.send(Mark::JoinSeen(arrived));
            newcomer = decode::<SignedBody>(&e.event.body)
                .ok()
                .and_then(|b| decode::<Payload>(&b.payload).ok())
                .and_then(|p| match p {
                    Payload::JoinRequest(r) => Some(r),
                    _ => None,
                })
                .and_then(|r| Some((PublicIdentity::from_spki_der(&r.public_key).ok()?, r.nick)));
        }
        let actions = live.on_relay(msg).await?;
        let took = arrived.elapsed();
        if let Some(ev) = publishes(&actions, EventKind::Commit) {
            let kind = match decode::<SignedBody>(&ev.body).map(|b| decode::<Payload>(&b.payload)) {
                Ok(Ok(Payload::Add(_))) => "add",
                _ => "full",
            };
            let _ = marks.send(Mark::CommitSent {
                at: Instant::now(),
                build: took,
                by_room: true,
                bytes: ev.body.len(),
                kind,
            });
            if let Some(n) = newcomer.take() {
                roster.push(n);
            }
        }
        live.perform(&actions, Who::Committer, &marks).await?;
        let refused = actions.iter().any(
            |a| matches!(a, Action::Show(ClientEvent::Warning { kind, .. }) if kind == "room_full"),
        );
        if refused && let Some(n) = newcomer {
            roster.push(n);
            let t = Instant::now();
            let ev = build_commit(&me, live.room.name(), live.room.epoch(), &roster)?;
            let build = t.elapsed();
            let _ = marks.send(Mark::CommitSent {
                at: Instant::now(),
                build,
                by_room: false,
                bytes: ev.body.len(),
                kind: "full",
            });
            request += 1;
            live.writer
                .send(&ClientMsg::Publish { request, event: ev })
                .await?;
        }
        if !ready && live.room.is_member() && live.room.is_settled() {
            ready = true;
            let _ = marks.send(Mark::Ready);
        }
    }
}

/// The sender: sends a line as soon as it holds a new epoch's key.
async fn sender(mut live: Live, marks: Marks) -> Result<()> {
    let mut ready = false;
    loop {
        let msg = live.reader.recv().await?;
        let arrived = Instant::now();
        let commit = matches!(&msg, RelayMsg::Event(e) if e.event.kind == EventKind::Commit && e.event.epoch >= 2);
        let mut actions = live.on_relay(msg).await?;
        if commit {
            let _ = marks.send(Mark::SenderCommit {
                took: arrived.elapsed(),
            });
            let epoch = live.room.epoch();
            if live.room.is_member() {
                actions.extend(
                    live.room
                        .send_text(format!("welcome to epoch {epoch}"), now_ms()),
                );
                let _ = marks.send(Mark::MessageSent(Instant::now()));
            }
        }
        live.perform(&actions, Who::Sender, &marks).await?;
        if !ready && live.room.is_member() && live.room.is_settled() {
            ready = true;
            let _ = marks.send(Mark::Ready);
        }
    }
}

/// A newcomer: asks to join, and stops at the first message it can read.
async fn newcomer(mut live: Live, sender: Fingerprint, marks: Marks) -> Result<()> {
    let mut asked = false;
    loop {
        let msg = live.reader.recv().await?;
        let arrived = Instant::now();
        let commit = matches!(&msg, RelayMsg::Event(e) if e.event.kind == EventKind::Commit);
        let actions = live.on_relay(msg).await?;
        let took = arrived.elapsed();
        if commit && asked {
            let _ = marks.send(Mark::NewcomerCommit { arrived, took });
        }
        let readable = actions.iter().any(
            |a| matches!(a, Action::Show(ClientEvent::Message { from, .. }) if *from == sender),
        );
        if readable {
            let _ = marks.send(Mark::Readable {
                arrived,
                took,
                at: Instant::now(),
            });
            return Ok(());
        }
        if publishes(&actions, EventKind::JoinRequest).is_some() {
            asked = true;
            let _ = marks.send(Mark::JoinSent(Instant::now()));
        }
        live.perform(&actions, Who::Newcomer, &marks).await?;
    }
}

/// One admission, split up.
#[derive(Default, Clone)]
struct Sample {
    /// From connecting to the join request: backfill and the roster.
    catch_up: Duration,
    join_to_committer: Duration,
    commit_build: Duration,
    commit_bytes: usize,
    commit_kind: &'static str,
    by_room: bool,
    commit_to_newcomer: Duration,
    newcomer_commit: Duration,
    sender_commit: Duration,
    message_to_newcomer: Duration,
    newcomer_message: Duration,
    total: Duration,
}

/// Waits for `Ready` marks from the committer and the sender.
async fn await_ready(rx: &mut mpsc::UnboundedReceiver<Mark>, mut n: usize) -> Result<()> {
    while n > 0 {
        match tokio::time::timeout(ROUND_TIMEOUT, rx.recv()).await {
            Ok(Some(Mark::Ready)) => n -= 1,
            Ok(Some(Mark::Problem(p))) => eprintln!("warning: {p}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("a member stopped before the room was set up"),
            Err(_) => bail!("the room was not set up within {ROUND_TIMEOUT:?}"),
        }
    }
    Ok(())
}

async fn admit_rounds(
    addr: &str,
    frame: usize,
    committer_id: Arc<Identity>,
    sender_id: Arc<Identity>,
    newcomers: Vec<Arc<Identity>>,
    roster: Vec<(PublicIdentity, String)>,
) -> Result<Vec<Sample>> {
    let name = RoomName::new("bench-admit")?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    eprintln!(
        "creating #{name} with {} members (one commit built by the bench)",
        roster.len()
    );
    let setup = build_commit(&committer_id, &name, 0, &roster)?;
    let setup_bytes = setup.body.len();
    // The committer publishes the creating commit before its Room starts;
    // the Room then reads it back like any member would.
    let mut c = Connection::connect(addr, committer_id.clone(), frame, |_| Ok(())).await?;
    c.writer
        .send(&ClientMsg::Join { room: name.clone() })
        .await?;
    loop {
        if let RelayMsg::Joined { .. } = c.reader.recv().await? {
            break;
        }
    }
    c.writer
        .send(&ClientMsg::Publish {
            request: 0,
            event: setup,
        })
        .await?;
    loop {
        match c.reader.recv().await? {
            RelayMsg::Event(_) => break,
            RelayMsg::Rejected { reason, .. } => {
                bail!("the relay refused the room's first commit ({setup_bytes} B): {reason:?}")
            }
            _ => {}
        }
    }
    drop(c);
    let live = Live::connect(
        addr,
        &committer_id,
        Room::new(name.clone(), committer_id.clone(), "committer".into()),
        frame,
    )
    .await?;
    let mut tasks = vec![tokio::spawn(committer(
        live,
        committer_id.clone(),
        roster,
        tx.clone(),
    ))];
    let live = Live::connect(
        addr,
        &sender_id,
        Room::new(name.clone(), sender_id.clone(), "sender".into()),
        frame,
    )
    .await?;
    tasks.push(tokio::spawn(sender(live, tx.clone())));
    await_ready(&mut rx, 2).await?;

    let mut samples = Vec::new();
    for (round, id) in newcomers.iter().enumerate() {
        eprintln!("round {}: a newcomer asks to join", round + 1);
        let connected_at = Instant::now();
        let live = Live::connect(
            addr,
            id,
            Room::new(name.clone(), id.clone(), format!("newcomer{round}")),
            frame,
        )
        .await?;
        let task = tokio::spawn(newcomer(live, sender_id.fingerprint(), tx.clone()));
        let mut s = Sample::default();
        let (mut join_sent, mut join_seen, mut commit_sent, mut message_sent) =
            (None, None, None, None);
        let mut commits = 0;
        let deadline = tokio::time::Instant::now() + ROUND_TIMEOUT;
        loop {
            let mark = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => m,
                Ok(None) => bail!("the members stopped"),
                Err(_) => {
                    for t in &tasks {
                        t.abort();
                    }
                    bail!(
                        "round {} did not finish within {ROUND_TIMEOUT:?}",
                        round + 1
                    )
                }
            };
            match mark {
                Mark::JoinSent(t) => join_sent = Some(t),
                Mark::JoinSeen(t) => join_seen = Some(t),
                Mark::CommitSent {
                    at,
                    build,
                    by_room,
                    bytes,
                    kind,
                } => {
                    commits += 1;
                    if commits > 3 {
                        for t in &tasks {
                            t.abort();
                        }
                        bail!(
                            "round {}: the committer's Room published {commits} commits without admitting the newcomer (its roster fits its commit budget, the newcomer does not: it rekeys again and again)",
                            round + 1
                        );
                    }
                    commit_sent = Some(at);
                    s.commit_build = build;
                    s.by_room = by_room;
                    s.commit_bytes = bytes;
                    s.commit_kind = kind;
                }
                Mark::NewcomerCommit { arrived, took } => {
                    s.newcomer_commit = took;
                    if let Some(c) = commit_sent {
                        s.commit_to_newcomer = arrived.saturating_duration_since(c);
                    }
                }
                Mark::SenderCommit { took } => s.sender_commit = took,
                Mark::MessageSent(t) => message_sent = Some(t),
                Mark::Readable { arrived, took, at } => {
                    s.newcomer_message = took;
                    if let Some(m) = message_sent {
                        s.message_to_newcomer = arrived.saturating_duration_since(m);
                    }
                    let (Some(j), Some(seen)) = (join_sent, join_seen) else {
                        bail!("round {}: the join request was not observed", round + 1);
                    };
                    s.join_to_committer = seen.saturating_duration_since(j);
                    s.catch_up = j.saturating_duration_since(connected_at);
                    s.total = at.saturating_duration_since(j);
                    break;
                }
                Mark::Problem(p) => eprintln!("warning: {p}"),
                Mark::Ready => {}
            }
        }
        task.await??;
        eprintln!(
            "  admitted in {:.1} ms ({} commit of {} B)",
            ms(s.total),
            s.commit_kind,
            s.commit_bytes
        );
        samples.push(s);
    }
    for t in tasks {
        t.abort();
    }
    Ok(samples)
}

// ─── Results ─────────────────────────────────────────────────────────────

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn print_results(a: &AdmitArgs, frame: usize, samples: &[Sample], apart: &Apart) {
    let med = |f: fn(&Sample) -> Duration| median(&samples.iter().map(f).collect::<Vec<_>>());
    let rows: [(&str, &str, Duration); 8] = [
        (
            "join_to_committer",
            "join request → committer",
            med(|s| s.join_to_committer),
        ),
        ("commit_build", "commit build", med(|s| s.commit_build)),
        (
            "commit_to_newcomer",
            "commit → newcomer (relay)",
            med(|s| s.commit_to_newcomer),
        ),
        (
            "newcomer_commit",
            "newcomer processes commit",
            med(|s| s.newcomer_commit),
        ),
        (
            "sender_commit",
            "sender processes commit",
            med(|s| s.sender_commit),
        ),
        (
            "message_to_newcomer",
            "message → newcomer (relay)",
            med(|s| s.message_to_newcomer),
        ),
        (
            "newcomer_message",
            "newcomer opens message",
            med(|s| s.newcomer_message),
        ),
        ("total", "total (join → readable)", med(|s| s.total)),
    ];
    let bytes = samples.last().map_or(0, |s| s.commit_bytes);
    let kind = samples.last().map_or("none", |s| s.commit_kind);
    let catch_up = med(|s| s.catch_up);
    let by = if samples.iter().all(|s| s.by_room) {
        "room"
    } else {
        "bench"
    };
    let totals: Vec<String> = samples
        .iter()
        .map(|s| format!("{:.3}", ms(s.total)))
        .collect();
    if a.json {
        let fields: Vec<String> = rows
            .iter()
            .map(|(k, _, d)| format!("\"{k}\":{:.3}", ms(*d)))
            .collect();
        println!(
            "{{\"workload\":\"admit\",\"members\":{},\"rounds\":{},\"admitted\":true,\"commit_by\":\"{by}\",\"commit_kind\":\"{kind}\",\"commit_bytes\":{bytes},\"max_frame_bytes\":{frame},\"ms\":{{{}}},\"catch_up_ms\":{:.3},\"total_ms\":[{}],\"apart_ms\":{{\"parse_roster\":{:.3},\"wrap_one\":{:.3},\"unwrap_one\":{:.3}}}}}",
            a.members,
            samples.len(),
            fields.join(","),
            ms(catch_up),
            totals.join(","),
            ms(apart.parse_roster),
            ms(apart.wrap_one),
            ms(apart.unwrap_one),
        );
        return;
    }
    println!(
        "hush bench admit: a newcomer joins a room of {} members; median of {} rounds",
        a.members,
        samples.len()
    );
    for (_, label, d) in rows {
        println!("  {label:<28} {:>10.1} ms", ms(d));
    }
    println!("  commit size                  {bytes:>10} B   ({kind} commit, built by the {by})");
    println!(
        "  before the join request: newcomer catch-up (backfill, roster) {:.1} ms",
        ms(catch_up)
    );
    println!("  every round (ms)             {}", totals.join(" "));
    println!("  measured apart:");
    println!(
        "    parse {} roster keys     {:>10.1} ms",
        a.members,
        ms(apart.parse_roster)
    );
    println!(
        "    one OAEP wrap / unwrap     {:>6.2} / {:.2} ms",
        ms(apart.wrap_one),
        ms(apart.unwrap_one)
    );
}
