//! QR codes of a provisioning URI: SVG in PyQRCode's layout (what Home Assistant's
//! frontend shows), Unicode half blocks for terminals, and PNG.

use std::fmt::Write as _;

use qrcode::bits::Bits;
use qrcode::{Color, EcLevel, QrCode, Version};

use crate::QrError;

/// Modules of light margin around the code (the QR specification's quiet zone).
const QUIET_ZONE: usize = 4;

/// Pixels per module in the SVG and PNG renderings (Home Assistant's `scale=4`).
const SCALE: usize = 4;

/// The module matrix of `data`: byte mode at error-correction level H in the smallest
/// version that fits, as PyQRCode encodes a URI. `true` is dark. Row-major, `width`²
/// entries.
struct Matrix {
    width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    fn encode(data: &str) -> Result<Self, QrError> {
        let bytes = data.as_bytes();
        for v in 1..=40 {
            let mut bits = Bits::new(Version::Normal(v));
            if bits.push_byte_data(bytes).is_err() || bits.push_terminator(EcLevel::H).is_err() {
                continue;
            }
            if let Ok(code) = QrCode::with_bits(bits, EcLevel::H) {
                return Ok(Self {
                    width: code.width(),
                    dark: code
                        .to_colors()
                        .into_iter()
                        .map(|c| c == Color::Dark)
                        .collect(),
                });
            }
        }
        Err(QrError::TooLong { len: bytes.len() })
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// Is the module at (x, y) of the code with its quiet zone dark?
    fn is_dark_padded(&self, x: usize, y: usize) -> bool {
        x >= QUIET_ZONE && y >= QUIET_ZONE && self.is_dark(x - QUIET_ZONE, y - QUIET_ZONE)
    }
}

/// The QR code of `data` as the SVG Home Assistant puts in the TOTP setup form's
/// `qr_code` placeholder: PyQRCode 1.2.1's `svg(scale=4)` layout (one stroked path of
/// horizontal runs, 4-module quiet zone, error-correction level H) with the XML
/// prolog and namespace removed and no newlines, exactly as Home Assistant post-processes
/// it. It is meant to be embedded in HTML; to save it as a standalone file, add
/// `xmlns="http://www.w3.org/2000/svg"` to the `<svg>` element.
///
/// The module pattern itself may differ from PyQRCode's (mask choice); any reader
/// decodes both.
///
/// # Errors
/// [`QrError::TooLong`] when the data does not fit in a version-40 code at level H.
pub fn qr_svg(data: &str) -> Result<String, QrError> {
    let m = Matrix::encode(data)?;
    let size = (m.width + 2 * QUIET_ZONE) * SCALE;
    let mut svg = format!(
        "<svg height=\"{size}\" width=\"{size}\" class=\"pyqrcode\">\
         <path transform=\"scale({SCALE})\" stroke=\"#000\" class=\"pyqrline\" d=\""
    );
    // PyQRCode's pen: runs of dark modules become `h<len>` strokes through the middle of
    // the row; moves are relative after the first. `y` holds the pending vertical move;
    // before the first stroke it is the absolute `quiet_zone - .5 + rows`.
    let qz = i64::try_from(QUIET_ZONE).unwrap_or(4);
    let mut pen_x: i64 = -qz;
    let mut pending_rows: i64 = qz; // first stroke: y = qz - 0.5 + (row + 1)
    let mut wrote = false;
    for row in 0..m.width {
        if wrote || row > 0 {
            pending_rows += 1;
        }
        let mut col = 0;
        while col < m.width {
            if !m.is_dark(col, row) {
                col += 1;
                continue;
            }
            let start = col;
            while col < m.width && m.is_dark(col, row) {
                col += 1;
            }
            let start = i64::try_from(start).unwrap_or(0);
            let len = i64::try_from(col).unwrap_or(0) - start;
            let dx = start - pen_x;
            if wrote {
                let _ = write!(svg, "m{dx} {pending_rows}h{len}");
            } else {
                let _ = write!(svg, "M{dx} {pending_rows}.5h{len}");
            }
            wrote = true;
            pen_x = start + len;
            pending_rows = 0;
        }
    }
    svg.push_str("\"/></svg>");
    Ok(svg)
}

/// The QR code of `data` for a terminal: each character holds two modules stacked
/// (`▀`, `▄`, `█` or a space), with a 4-module quiet zone; lines are joined with `\n`
/// and there is no trailing newline.
///
/// The **light** modules (quiet zone included) are the ones drawn, so the code reads
/// correctly on the usual light-on-dark terminal; on a dark-on-light terminal it shows
/// inverted, which most authenticator apps also read.
///
/// # Errors
/// [`QrError::TooLong`] when the data does not fit in a version-40 code at level H.
pub fn qr_terminal(data: &str) -> Result<String, QrError> {
    let m = Matrix::encode(data)?;
    let full = m.width + 2 * QUIET_ZONE;
    let lit = |x: usize, y: usize| y < full && !m.is_dark_padded(x, y);
    let mut lines = Vec::with_capacity(full.div_ceil(2));
    for y in (0..full).step_by(2) {
        let mut line = String::with_capacity(full * 3);
        for x in 0..full {
            line.push(match (lit(x, y), lit(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        lines.push(line);
    }
    Ok(lines.join("\n"))
}

/// The QR code of `data` as a PNG image: 1-bit greyscale, 4 pixels per module, a
/// 4-module white quiet zone, black modules. The image data is stored uncompressed
/// (deflate "stored" blocks), which every PNG reader accepts; a 1-bit image of a TOTP
/// URI is a few kilobytes either way.
///
/// # Errors
/// [`QrError::TooLong`] when the data does not fit in a version-40 code at level H.
pub fn qr_png(data: &str) -> Result<Vec<u8>, QrError> {
    let m = Matrix::encode(data)?;
    let px = (m.width + 2 * QUIET_ZONE) * SCALE;
    let row_bytes = px.div_ceil(8);
    let mut raw = Vec::with_capacity((row_bytes + 1) * px);
    for y in 0..px {
        raw.push(0); // filter type: none
        let mut row = vec![0u8; row_bytes];
        for x in 0..px {
            // 1 is white in 1-bit greyscale.
            if !m.is_dark_padded(x / SCALE, y / SCALE) {
                row[x / 8] |= 0x80 >> (x % 8);
            }
        }
        raw.extend_from_slice(&row);
    }
    let side = u32::try_from(px).map_err(|_| QrError::TooLong { len: data.len() })?;

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // bit depth 1, greyscale, deflate, no filter set, no interlace

    let mut png = Vec::with_capacity(raw.len() + raw.len() / 65_535 * 5 + 64);
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    push_chunk(&mut png, b"IHDR", &ihdr);
    push_chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    push_chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

fn push_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // Chunks here are far below 2^31 bytes.
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    png.extend_from_slice(&len.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    png.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A zlib stream of `data` in deflate "stored" (uncompressed) blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 65_535;
    let mut out = Vec::with_capacity(data.len() + data.len() / MAX_BLOCK * 5 + 11);
    out.extend_from_slice(&[0x78, 0x01]); // deflate, 32 KiB window, no dictionary, fastest
    let mut chunks = data.chunks(MAX_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none())); // BFINAL on the last, BTYPE 00
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5_552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_known_value() {
        // zlib.adler32(b"Wikipedia") == 0x11E60398
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
    }

    #[test]
    fn matrix_uses_level_h_byte_mode_smallest_version() {
        let m = Matrix::encode("otpauth://totp/x").unwrap();
        // 16 bytes in byte mode at level H: version 2 holds 14, version 3 (29 modules) 24.
        assert_eq!(m.width, 29);
        assert_eq!(m.dark.len(), m.width * m.width);
        // The finder pattern's corner is dark.
        assert!(m.is_dark(0, 0) && m.is_dark(6, 6) && !m.is_dark(7, 7));
        assert!(!m.is_dark_padded(0, 0) && m.is_dark_padded(QUIET_ZONE, QUIET_ZONE));
    }

    #[test]
    fn too_long_is_an_error() {
        let long = "x".repeat(1_300);
        assert_eq!(qr_svg(&long), Err(QrError::TooLong { len: 1_300 }));
        assert!(qr_terminal(&long).is_err());
        assert!(qr_png(&long).is_err());
        // 1273 bytes is the byte-mode capacity of version 40 at level H.
        assert!(qr_svg(&"x".repeat(1_273)).is_ok());
    }
}
