//! `latch audit`: reads `<home>/audit.log` directly (the operator runs as the daemon's
//! user), without the daemon.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::AuditArgs;
use crate::fail::{Failure, Outcome};
use crate::ui::escape;

/// File name of the audit log in the home (latch-daemon's `AUDIT_FILE`).
const AUDIT_FILE: &str = "audit.log";
/// How often `--follow` looks for new lines.
const POLL: Duration = Duration::from_millis(500);

/// The home as the other commands find it: `--home`, else `LATCH_HOME`, else `~/.latch`.
fn resolve_home(home: Option<PathBuf>) -> Result<PathBuf, Failure> {
    home.or_else(|| std::env::var_os("LATCH_HOME").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".latch")))
        .ok_or_else(|| {
            Failure::Usage("cannot find the latch home: pass --home or set LATCH_HOME".into())
        })
}

fn io_failure(path: &Path, e: &io::Error) -> Failure {
    Failure::Other(format!("cannot read {}: {e}", path.display()))
}

/// Runs `latch audit`.
pub(crate) async fn run(home: Option<PathBuf>, json: bool, args: AuditArgs) -> Outcome {
    let path = resolve_home(home)?.join(AUDIT_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Failure::NotFound(format!(
                "no audit log at {}: the audit log is disabled ([audit] enabled = false in \
                 latch.toml) or latchd never ran with this home (pass --home or set LATCH_HOME)",
                path.display()
            )));
        }
        Err(e) => return Err(io_failure(&path, &e)),
    };
    let filter = Filter {
        events: args.events,
    };
    let mut reader = BufReader::new(file);
    let mut last: VecDeque<String> = VecDeque::new();
    let mut line = String::new();
    let mut offset = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| io_failure(&path, &e))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        offset += n as u64;
        let text = line.trim_end();
        if filter.keeps(text) {
            last.push_back(text.to_owned());
            if args.lines.is_some_and(|max| last.len() > max) {
                last.pop_front();
            }
        }
    }
    let mut out = io::stdout().lock();
    for text in &last {
        print_line(&mut out, text, json);
    }
    let _ = out.flush();
    drop(out);
    if !args.follow {
        return Ok(());
    }
    let mut follower = Follower::new(path.clone(), reader.into_inner(), offset);
    loop {
        tokio::time::sleep(POLL).await;
        let lines = follower.poll().map_err(|e| io_failure(&path, &e))?;
        let mut out = io::stdout().lock();
        for text in lines.iter().filter(|t| filter.keeps(t)) {
            print_line(&mut out, text, json);
        }
        let _ = out.flush();
    }
}

/// Which lines `--event` keeps.
struct Filter {
    events: Vec<String>,
}

impl Filter {
    fn keeps(&self, line: &str) -> bool {
        if self.events.is_empty() {
            return true;
        }
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
            v.get("event")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|e| self.events.iter().any(|w| w == e))
        })
    }
}

/// One line of the log, as it is (`--json`) or as text; escaped either way (a line
/// that is valid JSON holds no control character, so only a damaged line changes).
fn print_line(out: &mut impl io::Write, line: &str, json: bool) {
    let text = if json {
        crate::ui::escape_as(line, crate::ui::Escapes::Json).into_owned()
    } else {
        escape(&human(line)).into_owned()
    };
    let _ = writeln!(out, "{text}");
}

/// `<ts>  <event>  key=value …`; a line that is not a JSON object is shown as it is.
fn human(line: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(line) else {
        return escape(line).into_owned();
    };
    let get = |k: &str| {
        map.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("-")
    };
    let mut text = format!("{:<24}  {:<22}", escape(get("ts")), escape(get("event")));
    for (k, v) in &map {
        if k == "ts" || k == "event" || v.is_null() {
            continue;
        }
        match v {
            serde_json::Value::String(s) => {
                text.push_str(&format!(" {}={}", escape(k), escape(s)));
            }
            other => text.push_str(&format!(" {}={other}", escape(k))),
        }
    }
    text.trim_end().to_owned()
}

