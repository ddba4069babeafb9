//! `hush bench file`: how fast a sealed file goes up to a local relay and
//! comes back, beside what the machine allows.
//!
//! ```text
//!   seal only     ── the file's chunks sealed and opened in memory (one core)
//!   loopback copy ── the same bytes through a 127.0.0.1 TCP socket, raw
//!   disk sync     ── the same bytes written to a file in the relay's
//!                    temporary folder and fdatasynced every 8 MiB: what
//!                    durable storage allows here
//!   upload        ── FileDeclare, then FilePut × chunks (UPLOAD_WINDOW
//!                    unacknowledged), each sealed as the client seals it,
//!                    until every FileStored is back (the relay syncs the
//!                    chunks that arrived together, then acknowledges them)
//!   download      ── FileGetRange × ranges (DOWNLOAD_WINDOW chunks asked),
//!                    each chunk opened and unpadded, until the last is in
//! ```
//!
//! The relay is a child `hush server`, as for the other workloads; the
//! client is this process, speaking the link protocol with the same
//! sealing code (`hush_crypto::file`) and windows (`files::UPLOAD_WINDOW`,
//! `DOWNLOAD_WINDOW`, `DOWNLOAD_RANGE`) the client uses. The flags change
//! the windows, for the A/B runs of docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_crypto::file::{
    FileId, FileKey, chunk_count, chunk_range, open_chunk, padded_chunk, padded_len, seal_chunk,
    sealed_len, unpad_chunk,
};
use hush_proto::{ClientMsg, RelayMsg, RoomName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::child_relay::{bench_identity, runtime, start_relay_with};
use super::live::join;
use crate::paths::parse_size;

/// Flags of `hush bench file`.
#[derive(Debug, clap::Args)]
pub(crate) struct FileArgs {
    /// The file's size (e.g. 100MiB).
    #[arg(long, default_value = "100MiB", value_parser = parse_size)]
    size: u64,
    /// Chunks of the upload sent and not yet acknowledged.
    #[arg(long, default_value_t = hush_client::files::UPLOAD_WINDOW)]
    upload_window: u32,
    /// Chunks of the download asked for and not yet received.
    #[arg(long, default_value_t = hush_client::files::DOWNLOAD_WINDOW)]
    download_window: u32,
    /// Chunks per range request; 0 asks with one FileGet per chunk.
    #[arg(long, default_value_t = hush_client::files::DOWNLOAD_RANGE)]
    range: u32,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// One measured figure: what, and MiB/s.
struct Rate {
    what: &'static str,
    mib_s: f64,
}

fn mib_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64().max(1e-9)
}

/// Runs the workload.
pub(crate) fn file(a: &FileArgs) -> Result<()> {
    if a.size == 0 || a.size > hush_crypto::file::MAX_FILE_BYTES {
        bail!("--size must be between 1 byte and 4 GiB");
    }
    if a.upload_window == 0 || a.download_window == 0 {
        bail!("--upload-window and --download-window must be at least 1");
    }
    if a.range > hush_proto::msg::MAX_FILE_RANGE || a.range > a.download_window {
        bail!(
            "--range must be at most {} and at most --download-window",
            hush_proto::msg::MAX_FILE_RANGE
        );
    }
    let (identity, key_path) = bench_identity()?;
    let limit = format!("{}", a.size.saturating_mul(2));
    let relay = start_relay_with(
        &key_path,
        &[
            "--max-file-size".into(),
            limit.clone(),
            "--file-quota".into(),
            format!("{}", a.size.saturating_mul(4)),
        ],
    )?;
    let rt = runtime()?;
    let mut data = vec![0u8; usize::try_from(a.size).context("--size too large here")?];
    hush_crypto::random_bytes(&mut data);
    let size = a.size;
    let rates = rt.block_on(async {
        let mut rates = Vec::new();
        let seal = seal_only(&data);
        rates.push(Rate {
            what: "seal and open only, in memory",
            mib_s: mib_s(size, seal),
        });
        rates.push(Rate {
            what: "raw loopback TCP copy",
            mib_s: mib_s(size, loopback_copy(&data).await?),
        });
        rates.push(Rate {
            what: "disk write, fdatasync / 8 MiB",
            mib_s: mib_s(size, disk_sync(&data)?),
        });
        let room = RoomName::new("bench-files").context("room name")?;
        let mut c = join(&relay.addr, &identity, &room, hush_proto::DEFAULT_MAX_FRAME).await?;
        let key = FileKey::random();
        let id = FileId::random();
        let up = upload(&mut c, &room, &key, &id, &data, a.upload_window).await?;
        rates.push(Rate {
            what: "upload through the relay",
            mib_s: mib_s(size, up),
        });
        let down = download(
            &mut c,
            &room,
            &key,
            &id,
            &data,
            (a.download_window, a.range),
        )
        .await?;
        rates.push(Rate {
            what: "download through the relay",
            mib_s: mib_s(size, down),
        });
        anyhow::Ok(rates)
    })?;
    drop(relay);
    if a.json {
        let rows: Vec<String> = rates
            .iter()
            .map(|r| format!("{{\"what\":\"{}\",\"mib_per_s\":{:.1}}}", r.what, r.mib_s))
            .collect();
        println!(
            "{{\"size\":{size},\"chunk\":{},\"rates\":[{}]}}",
            hush_crypto::file::CHUNK_PLAIN,
            rows.join(",")
        );
    } else {
        println!(
            "file of {} in {} chunks of 32 KiB (upload window {}, download window {}, range {}):",
            hush_client::display::human_size(size),
            chunk_count(padded_len(size)),
            a.upload_window,
            a.download_window,
            a.range
        );
        for r in &rates {
            println!("  {:<32} {:>9.1} MiB/s", r.what, r.mib_s);
        }
    }
    Ok(())
}

/// Every chunk sealed then opened, in memory: the crypto's share.
fn seal_only(data: &[u8]) -> Duration {
    let size = data.len() as u64;
    let (key, id) = (FileKey::random(), FileId::random());
    let padded = padded_len(size);
    let total = chunk_count(padded);
    let start = Instant::now();
    for i in 0..total {
        let r = chunk_range(size, i);
        let plain = padded_chunk(slice(data, &r), padded, i).unwrap_or_default();
        if let Ok(sealed) = seal_chunk(&key, &id, i, total, &plain) {
            let _ = open_chunk(&key, &id, i, total, &sealed);
        }
    }
    start.elapsed()
}

fn slice<'a>(data: &'a [u8], r: &std::ops::Range<u64>) -> &'a [u8] {
    let (a, b) = (
        usize::try_from(r.start).unwrap_or(0),
        usize::try_from(r.end).unwrap_or(0),
    );
    data.get(a..b).unwrap_or_default()
}

