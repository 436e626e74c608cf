//! `otpauth://` parsing and the three QR renderings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use latch_mfa_totp::{
    OtpAuthError, QrError, SecretError, parse_otpauth_uri, provisioning_uri, qr_png, qr_svg,
    qr_terminal, terminal_size,
};
use proptest::prelude::*;

// ----- parsing -----

#[test]
fn parses_what_provisioning_uri_builds() {
    for name in [Some("Paulus"), Some("a/b c"), Some("Zoë: 家"), None] {
        let uri = provisioning_uri("JBSWY3DPEHPK3PXP", name, "Home Assistant");
        let otp = parse_otpauth_uri(&uri).unwrap();
        assert_eq!(otp.account, name.unwrap_or("None"));
        assert_eq!(otp.issuer.as_deref(), Some("Home Assistant"));
        assert_eq!(
            otp.label,
            format!("Home Assistant:{}", name.unwrap_or("None"))
        );
        assert_eq!(otp.secret.expose(), "JBSWY3DPEHPK3PXP");
    }
}

#[test]
fn parses_other_systems_uris() {
    let otp = parse_otpauth_uri(
        "OTPAUTH://TOTP/ACME%20Co:john.doe@email.com?SECRET=hxdmvjecjjws%3D%3D%3D&issuer=ACME+Co&algorithm=sha1&digits=6&period=30&image=x#frag",
    )
    .unwrap();
    assert_eq!(otp.label, "ACME Co:john.doe@email.com");
    assert_eq!(otp.account, "john.doe@email.com");
    assert_eq!(otp.issuer.as_deref(), Some("ACME Co"));
    assert_eq!(otp.secret.expose(), "HXDMVJECJJWS");

    // Issuer from the label when there is no parameter; no issuer at all.
    let otp = parse_otpauth_uri("otpauth://totp/Example:%20alice?secret=JBSWY3DPEHPK3PXP").unwrap();
    assert_eq!(
        (otp.issuer.as_deref(), otp.account.as_str()),
        (Some("Example"), "alice")
    );
    let otp = parse_otpauth_uri("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP").unwrap();
    assert_eq!((otp.issuer, otp.account.as_str()), (None, "alice"));
    // The parameter wins over the label's prefix.
    let otp =
        parse_otpauth_uri("otpauth://totp/Old:bob?issuer=New&secret=JBSWY3DPEHPK3PXP").unwrap();
    assert_eq!(otp.issuer.as_deref(), Some("New"));
}

#[test]
fn refuses_what_it_cannot_verify() {
    let cases: [(&str, OtpAuthError); 12] = [
        ("https://example.com", OtpAuthError::NotOtpAuth),
        ("otpauth:/", OtpAuthError::NotOtpAuth),
        ("", OtpAuthError::NotOtpAuth),
        (
            "otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter=1",
            OtpAuthError::UnsupportedType("hotp".into()),
        ),
        ("otpauth://totp/a", OtpAuthError::MissingSecret),
        ("otpauth://totp/a?issuer=x", OtpAuthError::MissingSecret),
        (
            "otpauth://totp/a?secret=",
            OtpAuthError::InvalidSecret(SecretError::Empty),
        ),
        (
            "otpauth://totp/a?secret=ABC1",
            OtpAuthError::InvalidSecret(SecretError::InvalidCharacter),
        ),
        (
            "otpauth://totp/a%ZZ?secret=JBSWY3DPEHPK3PXP",
            OtpAuthError::BadEncoding("label"),
        ),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&secret=JBSWY3DPEHPK3PXP",
            OtpAuthError::DuplicateParameter("secret".into()),
        ),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&algorithm=SHA256",
            OtpAuthError::Unsupported {
                name: "algorithm",
                value: "SHA256".into(),
            },
        ),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=8",
            OtpAuthError::Unsupported {
                name: "digits",
                value: "8".into(),
            },
        ),
    ];
    for (uri, expected) in cases {
        assert_eq!(parse_otpauth_uri(uri).unwrap_err(), expected, "{uri}");
    }
    assert!(matches!(
        parse_otpauth_uri("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&period=60"),
        Err(OtpAuthError::Unsupported { name: "period", .. })
    ));
    assert!(matches!(
        parse_otpauth_uri("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&issuer=%FF"),
        Err(OtpAuthError::BadEncoding("query"))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = parse_otpauth_uri(&s);
    }

    #[test]
    fn parse_never_panics_on_near_uris(
        prefix in prop::sample::select(vec!["otpauth://totp/", "otpauth://TOTP/", "otpauth://", "otpauth://totp"]),
        rest in "[a-zA-Z0-9%:/?&=#+ éß\\-]{0,60}",
    ) {
        let _ = parse_otpauth_uri(&format!("{prefix}{rest}"));
    }

    #[test]
    fn round_trips(name in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 1..40)) {
        let secret = latch_mfa_totp::encode_base32(&bytes);
        let uri = provisioning_uri(&secret, Some(&name), "Home Assistant");
        let otp = parse_otpauth_uri(&uri).unwrap();
        prop_assert_eq!(otp.secret.expose(), secret.as_str());
        prop_assert_eq!(otp.account, name.trim_start_matches(' '));
    }
}

