//! Closing a WebSocket so the close frame arrives: which code a read error earns (RFC 6455:
//! 1009 too big, 1007 invalid UTF-8, 1002 protocol violation), and a lingering close. Dropping
//! a socket while the client is still sending (the rest of an oversized message) makes the
//! kernel answer with a reset, and the client's kernel then discards the close frame it had
//! already received (the browser sees 1006). So after the close frame the proxy half-closes,
//! then reads and discards what still arrives, bounded in time and bytes, until the client
//! closes its side.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::SinkExt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

/// Longest a closing socket is drained in all.
const LINGER_TIME: Duration = Duration::from_secs(10);
/// Longest wait for the close frame to be written, and longest silence while draining: a
/// client that has stopped sending but keeps its side open is not waited for.
const LINGER_QUIET: Duration = Duration::from_secs(2);
/// Most bytes read and discarded while closing.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// The close code and reason a failed read earns, or `None` when the connection itself is
/// gone (reset, I/O error) and nothing can be delivered.
pub fn code_for(err: &Error) -> Option<(CloseCode, &'static str)> {
    match err {
        Error::Capacity(_) => Some((CloseCode::Size, "message too big for --max-request-bytes")),
        Error::Utf8 => Some((CloseCode::Invalid, "text frame is not valid UTF-8")),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some((CloseCode::Protocol, "WebSocket protocol violation")),
        _ => None,
    }
}

/// Sends the close frame, then lingers until the client closes its side (or the time, quiet
/// or byte bound passes) so the frame is not lost to a reset.
pub async fn close<S>(
    sink: SplitSink<WebSocketStream<S>, Message>,
    incoming: SplitStream<WebSocketStream<S>>,
    code: CloseCode,
    reason: &'static str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut sink = sink;
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let sent = tokio::time::timeout(LINGER_QUIET, sink.send(Message::Close(Some(frame)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    if let Ok(mut socket) = sink.reunite(incoming) {
        linger(socket.get_mut()).await;
    }
}

/// Half-closes `io` and discards what the peer still sends until it closes, falls quiet, or a
/// bound passes. Returns the bytes discarded.
async fn linger<S>(io: &mut S) -> usize
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The FIN tells the client nothing more comes, so it closes its side once done sending.
    if !matches!(
        tokio::time::timeout(LINGER_QUIET, io.shutdown()).await,
        Ok(Ok(()))
    ) {
        return 0;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut scratch = vec![0u8; 16 * 1024];
    let mut discarded = 0usize;
    while discarded <= LINGER_BYTES {
        let wait_until = deadline.min(Instant::now() + LINGER_QUIET);
        match tokio::time::timeout_at(wait_until, io.read(&mut scratch)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(read)) => discarded += read,
        }
    }
    discarded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_map_to_rfc6455_codes() {
        let size = Error::Capacity(
            tokio_tungstenite::tungstenite::error::CapacityError::MessageTooLong {
                size: 2,
                max_size: 1,
            },
        );
        assert_eq!(code_for(&size).map(|c| c.0), Some(CloseCode::Size));
        assert_eq!(
            code_for(&Error::Utf8).map(|c| c.0),
            Some(CloseCode::Invalid)
        );
        let unmasked = Error::Protocol(ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(code_for(&unmasked).map(|c| c.0), Some(CloseCode::Protocol));
        assert_eq!(code_for(&Error::ConnectionClosed), None);
        let reset = Error::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(code_for(&reset), None);
    }

    #[tokio::test]
    async fn lingering_drains_until_the_peer_closes() {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let peer = tokio::spawn(async move {
            // Keeps sending after the half-close, more than the pipe holds, then sees the EOF.
            theirs.write_all(&[7u8; 10_000]).await.expect("write");
            let mut rest = Vec::new();
            theirs.read_to_end(&mut rest).await.expect("eof");
            rest.len()
        });
        let discarded = tokio::time::timeout(Duration::from_secs(10), linger(&mut ours))
            .await
            .expect("linger ends when the peer closes");
        assert_eq!(discarded, 10_000);
        let peer_read = tokio::time::timeout(Duration::from_secs(10), peer)
            .await
            .expect("peer done")
            .expect("peer task");
        assert_eq!(peer_read, 0, "the peer saw our half-close as end of stream");
    }
}
