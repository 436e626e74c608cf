//! Asking the operator: visible text, hidden secrets, new passwords with confirmation.
//!
//! On a terminal, text prompts go to stderr and secrets are read without echo
//! (rpassword). When stdin is not a terminal, every prompt reads the next line of stdin
//! and nothing is printed, so scripts and tests can pipe the answers.

use std::io::{self, IsTerminal as _, Write as _};

use latch_client::protocol::Sensitive;

use crate::fail::Failure;

/// The shortest password the CLI accepts.
pub(crate) const MIN_PASSWORD_LEN: usize = 8;

/// How many times a terminal is asked for a new password before the command gives up.
pub(crate) const PASSWORD_ATTEMPTS: u32 = 3;

#[derive(Debug)]
pub(crate) struct Prompter {
    interactive: bool,
}

impl Prompter {
    pub(crate) fn new() -> Self {
        Self {
            interactive: io::stdin().is_terminal(),
        }
    }

    pub(crate) fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Reads a visible answer (trimmed).
    pub(crate) fn text(&mut self, label: &str) -> Result<String, Failure> {
        if self.interactive {
            let mut stderr = io::stderr().lock();
            let _ = write!(stderr, "{label}: ");
            let _ = stderr.flush();
        }
        let line = read_line(label)?;
        Ok(line.trim().to_owned())
    }

    /// Reads a secret without echo (on a terminal) or the next stdin line.
    pub(crate) fn secret(&mut self, label: &str) -> Result<Sensitive, Failure> {
        if self.interactive {
            rpassword::prompt_password(format!("{label}: "))
                .map(Sensitive::from)
                .map_err(|e| Failure::Usage(format!("cannot read {label}: {e}")))
        } else {
            read_line(label).map(|line| Sensitive::from(strip_newline(line)))
        }
    }

    /// Reads a new password: from one stdin line with `from_stdin`, else prompted twice
    /// (the confirmation must match). Empty and short passwords are refused. On a
    /// terminal a refused or mistyped password is asked again, up to
    /// [`PASSWORD_ATTEMPTS`] times; from a pipe the first mistake ends the command.
    pub(crate) fn new_password(&mut self, from_stdin: bool) -> Result<Sensitive, Failure> {
        if from_stdin {
            let password =
                read_line("the password").map(|line| Sensitive::from(strip_newline(line)))?;
            check_password(&password)?;
            return Ok(password);
        }
        let mut attempt = 1;
        loop {
            match self.new_password_twice() {
                Ok(password) => return Ok(password),
                Err(Failure::Usage(why)) if self.interactive && attempt < PASSWORD_ATTEMPTS => {
                    let why = why
                        .trim_end_matches(": nothing was changed")
                        .trim_end_matches("; nothing was changed");
                    crate::ui::note(format!("{why}: try again"));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn new_password_twice(&mut self) -> Result<Sensitive, Failure> {
        let first = self.secret("New password")?;
        check_password(&first)?;
        let again = self.secret("Repeat the password")?;
        if first.expose() != again.expose() {
            return Err(Failure::Usage(
                "the passwords do not match: nothing was changed".to_owned(),
            ));
        }
        Ok(first)
    }
}

/// The client-side password policy: not empty, at least [`MIN_PASSWORD_LEN`] characters.
pub(crate) fn check_password(password: &Sensitive) -> Result<(), Failure> {
    if password.expose().trim().is_empty() {
        return Err(Failure::Usage(
            "the password is empty: nothing was changed".to_owned(),
        ));
    }
    let len = password.expose().chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(Failure::Usage(format!(
            "the password is too short ({len} characters): use at least {MIN_PASSWORD_LEN}; nothing was changed"
        )));
    }
    Ok(())
}

fn read_line(what: &str) -> Result<String, Failure> {
    let mut line = String::new();
    match io::stdin().read_line(&mut line) {
        Ok(0) => Err(Failure::Usage(format!(
            "stdin ended while reading {what} (pipe one line per prompt, or run in a terminal)"
        ))),
        Ok(_) => Ok(line),
        Err(e) => Err(Failure::Usage(format!(
            "cannot read {what} from stdin: {e}"
        ))),
    }
}

fn strip_newline(mut line: String) -> String {
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_short_passwords_are_refused_with_a_reason() {
        let err = check_password(&Sensitive::from("")).unwrap_err();
        assert!(err.to_string().contains("empty"));
        let err = check_password(&Sensitive::from("   ")).unwrap_err();
        assert!(err.to_string().contains("empty"));
        let err = check_password(&Sensitive::from("short")).unwrap_err();
        assert!(err.to_string().contains("at least 8"), "{err}");
        assert_eq!(err.exit_code(), 2);
        assert!(check_password(&Sensitive::from("long enough")).is_ok());
    }

    #[test]
    fn only_line_endings_are_stripped() {
        assert_eq!(strip_newline(" pw \r\n".to_owned()), " pw ");
        assert_eq!(strip_newline("pw".to_owned()), "pw");
    }
}
