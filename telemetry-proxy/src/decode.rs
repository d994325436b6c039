//! [`Decoder`]: a compressed body (`Content-Encoding: gzip`, `deflate`, `br`, `zstd`) decoded on
//! the side, piece by piece as it passes, for recording — the bytes forwarded are never
//! touched. Bounded: each piece's output is handed on in slices of at most a few tens of KiB and
//! never kept, and the total output has a limit (a small body that inflates to gigabytes stops
//! being read, it does not fill memory).

use std::io::Write;

/// Output handed on at once, at most (the decoders' own buffers are 32 KiB).
const SLICE: usize = 64 * 1024;
/// Most output one piece of input may decode to (a piece of a few KiB that inflates further is
/// a bomb, whatever the total limit).
const PIECE_OUTPUT_LIMIT: u64 = 16 << 20;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// An encoding the proxy does not read (or several stacked).
    #[error("content encoding {0:?} is not one the proxy reads (gzip, deflate, br, zstd)")]
    Unsupported(String),
    /// The bytes are not what their encoding says.
    #[error("the {encoding} body is corrupt: {reason}")]
    Corrupt {
        /// The encoding.
        encoding: &'static str,
        /// The decoder's words.
        reason: String,
    },
    /// The decoded body is larger than the limit.
    #[error("the {encoding} body decodes to more than {limit} bytes")]
    TooLarge {
        /// The encoding.
        encoding: &'static str,
        /// The limit.
        limit: u64,
    },
}

/// Collects what a decoder writes until it is drained; refuses to hold more than `room`.
#[derive(Debug, Default)]
struct Sink {
    buf: Vec<u8>,
    room: u64,
    overflowed: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.buf.len() + buf.len()) as u64 > self.room {
            self.overflowed = true;
            return Err(std::io::Error::other("decoded output over the limit"));
        }
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Gzip(flate2::write::MultiGzDecoder<Sink>),
    Zlib(flate2::write::ZlibDecoder<Sink>),
    Deflate(flate2::write::DeflateDecoder<Sink>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
    Zstd(zstd::stream::write::Decoder<'static, Sink>),
}

impl Inner {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Inner::Gzip(d) => d,
            Inner::Zlib(d) => d,
            Inner::Deflate(d) => d,
            Inner::Brotli(d) => &mut **d,
            Inner::Zstd(d) => d,
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Inner::Gzip(d) => d.get_mut(),
            Inner::Zlib(d) => d.get_mut(),
            Inner::Deflate(d) => d.get_mut(),
            Inner::Brotli(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut(),
        }
    }
}

