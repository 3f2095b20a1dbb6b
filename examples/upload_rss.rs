//! Peak memory of a large chunked upload through the api.video client (issue 2: both processes
//! must stay under 64 MiB for 1 GiB). Starts `ingestd emulator` itself, uploads a generated file in
//! chunks, checks the endpoint's SHA-256, and prints both processes' peak RSS (VmHWM).
//!
//! ```text
//! cargo build --release && cargo run --release --example upload_rss -- \
//!     --bin target/release/ingestd --mib 1024 --chunk-mib 64
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ingestd::api::{AuthMode, Client, ClientOptions, UploadRequest, plan_chunks};
use ingestd::secret::Secret;
use sha2::{Digest, Sha256};

const KEY: &str = "rssProbeApiKey0123456789";

fn vm_hwm(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// Writes `mib` MiB of cheap pseudo-random data and returns its SHA-256.
fn make_file(path: &Path, mib: u64) -> std::io::Result<String> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut h = Sha256::new();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        h.update(&buf);
        f.write_all(&buf)?;
    }
    f.flush()?;
    Ok(hex::encode(h.finalize()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(arg(&args, "--bin", "target/release/ingestd"));
    let mib: u64 = arg(&args, "--mib", "1024").parse()?;
    let chunk: u64 = arg(&args, "--chunk-mib", "64").parse::<u64>()? << 20;

    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("big.mp4");
    let expected = make_file(&file, mib)?;

    let mut child = Command::new(&bin)
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            KEY,
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id().to_string();
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let url = loop {
        let line = lines.next().ok_or("emulator exited")??;
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.trim().to_owned();
        }
    };

    let client = Client::new(ClientOptions::new(url.parse()?))?
        .with_api_key(Secret::new(KEY), AuthMode::Basic);
    let token = Secret::new(client.create_upload_token(0).await?.token);
    let total = std::fs::metadata(&file)?.len();
    let started = std::time::Instant::now();
    let mut video_id: Option<String> = None;
    for c in plan_chunks(total, chunk) {
        let r = client
            .upload(
                &token,
                UploadRequest {
                    path: file.clone(),
                    file_name: "big.mp4".into(),
                    range: Some(c),
                    whole_len: None,
                    video_id: video_id.clone(),
                    observer: None,
                    file: None,
                },
            )
            .await?;
        video_id = Some(r.video_id);
    }
    let elapsed = started.elapsed();
    let id = video_id.ok_or("empty file")?;
    let info: serde_json::Value = reqwest::get(format!("{url}/_emulator/videos/{id}"))
        .await?
        .json()
        .await?;
    println!(
        "uploaded {mib} MiB in {} chunks of {} MiB in {:.1} s",
        total.div_ceil(chunk),
        chunk >> 20,
        elapsed.as_secs_f64()
    );
    println!(
        "sha256 match: {}",
        info["sha256"].as_str() == Some(expected.as_str())
    );
    println!("client peak RSS (VmHWM): {}", vm_hwm("self"));
    println!("emulator peak RSS (VmHWM): {}", vm_hwm(&pid));
    child.kill()?;
    child.wait()?;
    Ok(())
}