// ----- QR codes -----

/// Byte-mode capacity at error-correction level H of versions 1..=20 (ISO 18004 table 7).
const CAPACITY_H: [usize; 20] = [
    7, 14, 24, 34, 44, 58, 64, 84, 98, 119, 137, 155, 177, 194, 220, 250, 280, 310, 338, 382,
];
const QZ: usize = 4;

/// Dark modules (in quiet-zone coordinates) drawn by PyQRCode-style path data.
fn svg_cells(svg: &str) -> (usize, BTreeSet<(usize, usize)>) {
    let size: usize = svg
        .strip_prefix("<svg height=\"")
        .and_then(|r| r.split('"').next())
        .unwrap()
        .parse()
        .unwrap();
    let head = format!(
        "<svg height=\"{size}\" width=\"{size}\" class=\"pyqrcode\"><path transform=\"scale(4)\" stroke=\"#000\" class=\"pyqrline\" d=\""
    );
    let d = svg
        .strip_prefix(&head)
        .and_then(|r| r.strip_suffix("\"/></svg>"))
        .unwrap();
    assert!(d.starts_with('M'), "the first move is absolute: {d:.20}");
    let mut cells = BTreeSet::new();
    let (mut x, mut y) = (0f64, 0f64);
    let mut rest = d;
    while !rest.is_empty() {
        let cmd = rest.as_bytes()[0];
        let end = rest[1..]
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(rest.len(), |i| i + 1);
        let args: Vec<f64> = rest[1..end]
            .split(' ')
            .map(|a| a.parse().unwrap())
            .collect();
        match cmd {
            b'M' => (x, y) = (args[0], args[1]),
            b'm' => (x, y) = (x + args[0], y + args[1]),
            b'h' => {
                assert!(args[0] >= 1.0);
                let row = (y - 0.5) as usize;
                assert_eq!(
                    row as f64 + 0.5,
                    y,
                    "strokes run through the middle of a row"
                );
                for c in 0..args[0] as usize {
                    assert!(cells.insert((x as usize + c, row)), "module drawn twice");
                }
                x += args[0];
            }
            other => panic!("unexpected command {}", other as char),
        }
        rest = &rest[end..];
    }
    assert_eq!(size % 4, 0);
    (size / 4, cells)
}

