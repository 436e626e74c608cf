//! `latch mfa setup` draws the QR code only where it fits, and writes it as a PNG on
//! request.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::process::Stdio;

use common::{Daemon, from_output, otpauth_secret};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};

/// A pseudo-terminal of `columns`×`rows`: its controller, and the device to hand to a
/// process as its stdout.
fn pty(columns: u16, rows: u16) -> (OwnedFd, File) {
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    tcsetwinsize(
        &device,
        Winsize {
            ws_row: rows,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    (controller, device)
}

/// Runs `latch mfa setup paulus` with stdout on a terminal of this size and a wrong
/// code piped in; returns what the terminal showed.
fn setup_on_terminal(daemon: &Daemon, columns: u16, rows: u16) -> String {
    let (controller, device) = pty(columns, rows);
    let mut child = daemon
        .latch(&["mfa", "setup", "paulus"])
        .stdin(Stdio::piped())
        .stdout(device)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read what it writes as it writes it, until the terminal reports its end.
    let mut controller = File::from(controller);
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = controller.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buf[..n]);
        }
        shown
    });
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "000000").unwrap();
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "a wrong code ends the setup");
    let shown = reader.join().unwrap();
    String::from_utf8(shown).unwrap()
}

#[test]
fn the_qr_code_is_drawn_in_an_80_by_24_terminal_and_refused_in_a_smaller_one() {
    let daemon = Daemon::start();
    daemon.onboard();

    let shown = setup_on_terminal(&daemon, 80, 24);
    assert!(shown.contains("otpauth://totp/"), "{shown}");
    assert!(
        shown.contains("\u{1b}[38;5;16;48;5;231m"),
        "painted black on white:\n{shown}"
    );
    let qr_lines = shown.lines().filter(|l| l.contains('\u{1b}')).count();
    assert!((15..=23).contains(&qr_lines), "{qr_lines} lines of QR code");
    assert!(!shown.contains("too small"), "{shown}");

    let shown = setup_on_terminal(&daemon, 80, 20);
    assert!(shown.contains("too small for the QR code"), "{shown}");
    assert!(shown.contains("this one has 80×20"), "{shown}");
    assert!(shown.contains("--qr-png FILE"), "{shown}");
    assert!(!shown.contains('█') && !shown.contains('\u{1b}'), "{shown}");
    // The URI and the secret are still there.
    assert!(otpauth_secret(&shown).is_some(), "{shown}");
}

#[test]
fn qr_png_writes_a_private_image_of_the_uri() {
    use std::os::unix::fs::PermissionsExt as _;

    let daemon = Daemon::start();
    daemon.onboard();
    let path = daemon.home().join("enrol.png");
    let args = ["mfa", "setup", "paulus", "--qr-png", path.to_str().unwrap()];
    let out = daemon.run(&args, "000000\n");
    out.assert_code(1);
    let uri = out.stdout[out.stdout.find("otpauth://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(out.stdout.contains("enrol.png"), "{}", out.stdout);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Decode the image back to the URI.
    let decoder = png::Decoder::new(std::io::BufReader::new(File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut raw = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut raw).unwrap();
    assert_eq!(frame.bit_depth, png::BitDepth::One);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let row = frame.line_size;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        if raw[y * row + x / 8] & (0x80 >> (x % 8)) == 0 {
            0
        } else {
            255
        }
    });
    let grids = image.detect_grids();
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, uri);

    // An existing file is never overwritten.
    let again = from_output(daemon.latch(&args).stdin(Stdio::null()).output().unwrap());
    again.assert_code(2);
    assert!(again.stderr.contains("must not exist"), "{}", again.stderr);
}
