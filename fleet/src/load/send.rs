//! The timed window: prebuilt pkiMessages POSTed over one keep-alive client, `concurrency`
//! in flight (that many workers, each sending its next request as soon as the last answer is
//! read). Nothing is parsed here; replies are kept as bytes for the check after the window.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest reply body kept (a CertRep is a few KiB).
pub const MAX_REPLY: usize = 1024 * 1024;

/// What one request got.
#[derive(Clone, Debug)]
pub struct Reply {
    /// From sending the request to the last byte of the answer.
    pub latency: Duration,
    /// HTTP status and body, or the transport error's label.
    pub outcome: Result<(u16, Vec<u8>), &'static str>,
}

/// POST each of `bodies` to the SCEP `url`'s PKIOperation; replies in the order of `bodies`.
pub async fn send_all(
    http: &reqwest::Client,
    url: &str,
    bodies: Vec<Vec<u8>>,
    concurrency: usize,
) -> Vec<Reply> {
    let n = bodies.len();
    let sep = if url.contains('?') { '&' } else { '?' };
    let target: Arc<str> = format!("{url}{sep}operation=PKIOperation").into();
    let queue = Arc::new(Mutex::new(bodies.into_iter().enumerate()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (http, target, queue) = (http.clone(), target.clone(), queue.clone());
        workers.spawn(async move {
            let mut mine = Vec::new();
            // The guard is dropped inside `and_then`, before the request is sent; a poisoned
            // lock only means another worker panicked: stop taking work.
            while let Some((i, body)) = queue.lock().ok().and_then(|mut q| q.next()) {
                let t0 = Instant::now();
                let outcome = post(&http, &target, body).await;
                mine.push((
                    i,
                    Reply {
                        latency: t0.elapsed(),
                        outcome,
                    },
                ));
            }
            mine
        });
    }
    let mut replies: Vec<Option<Reply>> = vec![None; n];
    while let Some(done) = workers.join_next().await {
        for (i, r) in done.unwrap_or_default() {
            replies[i] = Some(r);
        }
    }
    replies
        .into_iter()
        .map(|r| {
            r.unwrap_or(Reply {
                latency: Duration::ZERO,
                outcome: Err("not_sent"),
            })
        })
        .collect()
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), &'static str> {
    let mut resp = http
        .post(url)
        .header("content-type", scep::http::CONTENT_TYPE_PKI_MESSAGE)
        .body(body)
        .send()
        .await
        .map_err(label)?;
    let status = resp.status().as_u16();
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(label)? {
        if out.len() + chunk.len() > MAX_REPLY {
            return Err("reply_too_large");
        }
        out.extend_from_slice(&chunk);
    }
    Ok((status, out))
}

fn label(e: reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    }
}
