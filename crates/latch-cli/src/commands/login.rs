//! `latch login USER`: the real login flow, as a browser would run it.

use latch_client::protocol::{
    FieldKind, FlowForm, FlowState, FormInput, Handler, IssuedTokens, Sensitive, ThrottleState,
    Timestamp,
};
use serde_json::json;

use super::Ctx;
use crate::cli::LoginArgs;
use crate::fail::{Failure, Outcome};
use crate::ui;

/// The OAuth client id the CLI's logins are issued to, unless `--client-id` says
/// otherwise.
pub(crate) const DEFAULT_CLIENT_ID: &str = "https://latch.localhost/cli";

/// The provider the CLI logs in with.
const PROVIDER: &str = "homeassistant";

/// How many times a wrong code may be retyped on a terminal.
const CODE_ATTEMPTS: u32 = 3;

pub(crate) async fn run(ctx: &mut Ctx, args: LoginArgs) -> Outcome {
    let mut state = ctx
        .client
        .login_start(Handler::new(PROVIDER), &args.client_id, None, None)
        .await?;
    let mut password: Option<Sensitive> = None;
    let mut code_attempts = 0;
    loop {
        let form = match state {
            FlowState::Form(form) => form,
            FlowState::Abort { reason, .. } if reason == "too_many_attempts" => {
                return Err(Failure::Denied(format!(
                    "login failed: {}",
                    lockout_text(ctx, &args.user).await
                )));
            }
            FlowState::Abort { reason, .. } => {
                return Err(Failure::Denied(format!(
                    "login failed: {}",
                    reason_text(&reason)
                )));
            }
            FlowState::Done { tokens, .. } => return done(ctx, &args, &tokens).await,
        };
        if let Some((_, key)) = form.errors.first() {
            let retry = form.step_id == "mfa"
                && ctx.prompt.is_interactive()
                && code_attempts < CODE_ATTEMPTS;
            if retry {
                ui::note(format!("{}: try again", reason_text(key)));
            } else {
                let _ = ctx.client.login_abort(&form.flow_id).await;
                return Err(Failure::Denied(format!(
                    "login failed: {}",
                    reason_text(key)
                )));
            }
        }
        if form.step_id == "mfa" {
            code_attempts += 1;
        }
        let input = fill(ctx, &form, &args, &mut password)?;
        announce_throttle(ctx, &args.user).await;
        state = match ctx.client.login_continue(&form.flow_id, input, None).await {
            Ok(next) => next,
            Err(e) => {
                let _ = ctx.client.login_abort(&form.flow_id).await;
                return Err(e.into());
            }
        };
    }
}

/// Answers every field of a form: the username from the command line, the password
/// once (prompted or from stdin), a module choice, and codes from the operator.
fn fill(
    ctx: &mut Ctx,
    form: &FlowForm,
    args: &LoginArgs,
    password: &mut Option<Sensitive>,
) -> Result<FormInput, Failure> {
    let mut input = FormInput::new();
    for field in &form.fields {
        let value = match (field.name.as_str(), &field.kind) {
            ("username", _) => Sensitive::from(args.user.as_str()),
            ("password", _) => match password {
                Some(p) => p.clone(),
                None => {
                    let p = if args.password_stdin {
                        read_stdin_line()?
                    } else {
                        ctx.prompt.secret("Password")?
                    };
                    *password = Some(p.clone());
                    p
                }
            },
            (_, FieldKind::Select(options)) => Sensitive::from(choose(ctx, &field.name, options)?),
            (name, FieldKind::Secret) if form.step_id == "mfa" => {
                let module = form
                    .placeholder("mfa_module_name")
                    .map_or_else(|| name.to_owned(), |m| m.expose().to_owned());
                ctx.prompt.secret(&format!("Code ({module})"))?
            }
            (name, FieldKind::Secret) => ctx.prompt.secret(name)?,
            (name, FieldKind::Text) => Sensitive::from(ctx.prompt.text(name)?),
        };
        input.push((field.name.clone(), value));
    }
    Ok(input)
}

/// Picks one of a select field's options: the only one, the first when not on a
/// terminal, else asks.
fn choose(ctx: &mut Ctx, name: &str, options: &[(String, String)]) -> Result<String, Failure> {
    let Some((first, _)) = options.first() else {
        return Err(Failure::Usage(format!(
            "the login form offers no choice for {name}"
        )));
    };
    if options.len() == 1 || !ctx.prompt.is_interactive() {
        return Ok(first.clone());
    }
    for (i, (_, label)) in options.iter().enumerate() {
        ui::note(format!("  {}. {label}", i + 1));
    }
    let answer = ctx.prompt.text(&format!("{name} [1-{}]", options.len()))?;
    answer
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| options.get(i))
        .map(|(value, _)| value.clone())
        .ok_or_else(|| Failure::Usage(format!("{answer:?} is not one of the choices")))
}

