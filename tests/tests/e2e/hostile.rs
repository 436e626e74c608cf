//! Hostile clients against the real latchd: a thousand connections at once that never
//! speak, speak garbage, claim a 4 GiB frame, send a wrong proof, or drip one byte a
//! second. While they run, an honest client keeps validating a token, each hostile
//! connection is closed by the handshake deadline, the daemon's memory stays put, and
//! nothing hostile reaches the event stream.

use std::io::ErrorKind;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latch_client::protocol::Event;
use latch_client::{ClientEvent, NewUser};
use latch_tests::raw::{hello, is_bad_proof_rejection, is_challenge, split_frames, wrong_proof};
use latch_tests::{Home, block_on, poll_until, raise_fd_limit, runtime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use super::OWNER_PASSWORD;

/// Hostile connections of each kind.
const PER_KIND: usize = 200;
/// latchd's handshake deadline (`socket.handshake_timeout_secs`, default 5).
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// Slack on top of the deadline for a loaded machine: from our `connect` to latchd's
/// `accept`, and from its close to our read of the EOF.
const CLOSE_MARGIN: Duration = Duration::from_secs(3);
/// How long one honest validation may take while the flood runs (a correctness bound,
/// not a speed target: it fails only if validations queue behind the strangers).
const VALIDATION_BOUND: Duration = Duration::from_secs(2);
/// How much the daemon's resident memory may grow during the flood.
const RSS_GROWTH_KIB: u64 = 20 * 1024;
/// A hostile connection still open after this long has not been closed at all.
const GIVE_UP: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Connects and never writes.
    Silent,
    /// Writes an HTTP request and noise.
    Garbage,
    /// Claims a frame of 4 GiB - 1 and sends its first bytes.
    HugeFrame,
    /// A hello, then an authentication proof made without the session token.
    WrongProof,
    /// The bytes of a hello, one a second.
    Drip,
}

const KINDS: [Kind; 5] = [
    Kind::Silent,
    Kind::Garbage,
    Kind::HugeFrame,
    Kind::WrongProof,
    Kind::Drip,
];

/// Deterministic noise (an LCG), so a failure can be replayed.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            x.to_be_bytes()[0]
        })
        .collect()
}

/// What one hostile connection saw.
#[derive(Debug)]
struct Closed {
    kind: Kind,
    /// From our connect until we saw the close; `None` if it was never closed.
    open_for: Option<Duration>,
    /// Everything the daemon sent it.
    received: Vec<u8>,
    /// A read error other than a reset, if any.
    error: Option<String>,
}

/// Connects, retrying while the listen backlog is full (a non-blocking connect to a
/// Unix socket then fails with `EAGAIN` instead of waiting).
async fn connect(home: &Home) -> UnixStream {
    let socket = home.socket();
    loop {
        match UnixStream::connect(&socket).await {
            Ok(stream) => return stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("cannot connect a hostile client: {e}"),
        }
    }
}

