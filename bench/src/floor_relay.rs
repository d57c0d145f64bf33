//! The floor of a per-token relay in Rust (issue 21): the least work that still reads every
//! token from the upstream socket and writes it to the client's socket as its own Deep Chat
//! frame. One task per conversation (no hop between the upstream read and the client write), a
//! hand-written HTTP/1.1 request and chunked decoder, the token found by a byte search instead
//! of a JSON parse, no timers, no limits, no escaping (the mock's tokens need none), one write
//! per frame. It is not a usable relay; it shows what any relay on this machine pays per token
//! in system calls and wake-ups, so the proxy's "÷ mock" can be read against it in the same run.
//!
//! It takes the proxy's command line (`--listen ADDR openai --base-url URL --model M`), so the
//! bench starts it through `bench/floor-relay` as `DEEPCHAT_BENCH_PROXY`.

use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on for Deep Chat WebSockets.
    #[arg(long)]
    listen: SocketAddr,
    /// The rest of the proxy's command line; only `--base-url http://HOST:PORT/…` is read.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(args: Args) -> ExitCode {
    let Some(upstream) = upstream_authority(&args.rest) else {
        eprintln!("floor-relay: needs --base-url http://HOST:PORT/v1");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("floor-relay: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args.listen, upstream)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("floor-relay: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `HOST:PORT` of `--base-url http://HOST:PORT/…`.
fn upstream_authority(rest: &[String]) -> Option<String> {
    let url = rest
        .iter()
        .position(|arg| arg == "--base-url")
        .and_then(|at| rest.get(at + 1))?;
    let authority = url.strip_prefix("http://")?.split('/').next()?;
    (!authority.is_empty()).then(|| authority.to_owned())
}

async fn serve(listen: SocketAddr, upstream: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, say: wait instead of spinning.
                eprintln!("floor-relay: accept: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Err(err) = conversation(tcp, &upstream).await {
                eprintln!("floor-relay: {err}");
            }
        });
    }
}

async fn conversation(tcp: TcpStream, upstream: &str) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let mut ws = tokio_tungstenite::accept_async(tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message.map_err(|e| format!("read: {e}"))? else {
            continue;
        };
        let prompt = newest_text(text.as_str()).ok_or("not a Deep Chat request")?;
        relay(&mut ws, upstream, &prompt).await?;
    }
    Ok(())
}

/// The newest message's text of a Deep Chat request body.
fn newest_text(body: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    let text = body.get("messages")?.as_array()?.last()?.get("text")?;
    Some(text.as_str()?.to_owned())
}

/// One reply: the request, then a frame per content event, then the stop key.
async fn relay(
    ws: &mut WebSocketStream<TcpStream>,
    upstream: &str,
    prompt: &str,
) -> Result<(), String> {
    let mut socket = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    let _ = socket.set_nodelay(true);
    let body = serde_json::json!({
        "model": "bench",
        "stream": true,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {upstream}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("upstream write: {e}"))?;

    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut head_done = false;
    let mut body = ChunkedBody::default();
    loop {
        let read = socket
            .read_buf(&mut input)
            .await
            .map_err(|e| format!("upstream read: {e}"))?;
        if read == 0 {
            return Err("upstream closed before [DONE]".into());
        }
        if !head_done {
            let Some(end) = find(&input, b"\r\n\r\n") else {
                continue;
            };
            if !input.starts_with(b"HTTP/1.1 200") {
                return Err("upstream answered with an error".into());
            }
            input.advance(end + 4);
            head_done = true;
        }
        body.decode(&mut input)?;
        while let Some(end) = find(&body.events, b"\n\n") {
            let event = body.events.split_to(end + 2);
            if event.starts_with(b"data: [DONE]") {
                send(ws, Message::text(r#"{"text":"stop-key"}"#)).await?;
                return Ok(());
            }
            if let Some(token) = content(&event).filter(|token| !token.is_empty()) {
                let token = std::str::from_utf8(token).map_err(|_| "token is not UTF-8")?;
                send(ws, Message::text(format!(r#"{{"text":"{token}"}}"#))).await?;
            }
        }
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, frame: Message) -> Result<(), String> {
    ws.send(frame).await.map_err(|e| format!("client: {e}"))
}

/// HTTP/1.1 chunked transfer decoding into a buffer of SSE text.
#[derive(Default)]
struct ChunkedBody {
    /// Bytes still owed by the chunk being read.
    remaining: usize,
    /// The chunk's trailing CRLF is still to be skipped.
    crlf_due: bool,
    /// The last chunk (size 0) has been read.
    finished: bool,
    events: BytesMut,
}

impl ChunkedBody {
    fn decode(&mut self, input: &mut BytesMut) -> Result<(), String> {
        while !self.finished {
            if self.remaining > 0 {
                let take = self.remaining.min(input.len());
                self.events.extend_from_slice(&input[..take]);
                input.advance(take);
                self.remaining -= take;
                if self.remaining > 0 {
                    return Ok(());
                }
                self.crlf_due = true;
            }
            if self.crlf_due {
                if input.len() < 2 {
                    return Ok(());
                }
                input.advance(2);
                self.crlf_due = false;
            }
            let Some(line_end) = find(input, b"\r\n") else {
                return Ok(());
            };
            let size = std::str::from_utf8(&input[..line_end])
                .ok()
                .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok())
                .ok_or("bad chunk size")?;
            input.advance(line_end + 2);
            self.finished = size == 0;
            self.remaining = size;
        }
        Ok(())
    }
}

/// The text of `"content":"…"` in an event (no escapes: the mock's tokens have none).
fn content(event: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = br#""content":""#;
    let start = find(event, KEY)? + KEY.len();
    let len = event[start..].iter().position(|&b| b == b'"')?;
    Some(&event[start..start + len])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_body_is_decoded_across_reads() {
        let mut body = ChunkedBody::default();
        let wire = b"5\r\nhello\r\n3\r\n ab\r\n0\r\n\r\n";
        let mut input = BytesMut::new();
        for byte in wire {
            input.extend_from_slice(&[*byte]);
            body.decode(&mut input).unwrap();
        }
        assert_eq!(&body.events[..], b"hello ab");
    }

    #[test]
    fn content_is_found_in_an_openai_chunk() {
        let event = br#"data: {"choices":[{"index":0,"delta":{"content":"7:1:123;"}}]}"#;
        assert_eq!(content(event), Some(&b"7:1:123;"[..]));
        assert_eq!(content(b"data: {\"choices\":[]}"), None);
    }

    #[test]
    fn base_url_gives_the_authority() {
        let rest: Vec<String> = [
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(upstream_authority(&rest).as_deref(), Some("127.0.0.1:9"));
        assert_eq!(upstream_authority(&rest[..1]), None);
    }
}