/// The bytes through a loopback socket, 32 KiB writes, no crypto.
async fn loopback_copy(data: &[u8]) -> Result<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let len = data.len();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < len {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        std::io::Result::Ok(got)
    });
    let start = Instant::now();
    let mut w = tokio::net::TcpStream::connect(addr).await?;
    for chunk in data.chunks(32 * 1024) {
        w.write_all(chunk).await?;
    }
    w.flush().await?;
    let got = reader.await??;
    if got != len {
        bail!("the loopback copy lost bytes");
    }
    Ok(start.elapsed())
}

/// The bytes written to a file beside the relay's data (the system
/// temporary folder), fdatasynced every 8 MiB and at the end.
fn disk_sync(data: &[u8]) -> Result<Duration> {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("hush-bench-sync-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).with_context(|| format!("{}", path.display()))?;
    let start = Instant::now();
    let written = data.chunks(8 << 20).try_for_each(|group| {
        f.write_all(group)?;
        f.sync_data()
    });
    let took = start.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&path);
    written?;
    Ok(took)
}

/// Declares and uploads every chunk, `window` unacknowledged.
async fn upload(
    c: &mut hush_client::link::Connection,
    room: &RoomName,
    key: &FileKey,
    id: &FileId,
    data: &[u8],
    window: u32,
) -> Result<Duration> {
    let size = data.len() as u64;
    let padded = padded_len(size);
    let total = chunk_count(padded);
    let start = Instant::now();
    c.writer
        .send(&ClientMsg::FileDeclare {
            room: room.clone(),
            file: id.0,
            chunks: total,
            bytes: sealed_len(size),
        })
        .await?;
    wait_for(c, |m| matches!(m, RelayMsg::FileStatus { .. })).await?;
    let (mut next, mut stored) = (0u32, 0u32);
    while stored < total {
        while next < total && next - stored < window {
            let r = chunk_range(size, next);
            let plain = padded_chunk(slice(data, &r), padded, next)?;
            let sealed = seal_chunk(key, id, next, total, &plain)?;
            c.writer
                .send(&ClientMsg::FilePut {
                    room: room.clone(),
                    file: id.0,
                    index: next,
                    data: sealed,
                })
                .await?;
            next += 1;
        }
        wait_for(c, |m| matches!(m, RelayMsg::FileStored { .. })).await?;
        stored += 1;
    }
    Ok(start.elapsed())
}

/// Fetches, opens and checks every chunk, `window` asked for at once, in
/// ranges of `range` chunks (0: a `FileGet` each).
async fn download(
    c: &mut hush_client::link::Connection,
    room: &RoomName,
    key: &FileKey,
    id: &FileId,
    data: &[u8],
    (window, range): (u32, u32),
) -> Result<Duration> {
    let size = data.len() as u64;
    let total = chunk_count(padded_len(size));
    let start = Instant::now();
    let (mut next, mut got) = (0u32, 0u32);
    while got < total {
        let mut asks = Vec::new();
        loop {
            let count = (total - next).min(range.max(1));
            if count == 0 || next - got + count > window {
                break;
            }
            asks.push(if range == 0 {
                ClientMsg::FileGet {
                    room: room.clone(),
                    file: id.0,
                    index: next,
                }
            } else {
                ClientMsg::FileGetRange {
                    room: room.clone(),
                    file: id.0,
                    first: next,
                    count,
                }
            });
            next += count;
        }
        if !asks.is_empty() {
            c.writer.send_all(&asks).await?;
        }
        let msg = wait_for(c, |m| matches!(m, RelayMsg::FileChunk { .. })).await?;
        if let RelayMsg::FileChunk {
            index,
            data: sealed,
            ..
        } = msg
        {
            let plain = open_chunk(key, id, index, total, &sealed)?;
            let real = unpad_chunk(&plain, size, index)?;
            if real != slice(data, &chunk_range(size, index)) {
                bail!("chunk {index} came back different");
            }
        }
        got += 1;
    }
    Ok(start.elapsed())
}

/// The next message `want` matches (pings answered, a refusal an error).
async fn wait_for(
    c: &mut hush_client::link::Connection,
    want: impl Fn(&RelayMsg) -> bool,
) -> Result<RelayMsg> {
    loop {
        let msg = c.reader.recv().await?;
        if want(&msg) {
            return Ok(msg);
        }
        match msg {
            RelayMsg::Ping { nonce } => c.writer.send(&ClientMsg::Pong { nonce }).await?,
            RelayMsg::FileRefused { reason, .. } => bail!("the relay refused: {reason:?}"),
            _ => {}
        }
    }
}