/// Plays `kind` on a connected stream until the daemon closes it.
async fn play(kind: Kind, n: u32, stream: UnixStream, connected_at: Instant) -> Closed {
    let (mut reader, mut writer) = stream.into_split();
    let send = async move {
        // The daemon may close before it read everything: writes may fail.
        match kind {
            Kind::Silent => {}
            Kind::Garbage => {
                let mut bytes = b"GET /api/auth HTTP/1.1\r\nHost: latch\r\n\r\n".to_vec();
                bytes.extend(noise(512, n));
                let _ = writer.write_all(&bytes).await;
            }
            Kind::HugeFrame => {
                let mut bytes = vec![0xff; 4];
                bytes.extend(noise(1024, n));
                let _ = writer.write_all(&bytes).await;
            }
            Kind::WrongProof => {
                let _ = writer.write_all(&[hello(), wrong_proof()].concat()).await;
            }
            Kind::Drip => {
                for byte in hello() {
                    if writer.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Keep the writing half open: only the daemon ends this connection.
        std::future::pending::<()>().await;
        writer
    };
    let receive = async move {
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => return (received, None),
                Ok(k) => received.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return (received, None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return (received, Some(e.to_string())),
            }
        }
    };
    let outcome = tokio::time::timeout(GIVE_UP, async {
        tokio::select! {
            _ = send => unreachable!("the sender never ends"),
            outcome = receive => outcome,
        }
    })
    .await;
    match outcome {
        Ok((received, error)) => Closed {
            kind,
            open_for: Some(connected_at.elapsed()),
            received,
            error,
        },
        Err(_) => Closed {
            kind,
            open_for: None,
            received: Vec::new(),
            error: None,
        },
    }
}

/// What a flood showed.
#[derive(Debug)]
struct Flood {
    /// Per kind: the longest time a connection stayed open.
    longest_open: Vec<(Kind, Duration)>,
    /// Wrong-proof connections that got the challenge and the rejection (the rest were
    /// closed before they spoke, to make room for newer connections).
    wrong_proofs_answered: usize,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    validations: usize,
    slowest_validation: Duration,
    /// Clients that connected, authenticated and were answered while the flood ran.
    connected_during: usize,
    took: Duration,
}

/// Floods a daemon started with `config` with `PER_KIND` connections of every kind at
/// once, asserting what the module's doc promises; `connect_during` also has new
/// honest clients connect while the flood runs.
fn flood(config: &str, connect_during: bool) -> Flood {
    let hostile = PER_KIND * KINDS.len();
    let fd_limit = raise_fd_limit();
    assert!(
        fd_limit >= u64::try_from(hostile).unwrap() + 256,
        "this test needs {} open files; the limit is {fd_limit}",
        hostile + 256
    );
    let home = Home::with_config(config);
    let daemon = home.start();
    let client = home.client();
    let owner = block_on(client.onboard("Owner", "owner", OWNER_PASSWORD)).unwrap();
    let token =
        block_on(client.create_long_lived_token(&owner.id, "hostile test", None, 1)).unwrap();
    let access = token.access_token.expose().to_owned();
    assert_eq!(
        block_on(client.validate_token(&access)).unwrap().user.id,
        owner.id
    );

    // An honest subscriber, subscribed to everything before the flood.
    let watcher = home.client();
    let mut events = block_on(watcher.subscribe_all()).unwrap();
    let seen: Arc<Mutex<Vec<ClientEvent>>> = Arc::default();
    let record = Arc::clone(&seen);
    runtime().spawn(async move {
        while let Some(event) = events.next_event().await {
            record.lock().unwrap().push(event);
        }
    });

    let rss_before_kib = daemon.rss_kib().expect("latchd's VmRSS");
    let started = Instant::now();
    // Every connection is made before any is played, so all of them are open at once
    // (from this side: latchd closes the oldest strangers to make room for newer ones).
    let connections: Vec<JoinHandle<Closed>> = block_on(async {
        let mut streams = Vec::with_capacity(hostile);
        for i in 0..hostile {
            streams.push((KINDS[i % KINDS.len()], connect(&home).await, Instant::now()));
        }
        streams
            .into_iter()
            .zip(0u32..)
            .map(|((kind, stream, at), n)| tokio::spawn(play(kind, n, stream, at)))
            .collect()
    });

    // While they are open the honest client keeps validating, and its answers stay right.
    let mut validations = 0;
    let mut slowest_validation = Duration::ZERO;
    let mut rss_peak_kib = rss_before_kib;
    let mut connected_during = 0;
    while !connections.iter().all(JoinHandle::is_finished) {
        assert!(
            started.elapsed() < GIVE_UP + Duration::from_secs(5),
            "hostile connections are still open after {:?}",
            started.elapsed()
        );
        let t = Instant::now();
        let validated = block_on(client.validate_token(&access))
            .unwrap_or_else(|e| panic!("validation {validations} during the flood failed: {e}"));
        let took = t.elapsed();
        assert_eq!(validated.user.id, owner.id);
        assert!(
            took < VALIDATION_BOUND,
            "validation {validations} took {took:?} during the flood"
        );
        slowest_validation = slowest_validation.max(took);
        validations += 1;
        if let Some(rss) = daemon.rss_kib() {
            rss_peak_kib = rss_peak_kib.max(rss);
        }
        if connect_during && validations % 20 == 0 {
            let newcomer = home.client();
            block_on(newcomer.validate_token(&access)).unwrap();
            connected_during += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();

    // Every hostile connection was closed by the deadline, and got nothing but the
    // handshake's own frames.
    let mut longest_open: Vec<(Kind, Duration)> =
        KINDS.iter().map(|&k| (k, Duration::ZERO)).collect();
    let mut wrong_proofs_answered = 0;
    for connection in connections {
        let closed = block_on(connection).unwrap();
        let kind = closed.kind;
        let open_for = closed
            .open_for
            .unwrap_or_else(|| panic!("a {kind:?} connection was never closed"));
        assert!(closed.error.is_none(), "{kind:?}: {:?}", closed.error);
        assert!(
            open_for <= HANDSHAKE_DEADLINE + CLOSE_MARGIN,
            "a {kind:?} connection stayed open for {open_for:?}"
        );
        let longest = &mut longest_open.iter_mut().find(|(k, _)| *k == kind).unwrap().1;
        *longest = (*longest).max(open_for);
        let frames = split_frames(&closed.received);
        if kind == Kind::WrongProof && !frames.is_empty() {
            assert_eq!(frames.len(), 2, "{kind:?}: {frames:?}");
            assert!(is_challenge(&frames[0]), "{kind:?}: {frames:?}");
            assert!(is_bad_proof_rejection(&frames[1]), "{kind:?}: {frames:?}");
            wrong_proofs_answered += 1;
        } else {
            // Without a whole hello there is nothing to answer.
            assert!(frames.is_empty(), "{kind:?}: {frames:?}");
        }
    }

    // The silent ones were kept until the deadline, so the validations above ran while
    // strangers held their connections open.
    let (_, silent) = longest_open[0];
    assert!(
        silent >= HANDSHAKE_DEADLINE - Duration::from_millis(100),
        "{longest_open:?}"
    );

    // Nothing hostile reached the event stream: the first thing the subscriber gets
    // after the flood is the event of the honest change made now.
    let marker = block_on(client.create_user(NewUser::new("After the flood"))).unwrap();
    poll_until("the subscriber to get the marker event", || {
        (!seen.lock().unwrap().is_empty()).then_some(())
    });
    assert_eq!(
        *seen.lock().unwrap(),
        [ClientEvent::Event(Event::UserAdded { user_id: marker.id })],
        "the subscriber's events"
    );
    // A new client is served after the flood.
    block_on(home.client().validate_token(&access)).unwrap();

    assert!(
        rss_peak_kib - rss_before_kib < RSS_GROWTH_KIB,
        "latchd's RSS grew from {rss_before_kib} KiB to {rss_peak_kib} KiB"
    );
    Flood {
        longest_open,
        wrong_proofs_answered,
        rss_before_kib,
        rss_peak_kib,
        validations,
        slowest_validation,
        connected_during,
        took,
    }
}

/// The figures, for `--nocapture` runs.
#[allow(clippy::print_stderr)]
fn report(name: &str, flood: &Flood) {
    let longest: Vec<String> = flood
        .longest_open
        .iter()
        .map(|(kind, open)| format!("{kind:?} {open:.2?}"))
        .collect();
    eprintln!(
        "{name}: {} hostile connections closed within {:.2?}; longest open: {}; {} of {} \
         wrong proofs answered; latchd RSS {} KiB before, {} KiB at the peak (+{} KiB); \
         {} validations, the slowest {:.1?}; {} clients connected during the flood",
        PER_KIND * KINDS.len(),
        flood.took,
        longest.join(", "),
        flood.wrong_proofs_answered,
        PER_KIND,
        flood.rss_before_kib,
        flood.rss_peak_kib,
        flood.rss_peak_kib - flood.rss_before_kib,
        flood.validations,
        flood.slowest_validation,
        flood.connected_during,
    );
}

#[test]
fn a_thousand_hostile_connections_against_the_default_limits() {
    // latchd's defaults: 64 pre-authentication slots. Each newcomer pushes out the
    // oldest stranger, so most are closed at once, the last 64 hold their slots until
    // the 5 s deadline, and new honest clients still get in meanwhile.
    let flood = flood("", true);
    report("default limits", &flood);
    assert!(flood.validations >= 20, "{flood:?}");
    assert!(flood.connected_during >= 1, "{flood:?}");
}

#[test]
fn a_thousand_hostile_connections_all_in_their_handshake() {
    // Slots for all of them: each stranger is in its handshake at once, and the daemon
    // still closes every one by the deadline and serves newcomers meanwhile.
    let flood = flood("[socket]\nmax_unauthenticated = 1100\n", true);
    report("all in their handshake", &flood);
    assert_eq!(flood.wrong_proofs_answered, PER_KIND, "{flood:?}");
    assert!(flood.connected_during >= 1, "{flood:?}");
}

#[test]
fn at_its_open_file_limit_latchd_pauses_accepting_and_recovers() {
    // 128 descriptors: about a hundred connections, then `accept` fails with EMFILE.
    const LIMIT: u64 = 128;
    const STRANGERS: usize = 150;
    let deadline = Duration::from_secs(2);
    let home =
        Home::with_config("[socket]\nhandshake_timeout_secs = 2\nmax_unauthenticated = 1000\n");
    let daemon = home.start_with_fd_limit(LIMIT);
    // It says at start that the limit is too low for what it is configured to serve.
    assert!(
        daemon
            .log()
            .contains(&format!("the open-file limit ({LIMIT}) is lower")),
        "{}",
        daemon.log()
    );
    let client = home.client();
    block_on(client.onboard("Owner", "owner", OWNER_PASSWORD)).unwrap();

    // Silent strangers, more than the daemon has descriptors for.
    let strangers: Vec<JoinHandle<Closed>> = block_on(async {
        let mut handles = Vec::with_capacity(STRANGERS);
        for n in 0..STRANGERS {
            let stream = connect(&home).await;
            let at = Instant::now();
            handles.push(tokio::spawn(play(
                Kind::Silent,
                u32::try_from(n).unwrap(),
                stream,
                at,
            )));
        }
        handles
    });
    poll_until("latchd to run out of descriptors", || {
        daemon.log().contains("Too many open files").then_some(())
    });
    // Out of descriptors, the accept loop waits rather than spins, and the connection it
    // already has is served.
    let ticks = daemon.cpu_ticks().expect("latchd's CPU time");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        block_on(client.ping()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = daemon.cpu_ticks().unwrap() - ticks;
    assert!(
        used < 50,
        "latchd used {used} ticks of CPU in a second at its limit"
    );

    // As the strangers' handshakes time out, the queued ones are accepted (and time out
    // in turn): every one is closed, none later than two deadlines after its connect.
    let mut longest = Duration::ZERO;
    for stranger in strangers {
        let closed = block_on(stranger).unwrap();
        let open_for = closed.open_for.expect("a stranger was never closed");
        assert!(closed.error.is_none(), "{:?}", closed.error);
        assert!(open_for <= 2 * deadline + CLOSE_MARGIN, "{open_for:?}");
        longest = longest.max(open_for);
    }
    // The accept loop is alive: a new client is served.
    block_on(home.client().ping()).unwrap();
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "fd limit {LIMIT}: {used} CPU ticks in the second at the limit; \
             {STRANGERS} strangers closed, the last after {longest:.2?}"
        );
    }
}