/// Dark modules of the terminal rendering (its glyphs are ink: dark modules drawn).
fn terminal_cells(text: &str) -> (usize, BTreeSet<(usize, usize)>) {
    let lines: Vec<&str> = text.split('\n').collect();
    let full = lines[0].chars().count();
    assert_eq!(lines.len(), full.div_ceil(2));
    let mut cells = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        assert_eq!(chars.len(), full);
        for (x, c) in chars.iter().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?}"),
            };
            if top {
                cells.insert((x, 2 * i));
            }
            if bottom {
                assert!(2 * i + 1 < full, "the half line below the code is light");
                cells.insert((x, 2 * i + 1));
            }
        }
    }
    (full, cells)
}

/// Decodes modules (quiet zone included) as a camera would see them: each module
/// `px`×`px` pixels, dark where `cells` says, light elsewhere.
fn decode_modules(full: usize, cells: &BTreeSet<(usize, usize)>) -> Option<String> {
    let px = 6;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(full * px, full * px, |x, y| {
        if cells.contains(&(x / px, y / px)) {
            0
        } else {
            255
        }
    });
    let grids = image.detect_grids();
    let grid = grids.first()?;
    grid.decode().ok().map(|(_, text)| text)
}

/// Dark modules of the PNG (decoded with the `png` crate), checking it is 1-bit
/// greyscale with 4×4-pixel modules.
fn png_cells(png: &[u8]) -> (usize, BTreeSet<(usize, usize)>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut raw = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut raw).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Grayscale);
    assert_eq!(frame.bit_depth, png::BitDepth::One);
    let (w, h) = (frame.width as usize, frame.height as usize);
    assert_eq!(w, h);
    let row_bytes = frame.line_size;
    assert_eq!(row_bytes, w.div_ceil(8));
    let black = |x: usize, y: usize| raw[y * row_bytes + x / 8] & (0x80 >> (x % 8)) == 0;
    assert_eq!(w % 4, 0);
    let modules = w / 4;
    let mut cells = BTreeSet::new();
    for my in 0..modules {
        for mx in 0..modules {
            let dark = black(mx * 4, my * 4);
            for dy in 0..4 {
                for dx in 0..4 {
                    assert_eq!(
                        black(mx * 4 + dx, my * 4 + dy),
                        dark,
                        "a module is 4x4 pixels"
                    );
                }
            }
            if dark {
                cells.insert((mx, my));
            }
        }
    }
    (modules, cells)
}

fn finder_at(cells: &BTreeSet<(usize, usize)>, x0: usize, y0: usize) -> bool {
    (0..7).all(|dy| {
        (0..7).all(|dx| {
            let ring = dx.min(dy).min(6 - dx).min(6 - dy);
            let dark = ring != 1;
            cells.contains(&(x0 + dx, y0 + dy)) == dark
        })
    })
}

#[test]
fn the_three_renderings_draw_the_same_level_h_code() {
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    for name in [
        Some("Paulus"),
        Some("Zoë 家 with a much longer display name"),
        None,
    ] {
        let uri = provisioning_uri(secret, name, "Home Assistant");
        let svg = qr_svg(&uri).unwrap();
        let (full, from_svg) = svg_cells(&svg);
        let width = full - 2 * QZ;

        // Smallest version that holds the URI in byte mode at level H, as PyQRCode picks.
        let version = CAPACITY_H.iter().position(|&c| c >= uri.len()).unwrap() + 1;
        assert_eq!(width, 17 + 4 * version, "{uri}");

        // Nothing in the quiet zone; finder patterns in three corners.
        assert!(
            from_svg
                .iter()
                .all(|&(x, y)| (QZ..QZ + width).contains(&x) && (QZ..QZ + width).contains(&y))
        );
        assert!(finder_at(&from_svg, QZ, QZ));
        assert!(finder_at(&from_svg, QZ + width - 7, QZ));
        assert!(finder_at(&from_svg, QZ, QZ + width - 7));
        assert!(!from_svg.contains(&(QZ + width - 7, QZ + width - 7)) || width > 21);

        // Format information: the two EC-level bits are both light for level H, in both
        // copies (bits 14 and 13 after the 0x5412 mask).
        for (x, y) in [(0, 8), (1, 8), (8, width - 1), (8, width - 2)] {
            assert!(
                !from_svg.contains(&(QZ + x, QZ + y)),
                "format bit at ({x},{y})"
            );
        }

        let (png_modules, from_png) = png_cells(&qr_png(&uri).unwrap());
        assert_eq!(png_modules, full);
        assert_eq!(from_png, from_svg);
        assert_eq!(
            decode_modules(full, &from_svg).as_deref(),
            Some(uri.as_str())
        );

        // The terminal draws a smaller code of the same URI.
        let (term_full, from_terminal) = terminal_cells(&qr_terminal(&uri).unwrap());
        assert!(term_full <= full, "{term_full} > {full}");
        let qz = 2; // at least (4 when the code fits 23 lines so)
        assert!(
            from_terminal
                .iter()
                .all(|&(x, y)| (qz..term_full - qz).contains(&x)
                    && (qz..term_full - qz).contains(&y)),
            "the quiet zone is light"
        );
        assert_eq!(
            decode_modules(term_full, &from_terminal).as_deref(),
            Some(uri.as_str())
        );
    }
}

