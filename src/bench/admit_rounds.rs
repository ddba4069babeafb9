//! The live members of `hush bench admit` and its rounds: a committer, a
//! sender and one newcomer a round, each a real Room ([`Live`]) on its own
//! task, reporting what they saw as [`Mark`]s that [`admit_rounds`] puts
//! together into one [`Sample`] per admission.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hush_client::app::{now_ms, os_entropy};
use hush_client::display::render_line;
use hush_crypto::{Fingerprint, Identity, PublicIdentity};
use hush_proto::e2e::{Payload, SignedBody};
use hush_proto::msg::decode;
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName};
use hush_room::{Action, Room, Shown, Warning};
use tokio::sync::mpsc;

use super::live::{Live, build_commit, join};
use super::stats::ms;

/// A round that takes longer than this is reported as stuck.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

// What an admit member does with its Room's actions (the Room itself is
// driven by [`Live::on_relay`], shared with the fanout bench).
impl Live {
    /// Sends the actions' events; problems go to `marks`.
    async fn perform(&mut self, actions: &[Action], who: Who, marks: &Marks) -> Result<()> {
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::Publish { request, event } => out.push(ClientMsg::Publish {
                    request: *request,
                    event: event.clone(),
                }),
                Action::Show(
                    shown @ (Shown::Warning { .. }
                    | Shown::Error { .. }
                    | Shown::Refused { .. }
                    | Shown::QueueFull { .. }),
                ) if !room_full(a) => {
                    let _ = marks.send(Mark::Problem(format!("{who:?}: {}", render_line(shown))));
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
                .and_then(|r| {
                    let key = PublicIdentity::from_spki_der(&r.public_key).ok()?;
                    let name = key.fingerprint().short_id();
                    Some((key, name))
                });
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
        let refused = actions.iter().any(room_full);
        if refused && let Some(n) = newcomer {
            roster.push(n);
            let t = Instant::now();
            let ev = build_commit(
                &me,
                live.room.name(),
                (live.room.epoch(), live.room.commit_id().unwrap_or([0; 32])),
                &roster,
            )?;
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
        let readable = actions
            .iter()
            .any(|a| matches!(a, Action::Show(Shown::Message { from, .. }) if *from == sender));
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
pub(crate) struct Sample {
    /// From connecting to the join request: backfill and the roster.
    pub(crate) catch_up: Duration,
    pub(crate) join_to_committer: Duration,
    pub(crate) commit_build: Duration,
    pub(crate) commit_bytes: usize,
    pub(crate) commit_kind: &'static str,
    pub(crate) by_room: bool,
    pub(crate) commit_to_newcomer: Duration,
    pub(crate) newcomer_commit: Duration,
    pub(crate) sender_commit: Duration,
    pub(crate) message_to_newcomer: Duration,
    pub(crate) newcomer_message: Duration,
    pub(crate) total: Duration,
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

/// Sets the room up (the bench's first commit, then the committer and the
/// sender), then admits each newcomer in turn: one [`Sample`] each.
pub(crate) async fn admit_rounds(
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
    let setup = build_commit(&committer_id, &name, (0, [0; 32]), &roster)?;
    let setup_bytes = setup.body.len();
    // The committer publishes the creating commit before its Room starts;
    // the Room then reads it back like any member would.
    let mut c = join(addr, &committer_id, &name, frame).await?;
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
        Room::new(
            name.clone(),
            committer_id.clone(),
            "committer".into(),
            os_entropy(),
        ),
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
        Room::new(
            name.clone(),
            sender_id.clone(),
            "sender".into(),
            os_entropy(),
        ),
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
            Room::new(
                name.clone(),
                id.clone(),
                format!("newcomer{round}"),
                os_entropy(),
            ),
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

/// Whether `a` is the warning that a room has reached its size limit.
fn room_full(a: &Action) -> bool {
    matches!(
        a,
        Action::Show(Shown::Warning {
            warning: Warning::RoomFull { .. },
            ..
        })
    )
}
