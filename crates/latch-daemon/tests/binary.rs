//! The `latchd` binary: its flags, its exit codes, systemd notification and SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};

use latch_daemon::config::EXAMPLE;

fn latchd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latchd"))
        .args(args)
        .env_remove("LATCH_HOME")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn prints_the_documented_defaults() {
    let out = latchd(&["--print-default-config"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), EXAMPLE);
}

#[test]
fn help_lists_the_exit_statuses() {
    let out = latchd(&["--help"]);
    assert!(out.status.success());
    let shown = text(&out.stdout);
    assert!(shown.contains("Exit status:"), "{shown}");
    assert!(shown.contains("2  a permanent error"), "{shown}");
    assert!(shown.contains("1  a transient error"), "{shown}");
    assert!(shown.contains("RestartPreventExitStatus=2"), "{shown}");
}

#[test]
fn version_names_the_protocol() {
    let out = latchd(&["--version"]);
    assert!(out.status.success());
    let shown = text(&out.stdout);
    assert!(shown.contains(env!("CARGO_PKG_VERSION")), "{shown}");
    assert!(
        shown.contains(&format!("protocol {}", latch_protocol::PROTOCOL_VERSION)),
        "{shown}"
    );
}

#[test]
fn check_config_exits_0_for_a_good_file_and_2_for_a_bad_one() {
    let home = common::home();
    let home_arg = home.path().to_str().unwrap();
    // No file at all: the defaults are fine.
    let out = latchd(&["--home", home_arg, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("embedded defaults"));

    let file = home.path().join("latch.toml");
    std::fs::write(&file, EXAMPLE).unwrap();
    let out = latchd(&["--home", home_arg, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    std::fs::write(&file, "log_level = \"info\"\n[socket]\nbacklog = 5\n").unwrap();
    let out = latchd(&["--home", home_arg, "--check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `backlog`"), "{err}");

    // The same file stops the daemon itself with status 2, before it binds anything.
    let out = latchd(&["--home", home_arg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!home.path().join("latch.sock").exists());

    let out = latchd(&["--config", "/nonexistent/latch.toml", "--check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/latch.toml"));
}

#[test]
fn check_config_refuses_each_bad_value_at_its_line_and_column() {
    let home = common::home();
    let home_arg = home.path().to_str().unwrap();
    let file = home.path().join("latch.toml");
    for (body, at, says) in [
        (
            "log_level = \"info\"\n[throttle]\nwindow_secs = 18446744073709551615\n",
            "line 3, column 1",
            "throttle.window_secs is 18446744073709551615, outside 1..=2592000",
        ),
        (
            "[throttle]\nenabled = true\n    lockout_secs = 9223372036854775807\n",
            "line 3, column 5",
            "throttle.lockout_secs",
        ),
        (
            "[socket]\nhandshake_timeout_secs = 86400\n",
            "line 2, column 1",
            "socket.handshake_timeout_secs is 86400, outside 1..=60",
        ),
        (
            "# quiet please\nlog_level = \"loud\"\n",
            "line 2, column 1",
            "\"loud\" is not a level",
        ),
        (
            "shutdown_grace_secs = 5\nauth_providers = []\n",
            "line 2, column 1",
            "auth_providers is empty",
        ),
        (
            "[[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 40\n",
            "line 3, column 1",
            "bcrypt_cost 40 is outside 4..=31",
        ),
    ] {
        std::fs::write(&file, body).unwrap();
        let out = latchd(&["--home", home_arg, "--check-config"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(
            err.contains(&format!("{} at {at}: ", file.display())),
            "{body}: {err}"
        );
        assert!(err.contains(says), "{body}: {err}");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_systemd_and_stops_cleanly_on_sigterm() {
    use latch_protocol::{Request, Response};
    use rustix::process::{Pid, Signal, kill_process};
    use tokio::net::UnixDatagram;

    let home = common::home();
    let notify_path = home.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    std::fs::write(
        home.path().join("latch.toml"),
        "[[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 4\n",
    )
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchd"))
        .arg("--home")
        .arg(home.path())
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut buf = [0u8; 256];
    let n = common::within("READY=1", notify.recv(&mut buf))
        .await
        .unwrap();
    assert!(text(&buf[..n]).contains("READY=1"), "{}", text(&buf[..n]));

    // Ready means served.
    let config = latch_ipc::client::ClientConfig::for_home(
        &latch_ipc::home::Home::new(home.path()),
        latch_protocol::PROTOCOL_VERSION,
    );
    let mut client = common::Client::connect(&config).await;
    assert_eq!(client.ok(Request::Ping).await, Response::Pong);

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()).unwrap();
    kill_process(pid, Signal::TERM).unwrap();
    let n = common::within("STOPPING=1", notify.recv(&mut buf))
        .await
        .unwrap();
    assert!(
        text(&buf[..n]).contains("STOPPING=1"),
        "{}",
        text(&buf[..n])
    );
    let out = common::within("exit", child.wait_with_output())
        .await
        .unwrap();
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("latchd started"), "{log}");
    assert!(log.contains("latchd stopped"), "{log}");
    assert!(!home.path().join("latch.sock").exists());
    assert!(!home.path().join("session-token").exists());
}
