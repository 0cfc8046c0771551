//! On a Unix socket the `:authority` of an HTTP/2 request means nothing, yet gRPC's C core (the
//! `tritonclient.grpc` client) sends the socket's path there, which hyper's HTTP/2 layer refuses
//! as a malformed request (RST_STREAM PROTOCOL_ERROR) before any service sees it. This reader
//! sits between the Unix socket and hyper: it decodes each request header block (HPACK, with the
//! client's dynamic table), replaces an `:authority` that is not a valid URI authority with
//! `localhost`, and re-encodes the block as literals that never touch hyper's dynamic table.
//! Every other frame, and everything the server writes, passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4), passed through as is.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may set: re-encoded blocks are split to it.
const MAX_FRAME: usize = 16_384;
/// What an unusable authority becomes.
const LOCAL_AUTHORITY: &[u8] = b"localhost";

/// A HEADERS frame whose block goes on in CONTINUATION frames.
struct OpenBlock {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// Rewrites the unusable `:authority` of HTTP/2 requests read from `inner` (see the module).
pub struct AuthorityRewrite<S> {
    inner: S,
    /// Bytes read from `inner`, not yet a whole frame.
    raw: Vec<u8>,
    /// Bytes ready for hyper.
    ready: Vec<u8>,
    ready_at: usize,
    /// Bytes to hand on as they are before the next frame header: the connection preface,
    /// then the rest of a frame other than a header block (a DATA frame's tensor, read
    /// straight into hyper's buffer).
    verbatim_left: usize,
    decoder: hpack::Decoder<'static>,
    open: Option<OpenBlock>,
    /// After a block that would not decode: everything passes through (hyper then reports the
    /// compression error to the client itself).
    passthrough: bool,
}

impl<S> AuthorityRewrite<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            raw: Vec::new(),
            ready: Vec::new(),
            ready_at: 0,
            verbatim_left: PREFACE_LEN,
            decoder: hpack::Decoder::new(),
            open: None,
            passthrough: false,
        }
    }

    /// Moves every whole frame of `raw` to `ready`, header blocks rewritten.
    fn process(&mut self) {
        if self.passthrough {
            self.ready.append(&mut self.raw);
            return;
        }
        let mut at = 0;
        loop {
            if self.verbatim_left > 0 {
                let n = self.verbatim_left.min(self.raw.len() - at);
                self.ready.extend_from_slice(&self.raw[at..at + n]);
                self.verbatim_left -= n;
                at += n;
            }
            if self.verbatim_left > 0 || self.raw.len() - at < FRAME_HEADER_LEN {
                break;
            }
            let h = &self.raw[at..at + FRAME_HEADER_LEN];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            let end = at + FRAME_HEADER_LEN + len;
            if kind != HEADERS && kind != CONTINUATION {
                self.ready.extend_from_slice(&self.raw[at..at + FRAME_HEADER_LEN]);
                at += FRAME_HEADER_LEN;
                self.verbatim_left = len;
                continue;
            }
            if self.raw.len() < end {
                break;
            }
            let frame = at..end;
            let payload = &self.raw[at + FRAME_HEADER_LEN..end];
            let block = match kind {
                HEADERS => Self::open_block(stream, flags, payload),
                CONTINUATION if self.open.as_ref().is_some_and(|o| o.stream == stream) => {
                    let mut open = self.open.take().expect("checked");
                    open.fragment.extend_from_slice(payload);
                    Some(open)
                }
                _ => None,
            };
            match block {
                Some(block) if flags & END_HEADERS != 0 => {
                    if !self.rewrite(&block) {
                        // The bytes of the frames before this one are gone; hand hyper what
                        // remains as is, and stop looking.
                        self.ready.extend_from_slice(&self.raw[frame.start..]);
                        self.raw.clear();
                        self.passthrough = true;
                        return;
                    }
                }
                Some(block) => self.open = Some(block),
                None => self.ready.extend_from_slice(&self.raw[frame]),
            }
            at = end;
        }
        self.raw.drain(..at);
    }

    /// A HEADERS frame's block fragment, padding and priority taken off; `None` if malformed
    /// (then the frame passes through for hyper to refuse).
    fn open_block(stream: u32, flags: u8, payload: &[u8]) -> Option<OpenBlock> {
        let mut body = payload;
        let mut pad = 0;
        if flags & PADDED != 0 {
            pad = usize::from(*body.first()?);
            body = &body[1..];
        }
        let priority = if flags & PRIORITY != 0 {
            let p: [u8; 5] = body.get(..5)?.try_into().ok()?;
            body = &body[5..];
            Some(p)
        } else {
            None
        };
        let fragment = body.get(..body.len().checked_sub(pad)?)?.to_vec();
        Some(OpenBlock { stream, end_stream: flags & END_STREAM != 0, priority, fragment })
    }

    /// Decodes `block`, fixes its authority and writes it to `ready` as HEADERS (+ CONTINUATION)
    /// frames; false if it does not decode.
    fn rewrite(&mut self, block: &OpenBlock) -> bool {
        let Ok(headers) = self.decoder.decode(&block.fragment) else {
            return false;
        };
        let mut encoded = Vec::with_capacity(block.fragment.len() + 32);
        for (name, value) in &headers {
            let value =
                if name == b":authority" && tonic::codegen::http::uri::Authority::try_from(value.as_slice()).is_err() {
                    LOCAL_AUTHORITY
                } else {
                    value.as_slice()
                };
            literal(&mut encoded, name, value);
        }
        let mut first = Vec::with_capacity(5 + encoded.len());
        if let Some(p) = block.priority {
            first.extend_from_slice(&p);
        }
        let room = MAX_FRAME - first.len();
        let (head, mut rest) = encoded.split_at(room.min(encoded.len()));
        first.extend_from_slice(head);
        let mut flags = if block.end_stream { END_STREAM } else { 0 };
        if block.priority.is_some() {
            flags |= PRIORITY;
        }
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        self.frame(HEADERS, flags, block.stream, &first);
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(MAX_FRAME.min(rest.len()));
            rest = after;
            self.frame(CONTINUATION, if rest.is_empty() { END_HEADERS } else { 0 }, block.stream, chunk);
        }
        true
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len();
        self.ready.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        self.ready.extend_from_slice(&stream.to_be_bytes());
        self.ready.extend_from_slice(payload);
    }
}

