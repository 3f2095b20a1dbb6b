//! Peak memory of `ingestd emulator` while it receives a 200 MiB single request and a 1 GiB
//! chunked upload (8 × 128 MiB byte ranges), streamed by the test without holding the data.
//! The figures (VmHWM from /proc/PID/status) are printed; the bound asserted is 64 MiB.

mod common;

use bytes::Bytes;
use futures_util::stream;
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;
const BOUNDARY: &str = "memTestBoundaryQ9x7";
const BLOCK: usize = 256 * 1024;

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The test content block starting at `offset` (cheap, position-dependent).
fn block(offset: u64) -> Bytes {
    let mut b = vec![0u8; BLOCK];
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(offset + (i as u64) * 8).to_le_bytes());
    }
    Bytes::from(b)
}

/// Streams bytes `[from, from+len)` of the content as one multipart upload request.
async fn send(
    client: &reqwest::Client,
    url: &str,
    range: Option<String>,
    video_id: Option<&str>,
    from: u64,
    len: u64,
    hasher: &mut Sha256,
) -> (u16, serde_json::Value) {
    let mut head = String::new();
    if let Some(id) = video_id {
        head.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"videoId\"\r\n\r\n{id}\r\n"
        ));
    }
    head.push_str(&format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\nContent-Type: application/octet-stream\r\n\r\n"));
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let total_len = head.len() as u64 + len + tail.len() as u64;
    // Hash the content the same way it is generated (blocks are aligned to BLOCK).
    let mut off = from;
    while off < from + len {
        let b = block(off);
        let n = usize::try_from((from + len - off).min(BLOCK as u64)).unwrap();
        hasher.update(&b[..n]);
        off += n as u64;
    }
    let end = from + len;
    let body = stream::iter(
        std::iter::once(Bytes::from(head))
            .chain((from..end).step_by(BLOCK).map(move |o| {
                let n = usize::try_from((end - o).min(BLOCK as u64)).unwrap();
                block(o).slice(..n)
            }))
            .chain(std::iter::once(Bytes::from(tail)))
            .map(Ok::<_, std::io::Error>),
    );
    let mut rb = client
        .post(url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("content-length", total_len)
        .body(reqwest::Body::wrap_stream(body));
    if let Some(r) = range {
        rb = rb.header("content-range", r);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body)
}

/// `GET /_emulator/videos/{id}`.
async fn emulator_video(client: &reqwest::Client, url: &str, id: &str) -> serde_json::Value {
    client
        .get(format!("{url}/_emulator/videos/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_rss_stays_flat_for_200_mib_requests_and_1_gib_uploads() {
    let em = common::Emulator::start();
    let url = &em.url;
    let pid = em.pid();
    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .post(format!("{url}/upload-tokens"))
        .basic_auth(common::API_KEY, Some(""))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload = format!("{url}/upload?token={}", token["token"].as_str().unwrap());
    let baseline = vm_hwm_kib(pid);

    // One 200 MiB request without Content-Range.
    let mut h = Sha256::new();
    let (status, v) = send(&client, &upload, None, None, 0, 200 * MIB, &mut h).await;
    assert_eq!(status, 201, "{v}");
    let whole_sha = hex::encode(h.finalize());
    let rec = emulator_video(&client, url, v["videoId"].as_str().unwrap()).await;
    assert_eq!(rec["sha256"], whole_sha.as_str());
    // One byte more is refused, after the body was read (and not kept).
    let (status, err) = send(
        &client,
        &upload,
        None,
        None,
        0,
        200 * MIB + 1,
        &mut Sha256::new(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["type"],
        "https://docs.api.video/reference/uploaded-file-too-large"
    );
    let after_single = vm_hwm_kib(pid);

    // 1 GiB in 8 byte ranges of 128 MiB, videoId copied from the first answer.
    let total = 1024 * MIB;
    let chunk = 128 * MIB;
    let mut h = Sha256::new();
    let mut id: Option<String> = None;
    let mut from = 0;
    while from < total {
        let len = chunk.min(total - from);
        let range = format!("bytes {from}-{}/{total}", from + len - 1);
        let (status, v) = send(
            &client,
            &upload,
            Some(range),
            id.as_deref(),
            from,
            len,
            &mut h,
        )
        .await;
        assert_eq!(status, 201, "{v}");
        id = Some(v["videoId"].as_str().unwrap().to_owned());
        from += len;
    }
    let id = id.unwrap();
    let rec = emulator_video(&client, url, &id).await;
    assert_eq!(rec["complete"], true);
    assert_eq!(rec["sha256"], hex::encode(h.finalize()).as_str());
    let after_chunked = vm_hwm_kib(pid);

    eprintln!(
        "emulator VmHWM: baseline {} KiB, after a 200 MiB request {} KiB, after a 1 GiB chunked upload {} KiB",
        baseline, after_single, after_chunked
    );
    assert!(
        after_chunked < 64 * 1024,
        "peak RSS {after_chunked} KiB ≥ 64 MiB"
    );
}