fn read_stdin_line() -> Result<Sensitive, Failure> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) => Err(Failure::Usage(
            "stdin is empty: no password to read".to_owned(),
        )),
        Ok(_) => {
            while line.ends_with(['\n', '\r']) {
                line.pop();
            }
            Ok(Sensitive::from(line))
        }
        Err(e) => Err(Failure::Usage(format!("cannot read the password: {e}"))),
    }
}

async fn done(ctx: &Ctx, args: &LoginArgs, tokens: &IssuedTokens) -> Outcome {
    let user = ctx.client.get_user(&tokens.user_id).await.ok();
    let name = user
        .as_ref()
        .map_or_else(|| tokens.user_id.clone(), |u| ui::name(u).into_owned());
    if ctx.json {
        let mut value = json!({
            "user_id": tokens.user_id,
            "user_name": name,
            "refresh_token_id": tokens.refresh_token_id,
            "provider_type": tokens.provider_type,
            "token_type": tokens.token_type(),
            "expires_in": tokens.expires_in,
        });
        if args.show_tokens
            && let Some(map) = value.as_object_mut()
        {
            map.insert("access_token".into(), tokens.access_token.expose().into());
            map.insert("refresh_token".into(), tokens.refresh_token.expose().into());
        }
        ui::json(&value);
        return Ok(());
    }
    ui::out(format!("logged in as {name} (user {})", tokens.user_id));
    if args.show_tokens {
        ui::out(format!("access token:  {}", tokens.access_token.expose()));
        ui::out(format!("refresh token: {}", tokens.refresh_token.expose()));
        ui::out(format!(
            "the access token expires in {} s; refresh token id {}",
            tokens.expires_in, tokens.refresh_token_id
        ));
    } else {
        ui::out(format!(
            "refresh token id {} (pass --show-tokens to print the tokens)",
            tokens.refresh_token_id
        ));
    }
    Ok(())
}

/// Says so before an attempt that latchd will hold back or refuse: a throttled login
/// would otherwise wait in silence.
async fn announce_throttle(ctx: &Ctx, username: &str) {
    let Ok(state) = ctx.client.login_throttle(Some(username), None).await else {
        return;
    };
    if let Some((key, until)) = &state.locked_out {
        ui::note(format!(
            "latch: {key} is locked out until {}: this attempt will be refused",
            until_text(*until)
        ));
    } else if state.delay_ms > 0 {
        ui::note(format!(
            "latch: after repeated failed logins latchd holds this attempt for {} before \
             checking it…",
            duration_text(state.delay_ms)
        ));
    }
}

/// Why a login was refused by a lockout, with when it ends.
async fn lockout_text(ctx: &Ctx, username: &str) -> String {
    match ctx.client.login_throttle(Some(username), None).await {
        Ok(ThrottleState {
            locked_out: Some((key, until)),
            ..
        }) => format!(
            "too many failed attempts: {key} is locked out until {}; an operator can lift \
             it with `latch lockouts --clear {key}`",
            until_text(until)
        ),
        _ => reason_text("too_many_attempts"),
    }
}

/// A lockout's end: the time, and how far off it is.
fn until_text(until: Timestamp) -> String {
    let left = until
        .to_datetime()
        .map(|t| (t - chrono::Utc::now()).num_seconds().max(0))
        .unwrap_or(0);
    let left = u64::try_from(left).unwrap_or(0);
    format!(
        "{} (in {})",
        ui::time_text(Some(until)),
        duration_text(left.saturating_mul(1000))
    )
}

/// Milliseconds in words: `800 ms`, `4 s`, `15 min 30 s`, `2 h 5 min`.
fn duration_text(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    match secs {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{secs} s"),
        60..3600 if secs.is_multiple_of(60) => format!("{} min", secs / 60),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs / 60 % 60),
    }
}

/// A flow error or abort reason, in words.
fn reason_text(key: &str) -> String {
    match key {
        "invalid_auth" => "wrong username or password".to_owned(),
        "invalid_code" => "wrong code".to_owned(),
        "code_already_used" => {
            "that code was already used (codes work once): wait for the next one".to_owned()
        }
        "login_expired" => "the login took too long; start again".to_owned(),
        "too_many_retry" => "too many wrong codes".to_owned(),
        "too_many_attempts" => {
            "too many failed attempts: locked out for now (see `latch lockouts`)".to_owned()
        }
        "login_blocked" => {
            "login blocked: the user is deactivated, or may only log in from a local address"
                .to_owned()
        }
        "not_allowed" => "this user may not log in from here".to_owned(),
        other => other.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_text(800), "800 ms");
        assert_eq!(duration_text(1000), "1 s");
        assert_eq!(duration_text(4_000), "4 s");
        assert_eq!(duration_text(900_000), "15 min");
        assert_eq!(duration_text(930_000), "15 min 30 s");
        assert_eq!(duration_text(7_500_000), "2 h 5 min");
    }
}
