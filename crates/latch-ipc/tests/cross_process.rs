//! A daemon and a client in separate processes complete the handshake and exchange
//! pipelined requests.
//!
//! This test has no harness: run as the parent, it re-executes its own binary with
//! `LATCH_IPC_TEST_CHILD=server` (and the home in `LATCH_IPC_TEST_HOME`); the child binds
//! a daemon, prints `ready`, and echoes requests until it is asked to stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[cfg(unix)]
mod common;

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    unix::main()
}

#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod unix {
    use std::collections::BTreeSet;
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Command, ExitCode, Stdio};
    use std::time::{Duration, Instant};

    use latch_ipc::ServerFrame;
    use latch_ipc::broadcast::Broadcaster;
    use latch_ipc::client::connect;

    use crate::common::{Ev, Req, Resp, TestServer, VERSION, client_config, req, server_config};

    const CHILD_ENV: &str = "LATCH_IPC_TEST_CHILD";
    const HOME_ENV: &str = "LATCH_IPC_TEST_HOME";
    const REQUESTS: u64 = 256;

    pub(crate) fn main() -> ExitCode {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        if std::env::var_os(CHILD_ENV).is_some() {
            let home = PathBuf::from(std::env::var_os(HOME_ENV).expect("child without a home"));
            runtime.block_on(child(&home));
            return ExitCode::SUCCESS;
        }
        runtime.block_on(parent());
        eprintln!("cross_process: ok");
        ExitCode::SUCCESS
    }

    /// The daemon process: echo every request, stop on "stop".
    async fn child(home: &Path) {
        let mut server = TestServer::bind(server_config(home)).await.unwrap();
        let _events = Broadcaster::<Ev>::new(4);
        let mut stdout = std::io::stdout();
        writeln!(stdout, "ready").unwrap();
        stdout.flush().unwrap();
        let (stop_tx, mut stop_rx) = tokio::sync::mpsc::channel::<()>(1);
        // Never outlive a parent that died mid-test.
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        loop {
            let conn = tokio::select! {
                conn = server.accept() => conn,
                _ = stop_rx.recv() => break,
                () = &mut deadline => break,
            };
            let Some(conn) = conn else { break };
            let stop_tx = stop_tx.clone();
            tokio::spawn(async move {
                let peer = conn.peer();
                let (mut requests, sender) = conn.into_split();
                while let Ok(Some(request)) = requests.recv().await {
                    let request: Req = request;
                    if request.body == "stop" {
                        let _ = stop_tx.send(()).await;
                        break;
                    }
                    let sender = sender.clone();
                    tokio::spawn(async move {
                        let response = Resp {
                            id: request.id,
                            body: request.body,
                            peer_pid: peer.pid,
                        };
                        let _ = sender.send(&response).await;
                    });
                }
            });
        }
        server.shutdown().await;
    }

    /// The client process: start the daemon, talk to it, stop it, check it cleaned up.
    async fn parent() {
        let home = crate::common::home();
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .env(CHILD_ENV, "server")
            .env(HOME_ENV, home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let child_pid = child.id();
        let stdout = child.stdout.take().unwrap();
        let ready = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .expect("the daemon process did not get ready")
            .unwrap()
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "unexpected output from the daemon process"
        );

        let mut client = connect::<Req, Resp, Ev>(&client_config(home.path()))
            .await
            .unwrap();
        assert_eq!(client.daemon_version(), VERSION);
        for id in 0..REQUESTS {
            client.send(&req(id, &format!("n{id}"))).await.unwrap();
        }
        let mut seen = BTreeSet::new();
        for _ in 0..REQUESTS {
            let frame = tokio::time::timeout(Duration::from_secs(10), client.recv())
                .await
                .expect("no response from the daemon process")
                .unwrap();
            match frame {
                Some(ServerFrame::Response(resp)) => {
                    assert_eq!(resp.body, format!("n{}", resp.id));
                    // The daemon saw this process, not itself: two processes.
                    assert_eq!(resp.peer_pid, Some(std::process::id()));
                    assert_ne!(resp.peer_pid, Some(child_pid));
                    seen.insert(resp.id);
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(seen, (0..REQUESTS).collect::<BTreeSet<_>>());

        client.send(&req(u64::MAX, "stop")).await.unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("the daemon process did not stop");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(status.success(), "the daemon process failed: {status}");
        assert!(!home.path().join("latch.sock").exists());
        assert!(!home.path().join("session-token").exists());
    }
}
