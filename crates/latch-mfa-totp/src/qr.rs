//! QR codes of a provisioning URI: SVG in PyQRCode's layout (what Home Assistant's
//! frontend shows), Unicode half blocks for terminals, and PNG.

use std::fmt::Write as _;

use qrcode::bits::Bits;
use qrcode::{Color, EcLevel, QrCode, Version};

use crate::QrError;

/// Modules of light margin around the code (the QR specification's quiet zone).
pub const QUIET_ZONE: usize = 4;

/// The lines a terminal rendering fits in whenever the data allows: one less than an
/// 80×24 terminal, for the prompt below it.
pub const TERMINAL_LINES: usize = 23;

/// The quiet zone of a terminal rendering that would not fit in [`TERMINAL_LINES`] with
/// the full [`QUIET_ZONE`]: the light background drawn around the code is then 2 modules
/// wide, which phone readers accept (it is what Micro QR codes specify).
const NARROW_QUIET_ZONE: usize = 2;

/// Pixels per module in the SVG and PNG renderings (Home Assistant's `scale=4`).
const SCALE: usize = 4;

/// The module matrix of a code. `true` is dark. Row-major, `width`² entries.
struct Matrix {
    width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    fn from_code(code: &QrCode) -> Self {
        Self {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
        }
    }

    /// Byte mode at error-correction level H in the smallest version that fits, as
    /// PyQRCode encodes a URI (Home Assistant's SVG; the PNG uses it too).
    fn encode(data: &str) -> Result<Self, QrError> {
        let bytes = data.as_bytes();
        for v in 1..=40 {
            let mut bits = Bits::new(Version::Normal(v));
            if bits.push_byte_data(bytes).is_err() || bits.push_terminator(EcLevel::H).is_err() {
                continue;
            }
            if let Ok(code) = QrCode::with_bits(bits, EcLevel::H) {
                return Ok(Self::from_code(&code));
            }
        }
        Err(QrError::TooLong { len: bytes.len() })
    }