#[test]
fn a_typical_totp_uri_fits_an_80_by_24_terminal_with_a_line_to_spare() {
    // Home Assistant's issuer, pyotp's 32-character secrets, display names up to 16
    // characters (e.g. "Paulus Schoutsen").
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    for name in ["Anne", "Paulus", "Paulus Schoutsen", "Zoë Example"] {
        let uri = provisioning_uri(secret, Some(name), "Home Assistant");
        let qr = qr_terminal(&uri).unwrap();
        let (columns, lines) = terminal_size(&qr);
        assert!(lines <= 23, "{name}: {lines} lines for {} bytes", uri.len());
        assert!(columns <= 80, "{name}: {columns} columns");
        let (full, cells) = terminal_cells(&qr);
        assert_eq!(decode_modules(full, &cells).as_deref(), Some(uri.as_str()));
    }
    // Level H, as Home Assistant's SVG uses, would need 33 lines for the same URI.
    let uri = provisioning_uri(secret, Some("Paulus Schoutsen"), "Home Assistant");
    let (svg_full, _) = svg_cells(&qr_svg(&uri).unwrap());
    assert!(svg_full.div_ceil(2) > 24, "{svg_full}");
}

#[test]
fn svg_matches_pyqrcode_layout_as_home_assistant_trims_it() {
    let svg = qr_svg("otpauth://totp/Home%20Assistant:Paulus?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Home%20Assistant").unwrap();
    // 102 bytes -> version 10 (57 modules) -> (57 + 8) * 4 = 260 px.
    assert!(svg.starts_with(
        "<svg height=\"260\" width=\"260\" class=\"pyqrcode\"><path transform=\"scale(4)\" stroke=\"#000\" class=\"pyqrline\" d=\"M4 4.5h7m"
    ), "{svg:.200}");
    assert!(!svg.contains('\n') && !svg.contains("<?xml") && !svg.contains("xmlns"));
    // Row 0 ends with the top-right finder pattern, so row 1 starts 57 columns back.
    assert!(svg.contains("h7m-57 1h1m5 0h1"), "{svg:.300}");
}

#[test]
fn too_much_data_is_an_error_not_a_panic() {
    let uri = provisioning_uri(
        "JBSWY3DPEHPK3PXP",
        Some(&"x".repeat(3_000)),
        "Home Assistant",
    );
    assert_eq!(qr_svg(&uri), Err(QrError::TooLong { len: uri.len() }));
    assert!(qr_terminal(&uri).is_err());
    assert!(qr_png(&uri).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn qr_never_panics(s in ".{0,300}") {
        let _ = qr_svg(&s);
        let _ = qr_terminal(&s);
        let _ = qr_png(&s);
    }
}