/// Decodes one body, piece by piece.
pub(crate) struct Decoder {
    inner: Inner,
    encoding: &'static str,
    /// `deflate` as HTTP means it is zlib-wrapped, but some servers send raw deflate: the
    /// first bytes decide, kept until there are two.
    deflate_head: Option<Vec<u8>>,
    out: u64,
    limit: u64,
    failed: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("encoding", &self.encoding)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for a body with this `Content-Encoding` (none, or `identity`: no decoder),
    /// whose decoded size may not pass `limit` bytes. Boxed: a decoder's state is some 300
    /// bytes, and the futures and relays that hold the answer (most often no decoder) move it
    /// around by value.
    pub fn for_encoding(
        encoding: Option<&[u8]>,
        limit: u64,
    ) -> Result<Option<Box<Decoder>>, DecodeError> {
        let Some(value) = encoding else {
            return Ok(None);
        };
        let name = crate::fields::to_str(value)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let (inner, encoding) = match name.as_str() {
            "" | "identity" => return Ok(None),
            "gzip" | "x-gzip" => (
                Inner::Gzip(flate2::write::MultiGzDecoder::new(Sink::default())),
                "gzip",
            ),
            "deflate" => (
                Inner::Zlib(flate2::write::ZlibDecoder::new(Sink::default())),
                "deflate",
            ),
            "br" => (
                Inner::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                    Sink::default(),
                    32 * 1024,
                ))),
                "br",
            ),
            "zstd" => {
                let d = zstd::stream::write::Decoder::new(Sink::default()).map_err(|e| {
                    DecodeError::Corrupt {
                        encoding: "zstd",
                        reason: e.to_string(),
                    }
                })?;
                (Inner::Zstd(d), "zstd")
            }
            _ => {
                return Err(DecodeError::Unsupported(
                    crate::fields::to_str(value)
                        .unwrap_or("(not text)")
                        .to_owned(),
                ));
            }
        };
        Ok(Some(Box::new(Decoder {
            deflate_head: (encoding == "deflate").then(Vec::new),
            inner,
            encoding,
            out: 0,
            limit,
            failed: false,
        })))
    }

    /// Decodes the next piece of the body, handing the output to `out` in slices.
    pub fn decode(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        if self.failed {
            return Ok(());
        }
        let result = self.decode_inner(input, out);
        self.failed = result.is_err();
        result
    }

    fn decode_inner(
        &mut self,
        input: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<(), DecodeError> {
        if let Some(head) = &mut self.deflate_head {
            head.extend_from_slice(input);
            if head.len() < 2 {
                return Ok(());
            }
            let head = std::mem::take(head);
            self.deflate_head = None;
            // A zlib header: CMF/FLG with method 8 and a check that divides by 31.
            let zlib =
                head[0] & 0x0F == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            if !zlib {
                self.inner = Inner::Deflate(flate2::write::DeflateDecoder::new(Sink::default()));
            }
            return self.feed(&head, out);
        }
        self.feed(input, out)
    }

    fn feed(&mut self, mut input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        self.inner.sink().room = (self.limit - self.out).min(PIECE_OUTPUT_LIMIT);
        while !input.is_empty() {
            let written = self.inner.writer().write(input);
            let n = written.map_err(|e| self.corrupt(&e))?;
            input = &input[n..];
            self.drain(out)?;
            if n == 0 {
                // The stream has ended (a trailing byte after its end, say): nothing more to
                // read from these bytes.
                break;
            }
        }
        let flushed = self.inner.writer().flush();
        flushed.map_err(|e| self.corrupt(&e))?;
        self.drain(out)
    }

    /// The body ended: hands on what the decoder still holds.
    pub fn finish(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        if self.failed {
            return Ok(());
        }
        if let Some(head) = self.deflate_head.take()
            && !head.is_empty()
        {
            self.feed(&head, out)?;
        }
        self.inner.sink().room = (self.limit - self.out).min(PIECE_OUTPUT_LIMIT);
        let flushed = self.inner.writer().flush();
        flushed.map_err(|e| self.corrupt(&e))?;
        self.drain(out)
    }

    fn drain(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        let sink = self.inner.sink();
        let mut buf = std::mem::take(&mut sink.buf);
        sink.room = sink.room.saturating_sub(buf.len() as u64);
        self.out += buf.len() as u64;
        for slice in buf.chunks(SLICE) {
            out(slice);
        }
        // Keep the allocation for the next piece, unless it grew large.
        if buf.capacity() <= 4 * SLICE {
            buf.clear();
            self.inner.sink().buf = buf;
        }
        Ok(())
    }

    /// The error of a failed write or flush: over the limit when the sink refused, else the
    /// decoder's.
    fn corrupt(&mut self, e: &std::io::Error) -> DecodeError {
        if self.inner.sink().overflowed {
            let limit = if self.limit - self.out <= PIECE_OUTPUT_LIMIT {
                self.limit
            } else {
                PIECE_OUTPUT_LIMIT
            };
            return DecodeError::TooLarge {
                encoding: self.encoding,
                limit,
            };
        }
        DecodeError::Corrupt {
            encoding: self.encoding,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(encoding: &str, data: &[u8]) -> Vec<u8> {
        match encoding {
            "gzip" => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "deflate" => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "raw-deflate" => {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zstd" => zstd::stream::encode_all(data, 3).unwrap(),
            _ => unreachable!(),
        }
    }

    fn decode_all(
        encoding: &str,
        body: &[u8],
        piece: usize,
        limit: u64,
    ) -> Result<Vec<u8>, DecodeError> {
        let mut d = Decoder::for_encoding(Some(encoding.as_bytes()), limit)?.unwrap();
        let mut got = Vec::new();
        for p in body.chunks(piece) {
            d.decode(p, &mut |s| got.extend_from_slice(s))?;
        }
        d.finish(&mut |s| got.extend_from_slice(s))?;
        Ok(got)
    }

    #[test]
    fn each_encoding_decodes_split_anywhere() {
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("data: {i}\n\n").into_bytes())
            .collect();
        for (encoding, body) in [
            ("gzip", encode("gzip", &text)),
            ("deflate", encode("deflate", &text)),
            ("deflate", encode("raw-deflate", &text)),
            ("zstd", encode("zstd", &text)),
            ("br", brotli_fixture(&text)),
        ] {
            for piece in [1, 7, 1000, body.len()] {
                let got = decode_all(encoding, &body, piece, 1 << 30).unwrap();
                assert_eq!(got, text, "{encoding} in pieces of {piece}");
            }
        }
    }

    /// Brotli has no encoder in the tree: a stored (uncompressed) brotli stream, which every
    /// decoder must read — meta-blocks of up to 64 KiB marked uncompressed.
    fn brotli_fixture(data: &[u8]) -> Vec<u8> {
        // WBITS=16 (one bit 0); each meta-block: ISLAST=0, MNIBBLES=4 (code 0), MLEN-1 in 16
        // bits, ISUNCOMPRESSED=1, padding to a byte; then the bytes. The last: ISLAST=1,
        // ISLASTEMPTY=1.
        let mut out = BitWriter::default();
        out.bits(0, 1);
        for block in data.chunks(65_536) {
            out.bits(0, 1);
            out.bits(0, 2);
            out.bits((block.len() - 1) as u64, 16);
            out.bits(1, 1);
            out.align();
            out.bytes.extend_from_slice(block);
        }
        out.bits(1, 1);
        out.bits(1, 1);
        out.align();
        out.bytes
    }

    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bit: u32,
    }

    impl BitWriter {
        fn bits(&mut self, value: u64, n: u32) {
            for i in 0..n {
                if self.bit == 0 {
                    self.bytes.push(0);
                }
                let last = self.bytes.len() - 1;
                self.bytes[last] |= (((value >> i) & 1) as u8) << self.bit;
                self.bit = (self.bit + 1) % 8;
            }
        }

        fn align(&mut self) {
            self.bit = 0;
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_garbage_is_an_error() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = encode("gzip", &zeros);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(
            decode_all("gzip", &bomb, 4096, 1 << 20),
            Err(DecodeError::TooLarge {
                encoding: "gzip",
                limit: 1 << 20
            })
        );
        assert!(matches!(
            decode_all("gzip", b"this is not gzip at all", 5, 1 << 20),
            Err(DecodeError::Corrupt {
                encoding: "gzip",
                ..
            })
        ));
        assert!(matches!(
            decode_all("compress", b"x", 1, 1),
            Err(DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            decode_all("gzip, br", b"x", 1, 1),
            Err(DecodeError::Unsupported(_))
        ));
        assert!(
            Decoder::for_encoding(Some(b"identity"), 1)
                .unwrap()
                .is_none()
        );
    }
}