/// A header as a literal without indexing, both strings literal (RFC 7541 §6.2.2): the
/// receiver's dynamic table is never used.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    for s in [name, value] {
        hpack::encoder::encode_integer_into(s.len(), 7, 0, out).expect("writing to a Vec");
        out.extend_from_slice(s);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityRewrite<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    this.ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.raw.is_empty() && this.verbatim_left > 0 && !this.passthrough {
                // Inside a frame that passes as is: straight into the caller's buffer.
                let n = this.verbatim_left.min(buf.remaining());
                let mut direct = ReadBuf::new(buf.initialize_unfilled_to(n));
                match Pin::new(&mut this.inner).poll_read(cx, &mut direct) {
                    Poll::Ready(Ok(())) => {
                        let got = direct.filled().len();
                        buf.advance(got);
                        this.verbatim_left -= got;
                        return Poll::Ready(Ok(()));
                    }
                    other => return other,
                }
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // End of stream: whatever is left (a partial frame) goes to hyper as is.
                    if this.raw.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    this.passthrough = true;
                }
                Poll::Ready(Ok(())) => this.raw.extend_from_slice(read.filled()),
            }
            this.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityRewrite<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for AuthorityRewrite<tokio::net::UnixStream> {
    type ConnectInfo = <tokio::net::UnixStream as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Reads everything the rewriter hands on from `wire`.
    fn through(wire: Vec<u8>) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut r = AuthorityRewrite::new(std::io::Cursor::new(wire));
            let mut out = Vec::new();
            r.read_to_end(&mut out).await.unwrap();
            out
        })
    }

    /// The header blocks of the frames after the preface, decoded.
    fn blocks(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        assert_eq!(&bytes[..PREFACE_LEN], PREFACE);
        let mut d = hpack::Decoder::new();
        let (mut at, mut out) = (PREFACE_LEN, Vec::new());
        while at < bytes.len() {
            let len = (usize::from(bytes[at]) << 16) | (usize::from(bytes[at + 1]) << 8) | usize::from(bytes[at + 2]);
            if bytes[at + 3] == HEADERS {
                assert_ne!(bytes[at + 4] & END_HEADERS, 0);
                out.push(d.decode(&bytes[at + 9..at + 9 + len]).unwrap());
            }
            at += 9 + len;
        }
        out
    }

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_the_rest_stays() {
        // The client's encoder indexes the path authority, then refers to it in the next request.
        let mut enc = hpack::Encoder::new();
        let request: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/inference.GRPCInferenceService/ModelInfer"),
            (b":authority", b"/tmp/lalarand.sock"),
            (b"te", b"trailers"),
        ];
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        let first = enc.encode(request.clone());
        // Split over HEADERS + CONTINUATION, with padding, to take the long road.
        let (a, b) = first.split_at(5);
        let mut padded = vec![2];
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0]);
        wire.extend(frame(HEADERS, PADDED, 1, &padded));
        wire.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        wire.extend(frame(0x0, END_STREAM, 1, b"data"));
        wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &enc.encode(request.clone())));
        let out = through(wire);
        let got = blocks(&out);
        assert_eq!(got.len(), 2);
        for block in got {
            let want: Vec<(Vec<u8>, Vec<u8>)> = request
                .iter()
                .map(|(n, v)| (n.to_vec(), if *n == b":authority" { b"localhost".to_vec() } else { v.to_vec() }))
                .collect();
            assert_eq!(block, want);
        }
        assert!(out.windows(4).any(|w| w == b"data"), "DATA frames pass through");
    }

    /// Hands out its bytes at most `step` at a time, as a socket may.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let n = self.step.min(self.bytes.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.bytes[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn frames_split_across_reads_come_out_whole_and_in_order() {
        let mut enc = hpack::Encoder::new();
        let request: Vec<(&[u8], &[u8])> = vec![(b":method", b"POST"), (b":authority", b"/tmp/l.sock")];
        let tensor: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(HEADERS, END_HEADERS, 1, &enc.encode(request.clone())));
        wire.extend(frame(0x0, 0, 1, &tensor[..16_384]));
        wire.extend(frame(0x0, END_STREAM, 1, &tensor[16_384..]));
        wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &enc.encode(request)));
        for step in [1, 7, 9, 4096, 100_000] {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let out = rt.block_on(async {
                let mut r = AuthorityRewrite::new(Trickle { bytes: wire.clone(), at: 0, step });
                let mut out = Vec::new();
                r.read_to_end(&mut out).await.unwrap();
                out
            });
            let got = blocks(&out);
            assert_eq!(got.len(), 2, "step {step}");
            assert!(got.iter().all(|b| b[1].1 == b"localhost"), "step {step}");
            // The DATA payloads arrive unchanged, in order.
            let first = out.windows(64).position(|w| w == &tensor[..64]).expect("first DATA frame");
            assert_eq!(&out[first..first + 16_384], &tensor[..16_384], "step {step}");
            let second = first + 16_384 + FRAME_HEADER_LEN;
            assert_eq!(&out[second..second + tensor.len() - 16_384], &tensor[16_384..], "step {step}");
        }
    }

    #[test]
    fn a_valid_authority_is_kept() {
        let mut enc = hpack::Encoder::new();
        let request: Vec<(&[u8], &[u8])> = vec![(b":method", b"GET"), (b":authority", b"localhost:8001")];
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(HEADERS, END_HEADERS, 1, &enc.encode(request.clone())));
        let got = blocks(&through(wire));
        assert_eq!(got[0][1], (b":authority".to_vec(), b"localhost:8001".to_vec()));
    }

    #[test]
    fn a_block_that_does_not_decode_passes_through_unchanged() {
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
        wire.extend(frame(0x0, 0, 1, b"x"));
        assert_eq!(through(wire.clone()), wire);
    }
}
