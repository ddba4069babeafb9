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
//!
//! This file holds the flags, the setup and the result table; the live
//! members and the rounds are in [`super::admit_rounds`], the roster's
//! identities in [`super::identities`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hush_crypto::{Identity, PublicIdentity, Secret32};
use hush_proto::RoomName;
use hush_proto::e2e::{EPOCH_KEY_LABEL, MAX_ROSTER};

use super::admit_rounds::{Sample, admit_rounds};
use super::child_relay::{bench_identity, runtime, start_relay_with};
use super::identities::{generate, roster_keys};
use super::live::build_commit;
use super::stats::{median, ms};

/// Flags of `hush bench admit`.
#[derive(Debug, clap::Args)]
pub(crate) struct AdmitArgs {
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
const MAX_FRAME_LIMIT: usize = hush_proto::frame::MAX_FRAME_CEILING;

/// Runs `hush bench admit`.
pub(crate) fn run(a: &AdmitArgs) -> Result<()> {
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
    let runtime = runtime()?;
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
        let ev = build_commit(&ids[0], &room, (1, [1; 32]), &members)?;
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

// ─── Results ─────────────────────────────────────────────────────────────

/// Prints the table (or the JSON line) of the admitted rounds.
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
