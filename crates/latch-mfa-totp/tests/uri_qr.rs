//! `otpauth://` parsing and the three QR renderings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use latch_mfa_totp::{
    OtpAuthError, QrError, SecretError, parse_otpauth_uri, provisioning_uri, qr_png, qr_svg,
    qr_terminal,
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

/// Dark modules of the terminal rendering (where light modules are drawn).
fn terminal_cells(text: &str, full: usize) -> BTreeSet<(usize, usize)> {
    let lines: Vec<&str> = text.split('\n').collect();
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
            if !top {
                cells.insert((x, 2 * i));
            }
            if !bottom && 2 * i + 1 < full {
                cells.insert((x, 2 * i + 1));
            }
        }
    }
    cells
}

/// Dark modules of the PNG, after checking its structure, CRCs and zlib stream.
fn png_cells(png: &[u8]) -> (usize, BTreeSet<(usize, usize)>) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let mut pos = 8;
    let mut chunks = Vec::new();
    while pos < png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        let crc = u32::from_be_bytes(png[pos + 8 + len..pos + 12 + len].try_into().unwrap());
        let mut h = crc32fast::Hasher::new();
        h.update(kind);
        h.update(data);
        assert_eq!(
            h.finalize(),
            crc,
            "crc of {}",
            String::from_utf8_lossy(kind)
        );
        chunks.push((kind.to_vec(), data.to_vec()));
        pos += 12 + len;
    }
    let kinds: Vec<&[u8]> = chunks.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(kinds, [b"IHDR".as_slice(), b"IDAT", b"IEND"]);
    let ihdr = &chunks[0].1;
    let w = u32::from_be_bytes(ihdr[0..4].try_into().unwrap()) as usize;
    let h = u32::from_be_bytes(ihdr[4..8].try_into().unwrap()) as usize;
    assert_eq!(w, h);
    assert_eq!(&ihdr[8..], &[1, 0, 0, 0, 0]);

    // zlib with stored blocks.
    let z = &chunks[1].1;
    assert_eq!(
        (u16::from(z[0]) << 8 | u16::from(z[1])) % 31,
        0,
        "zlib header check"
    );
    let mut raw = Vec::new();
    let mut p = 2;
    loop {
        let header = z[p];
        assert_eq!(header & 0b110, 0, "stored block");
        let len = u16::from_le_bytes([z[p + 1], z[p + 2]]);
        let nlen = u16::from_le_bytes([z[p + 3], z[p + 4]]);
        assert_eq!(len, !nlen);
        raw.extend_from_slice(&z[p + 5..p + 5 + usize::from(len)]);
        p += 5 + usize::from(len);
        if header & 1 == 1 {
            break;
        }
    }
    let adler = u32::from_be_bytes(z[p..p + 4].try_into().unwrap());
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    assert_eq!(adler, b << 16 | a);
    assert_eq!(p + 4, z.len());

    let row_bytes = w.div_ceil(8);
    assert_eq!(raw.len(), (row_bytes + 1) * h);
    let black = |x: usize, y: usize| {
        let row = &raw[y * (row_bytes + 1)..(y + 1) * (row_bytes + 1)];
        assert_eq!(row[0], 0, "filter none");
        row[1 + x / 8] & (0x80 >> (x % 8)) == 0
    };
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

        let from_terminal = terminal_cells(&qr_terminal(&uri).unwrap(), full);
        assert_eq!(from_terminal, from_svg);

        let (png_modules, from_png) = png_cells(&qr_png(&uri).unwrap());
        assert_eq!(png_modules, full);
        assert_eq!(from_png, from_svg);
    }
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
        Some(&"x".repeat(2_000)),
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