    /// The smallest code a terminal can show: the smallest version that holds the data
    /// at level L with optimal segmentation (the upper-case base32 secret travels in
    /// alphanumeric mode), then the highest error-correction level that still fits in
    /// that version, so nothing is given up that costs no space.
    fn encode_compact(data: &str) -> Result<Self, QrError> {
        let too_long = || QrError::TooLong { len: data.len() };
        let smallest =
            QrCode::with_error_correction_level(data, EcLevel::L).map_err(|_| too_long())?;
        let version = smallest.version();
        for level in [EcLevel::H, EcLevel::Q, EcLevel::M] {
            if let Ok(code) = QrCode::with_version(data, version, level) {
                return Ok(Self::from_code(&code));
            }
        }
        Ok(Self::from_code(&smallest))
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// Is the module at (x, y) of the code with a quiet zone of `qz` modules dark?
    fn is_dark_padded(&self, x: usize, y: usize, qz: usize) -> bool {
        x >= qz && y >= qz && self.is_dark(x - qz, y - qz)
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

/// The QR code of `data` for a terminal, as small as it can be: each character holds
/// two modules stacked, with the 4-module quiet zone; lines are joined with `\n` and
/// there is no trailing newline.
///
/// The glyphs are **ink**: `█` is two dark modules, `▀` a dark module over a light one,
/// `▄` a light one over a dark one, a space two light ones. Printed as they are, they
/// take the terminal's colours, so the code only reads where the foreground is darker
/// than the background; a terminal program must draw them in an explicit dark
/// foreground on an explicit light background (`latch` does, with colours no theme
/// remaps), so that the code scans on light and dark themes alike.
///
/// The code is the smallest version that holds the data at error-correction level L
/// (with the highest level that fits that version). Its quiet zone is the full
/// [`QUIET_ZONE`] when the whole still fits in [`TERMINAL_LINES`] (versions 1 to 5),
/// else 2 modules. A typical TOTP URI (`otpauth://totp/Home%20Assistant:Paulus%20Schoutsen?secret=<32 characters>&issuer=Home%20Assistant`,
/// 114 bytes) is a version-6 code of 41 modules: 45 columns and 23 lines, one line less
/// than an 80×24 terminal, for the prompt below it. Display names up to about 35
/// characters fit so; [`terminal_size`] tells the size of any rendering.
///
/// # Errors
/// [`QrError::TooLong`] when the data does not fit in a version-40 code.
pub fn qr_terminal(data: &str) -> Result<String, QrError> {
    let m = Matrix::encode_compact(data)?;
    let qz = if (m.width + 2 * QUIET_ZONE).div_ceil(2) <= TERMINAL_LINES {
        QUIET_ZONE
    } else {
        NARROW_QUIET_ZONE
    };
    let full = m.width + 2 * qz;
    let dark = |x: usize, y: usize| y < full && m.is_dark_padded(x, y, qz);
    let mut lines = Vec::with_capacity(full.div_ceil(2));
    for y in (0..full).step_by(2) {
        let mut line = String::with_capacity(full * 3);
        for x in 0..full {
            line.push(match (dark(x, y), dark(x, y + 1)) {
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

/// The `(columns, lines)` a [`qr_terminal`] rendering takes.
#[must_use]
pub fn terminal_size(rendering: &str) -> (usize, usize) {
    let columns = rendering
        .split('\n')
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    (columns, rendering.split('\n').count())
}

/// The QR code of `data` as a PNG image (the `png` crate): 1-bit greyscale, 4 pixels
/// per module, a 4-module white quiet zone, black modules, error-correction level H.
///
/// # Errors
/// [`QrError::TooLong`] when the data does not fit in a version-40 code at level H;
/// [`QrError::Png`] if the encoder refuses the image.
pub fn qr_png(data: &str) -> Result<Vec<u8>, QrError> {
    let m = Matrix::encode(data)?;
    let px = (m.width + 2 * QUIET_ZONE) * SCALE;
    let row_bytes = px.div_ceil(8);
    let mut pixels = vec![0u8; row_bytes * px];
    for (y, row) in pixels.chunks_exact_mut(row_bytes).enumerate() {
        for x in 0..px {
            // 1 is white in 1-bit greyscale.
            if !m.is_dark_padded(x / SCALE, y / SCALE, QUIET_ZONE) {
                row[x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let side = u32::try_from(px).map_err(|_| QrError::TooLong { len: data.len() })?;
    let png_error = |e: png::EncodingError| QrError::Png(e.to_string());
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(&pixels).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_uses_level_h_byte_mode_smallest_version() {
        let m = Matrix::encode("otpauth://totp/x").unwrap();
        // 16 bytes in byte mode at level H: version 2 holds 14, version 3 (29 modules) 24.
        assert_eq!(m.width, 29);
        assert_eq!(m.dark.len(), m.width * m.width);
        // The finder pattern's corner is dark.
        assert!(m.is_dark(0, 0) && m.is_dark(6, 6) && !m.is_dark(7, 7));
        assert!(
            !m.is_dark_padded(0, 0, QUIET_ZONE)
                && m.is_dark_padded(QUIET_ZONE, QUIET_ZONE, QUIET_ZONE)
        );
    }

    #[test]
    fn the_compact_matrix_is_the_smallest_version_at_level_l() {
        // 16 bytes: version 1 at level L holds 17 bytes (21 modules); at level H,
        // version 3 is needed.
        let m = Matrix::encode_compact("otpauth://totp/x").unwrap();
        assert_eq!(m.width, 21);
        // 107 bytes, over version 5's 106 in byte mode at level L: the upper-case
        // secret in alphanumeric mode keeps it at version 5.
        let uri = crate::provisioning_uri(
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            Some("Paulus Sc"),
            "Home Assistant",
        );
        assert_eq!(uri.len(), 107);
        assert_eq!(Matrix::encode_compact(&uri).unwrap().width, 37);
    }

    #[test]
    fn too_long_is_an_error() {
        let long = "x".repeat(3_000);
        assert_eq!(qr_svg(&long), Err(QrError::TooLong { len: 3_000 }));
        assert_eq!(qr_terminal(&long), Err(QrError::TooLong { len: 3_000 }));
        assert!(qr_png(&long).is_err());
        // 1273 bytes is the byte-mode capacity of version 40 at level H.
        assert!(qr_svg(&"x".repeat(1_273)).is_ok());
        assert!(qr_svg(&"x".repeat(1_274)).is_err());
        // At level L a terminal code holds more.
        assert!(qr_terminal(&"x".repeat(2_000)).is_ok());
    }

    #[test]
    fn terminal_size_counts_columns_and_lines() {
        assert_eq!(terminal_size("█▀ \n ▄█"), (3, 2));
        let qr = qr_terminal("otpauth://totp/x").unwrap();
        // 21 modules + 8 of quiet zone: 29 columns, 15 lines.
        assert_eq!(terminal_size(&qr), (29, 15));
    }

    #[test]
    fn the_quiet_zone_narrows_only_past_23_lines() {
        // Version 5 (37 modules) keeps 4 modules: 45 columns, 23 lines.
        let v5 = qr_terminal(&"x".repeat(100)).unwrap();
        assert_eq!(terminal_size(&v5), (45, 23));
        assert!(v5.split('\n').next().unwrap().chars().all(|c| c == ' '));
        // Version 6 (41 modules) with 2: 45 columns, 23 lines.
        let v6 = qr_terminal(&"x".repeat(120)).unwrap();
        assert_eq!(terminal_size(&v6), (45, 23));
        // Version 7 (45 modules) cannot fit: 49 columns, 25 lines.
        let v7 = qr_terminal(&"x".repeat(150)).unwrap();
        assert_eq!(terminal_size(&v7), (49, 25));
    }
}