/// Reads the lines appended to a file since the last poll, following it across
/// rotation (the file renamed away and a new one created at the path) and truncation.
struct Follower {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    fn new(path: PathBuf, file: File, offset: u64) -> Self {
        Self {
            path,
            file: Some(file),
            offset,
            partial: Vec::new(),
        }
    }

    /// The complete lines appended since the last call.
    fn poll(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        self.read_more(&mut lines)?;
        // Rotated: finish the old file (done above), then start on the new one.
        if self.replaced()? {
            self.partial.clear();
            self.file = match File::open(&self.path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            self.offset = 0;
            self.read_more(&mut lines)?;
        }
        Ok(lines)
    }

    /// Whether the path now names another file than the one open (or was truncated).
    fn replaced(&self) -> io::Result<bool> {
        let at_path = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let Some(file) = &self.file else {
            return Ok(true);
        };
        let open = file.metadata()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if (open.dev(), open.ino()) != (at_path.dev(), at_path.ino()) {
                return Ok(true);
            }
        }
        Ok(at_path.len() < self.offset || open.len() < self.offset)
    }

    fn read_more(&mut self, lines: &mut Vec<String>) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        let n = file.read_to_end(&mut buf)?;
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn human_lines_show_time_event_and_fields() {
        let line = r#"{"ts":"2026-01-02T03:04:05.000Z","event":"login_failed","username":"bob","source":null,"reason":"invalid_auth"}"#;
        let text = human(line);
        assert!(text.starts_with("2026-01-02T03:04:05.000Z"), "{text}");
        assert!(text.contains("login_failed"), "{text}");
        assert!(text.ends_with("username=bob reason=invalid_auth"), "{text}");
        assert_eq!(human("not json"), "not json");
    }

    #[test]
    fn control_characters_in_the_log_are_shown_escaped() {
        let line = r#"{"ts":"2026-01-02T03:04:05.000Z","event":"login_failed","username":"\u001b[2Jevil\r\nfake\u0007\u009b31m","reason":"invalid_auth"}"#;
        let text = human(line);
        assert!(
            text.contains(r"username=\x1b[2Jevil\r\nfake\x07\u{9b}31m"),
            "{text}"
        );
        assert!(!text.chars().any(char::is_control), "{text:?}");
        // A damaged line that is not JSON is escaped too.
        assert_eq!(human("bad\u{1b}[0m line"), r"bad\x1b[0m line");
        // With --json the line stays JSON, C1 controls written as JSON escapes.
        let mut out = Vec::new();
        print_line(&mut out, "{\"username\":\"a\u{9b}b\"}", true);
        let printed = String::from_utf8(out).unwrap();
        assert_eq!(printed, "{\"username\":\"a\\u009bb\"}\n");
        let back: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(back["username"], "a\u{9b}b");
    }

    #[test]
    fn the_event_filter_keeps_only_named_events() {
        let filter = Filter {
            events: vec!["login_failed".into()],
        };
        assert!(filter.keeps(r#"{"event":"login_failed"}"#));
        assert!(!filter.keeps(r#"{"event":"user_added"}"#));
        assert!(!filter.keeps("garbage"));
        assert!(Filter { events: vec![] }.keeps("garbage"));
    }

    #[test]
    fn the_follower_reads_appends_partial_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let append = |text: &str| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        append("a\n");
        let mut follower = Follower::new(path.clone(), File::open(&path).unwrap(), 2);
        assert!(follower.poll().unwrap().is_empty());
        append("b\nc");
        assert_eq!(follower.poll().unwrap(), ["b"]);
        append("\n");
        assert_eq!(follower.poll().unwrap(), ["c"]);
        // Rotation: a last line lands in the old file, then the new file starts.
        append("d\n");
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        append("e\n");
        assert_eq!(follower.poll().unwrap(), ["d", "e"]);
        append("f\n");
        assert_eq!(follower.poll().unwrap(), ["f"]);
        // Truncation starts over.
        std::fs::write(&path, "g\n").unwrap();
        assert_eq!(follower.poll().unwrap(), ["g"]);
    }
}
