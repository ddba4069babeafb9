//! The bench's clients, below every workload: plain connections joined
//! to a room ([`join`], [`join_all`]), members running a real Room
//! ([`Live`]), and the commits the bench builds itself ([`build_commit`]).
//! A helper: it imports no other bench file.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hush_client::link::{Connection, LinkReader, LinkWriter};
use hush_crypto::{Identity, PublicIdentity, Secret32};
use hush_proto::e2e::{
    self, Commit, EPOCH_KEY_LABEL, EVENT_SIGNATURE_CONTEXT, HistoryVisibility, KeyEnvelope, Member,
    Payload, RoomSettings, SignedBody,
};
use hush_proto::msg::encode;
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName};
use hush_room::{Action, Room};

/// Connects (a full handshake) and joins `room`, returning once the relay
/// confirmed the join.
pub(crate) async fn join(
    addr: &str,
    identity: &Arc<Identity>,
    room: &RoomName,
    max_frame: usize,
) -> Result<Connection> {
    let mut c = Connection::connect(addr, identity.clone(), max_frame, |_| Ok(())).await?;
    c.writer
        .send(&ClientMsg::Join { room: room.clone() })
        .await?;
    loop {
        if let RelayMsg::Joined { .. } = c.reader.recv().await? {
            return Ok(c);
        }
    }
}

/// `clients` connections by [`join`], one after the other, with progress
/// on stderr.
pub(crate) async fn join_all(
    addr: &str,
    identity: &Arc<Identity>,
    room: &RoomName,
    clients: usize,
) -> Result<Vec<Connection>> {
    let mut held = Vec::with_capacity(clients);
    for i in 0..clients {
        if i % 500 == 0 {
            eprintln!("connected {i} of {clients}");
        }
        held.push(
            join(addr, identity, room, hush_proto::DEFAULT_MAX_FRAME)
                .await
                .with_context(|| format!("client {i} could not join"))?,
        );
    }
    Ok(held)
}

// ─── Commits the bench builds ────────────────────────────────────────────

/// A commit opening `parent + 1` (whose commit has id `parent_commit`,
/// zeros for the room's creation) for `members`, signed by `me`: the same
/// operations as `Room::commit` (fresh epoch key, one OAEP envelope per
/// member, one signature). Rules: open room, history from admission on.
pub(crate) fn build_commit(
    me: &Identity,
    room: &RoomName,
    (parent, parent_commit): (u64, [u8; 32]),
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
    let epoch = parent + 1;
    let mut names_salt = [0; 16];
    hush_crypto::random_bytes(&mut names_salt);
    let names_key = e2e::names_key(&key, room, epoch, &names_salt);
    let named: Vec<(hush_crypto::Fingerprint, &str)> = members
        .iter()
        .map(|(k, nick)| (k.fingerprint(), nick.as_str()))
        .collect();
    let sealed = e2e::seal_names(&names_key, room, epoch, &named);
    let mut commit = Payload::Commit(Commit {
        parent_epoch: parent,
        parent_commit,
        committer_key: me.public().spki_der().to_vec(),
        members: members
            .iter()
            .zip(sealed)
            .map(|((k, _), nick)| Member {
                public_key: k.spki_der().to_vec(),
                nick,
            })
            .collect(),
        envelopes,
        settings: RoomSettings {
            creator: me.fingerprint(),
            invite_only: false,
            history: HistoryVisibility::Joined,
        },
        history: Vec::new(),
        names_salt,
        confirm: [0; 32],
    });
    let confirm = e2e::commit_confirmation(&key, room, epoch, &me.fingerprint(), &commit);
    if let Payload::Commit(c) = &mut commit {
        c.confirm = confirm;
    }
    let payload = encode(&commit);
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

// ─── Live members ────────────────────────────────────────────────────────

/// A member running a real Room on a real connection, driven as the
/// client app drives it (its link messages, checkpoint requests
/// included, are sent as the client sends them).
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
        let join = room.on_connected(relay_frame.min(frame));
        let mut live = Self {
            reader: c.reader,
            writer: c.writer,
            relay: c.relay,
            room,
        };
        live.send_link(&join).await?;
        Ok(live)
    }

    /// One relay message through the Room (as `hush_client::app` does):
    /// the link messages it asks for are sent here; the rest is returned.
    pub(crate) async fn on_relay(&mut self, msg: RelayMsg) -> Result<Vec<Action>> {
        let actions = match msg {
            RelayMsg::Ping { nonce } => {
                self.writer.send(&ClientMsg::Pong { nonce }).await?;
                Vec::new()
            }
            RelayMsg::Closing { reason } => bail!("the relay closed the connection: {reason:?}"),
            other => self.room.on_relay(other, &self.relay, Instant::now()),
        };
        self.send_link(&actions).await?;
        Ok(actions)
    }

    /// Sends the [`Action::Send`]s among `actions`, in order.
    async fn send_link(&mut self, actions: &[Action]) -> Result<()> {
        let link: Vec<ClientMsg> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(msg) => Some(msg.clone()),
                _ => None,
            })
            .collect();
        if !link.is_empty() {
            self.writer.send_all(&link).await?;
        }
        Ok(())
    }
}
