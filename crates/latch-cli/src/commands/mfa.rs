//! `latch mfa …`: enrol a second factor (QR code in the terminal), disable it,
//! regenerate recovery codes.

use latch_client::protocol::{FlowForm, Sensitive, SetupFlowState};
use serde_json::json;

use super::Ctx;
use crate::cli::MfaCommand;
use crate::fail::{Failure, Outcome};
use crate::ui;

/// How many times a wrong code may be retyped on a terminal.
const CODE_ATTEMPTS: u32 = 3;

pub(crate) async fn run(ctx: &mut Ctx, cmd: MfaCommand) -> Outcome {
    match cmd {
        MfaCommand::Setup { user, module } => setup(ctx, &user, &module).await,
        MfaCommand::Disable { user, module } => {
            let user = ctx.resolve_user(&user).await?;
            ctx.client.mfa_disable(&user.id, &module).await?;
            if ctx.json {
                ui::json(&json!({ "user_id": user.id, "module_id": module, "result": "disabled" }));
            } else {
                ui::out(format!("{module} disabled for {}", user.display_name()));
            }
            Ok(())
        }
        MfaCommand::RecoveryCodes { user, module } => {
            let user = ctx.resolve_user(&user).await?;
            let codes = ctx
                .client
                .regenerate_recovery_codes(&user.id, &module)
                .await?;
            if ctx.json {
                ui::json(&json!({
                    "user_id": user.id,
                    "module_id": module,
                    "recovery_codes": codes.iter().map(Sensitive::expose).collect::<Vec<_>>(),
                }));
            } else {
                ui::out(format!(
                    "new recovery codes for {} ({module}); the old ones no longer work.",
                    user.display_name()
                ));
                print_recovery_codes(&codes);
            }
            Ok(())
        }
    }
}

async fn setup(ctx: &mut Ctx, user: &str, module: &str) -> Outcome {
    let user = ctx.resolve_user(user).await?;
    let mut state = ctx.client.mfa_setup_start(&user.id, module).await?;
    let mut attempts = 0;
    loop {
        let form = match state {
            SetupFlowState::Form(form) => form,
            SetupFlowState::Abort { reason, .. } => {
                return Err(Failure::Denied(format!(
                    "{module} setup for {} ended: {}",
                    user.display_name(),
                    reason.replace('_', " ")
                )));
            }
            SetupFlowState::Done {
                module_id,
                recovery_codes,
                ..
            } => {
                if ctx.json {
                    ui::json(&json!({
                        "user_id": user.id,
                        "module_id": module_id,
                        "recovery_codes": recovery_codes.iter().map(Sensitive::expose).collect::<Vec<_>>(),
                    }));
                } else {
                    ui::out(format!(
                        "{module_id} is now enabled for {}.",
                        user.display_name()
                    ));
                    print_recovery_codes(&recovery_codes);
                }
                return Ok(());
            }
        };
        if attempts == 0 {
            show_enrolment(ctx, &form);
        }
        if let Some((_, key)) = form.errors.first() {
            if ctx.prompt.is_interactive() && attempts < CODE_ATTEMPTS {
                ui::note(format!("{}: try again", key.replace('_', " ")));
            } else {
                let _ = ctx.client.mfa_setup_abort(&form.flow_id).await;
                return Err(Failure::Denied(format!(
                    "{module} setup failed: {} (nothing was enabled)",
                    key.replace('_', " ")
                )));
            }
        }
        attempts += 1;
        let field = form
            .fields
            .first()
            .map_or_else(|| "code".to_owned(), |f| f.name.clone());
        let code = ctx
            .prompt
            .text("Enter the code your authenticator app shows")?;
        state = ctx
            .client
            .mfa_setup_continue(&form.flow_id, vec![(field, Sensitive::from(code))])
            .await?;
    }
}

/// The QR code (drawn in the terminal) and the otpauth URI beside it. With `--json` they
/// go to stderr, so stdout holds only the JSON result.
fn show_enrolment(ctx: &Ctx, form: &FlowForm) {
    let say = |line: String| {
        if ctx.json {
            ui::note(line);
        } else {
            ui::out(line);
        }
    };
    say("Scan this QR code with your authenticator app:".to_owned());
    match form.placeholder("qr_terminal").filter(|q| !q.is_empty()) {
        Some(qr) => say(qr.expose().to_owned()),
        None => say("(no QR code offered: use the URI or the secret below)".to_owned()),
    }
    if let Some(url) = form.placeholder("url") {
        say(format!("or open this URI on the phone: {}", url.expose()));
    }
    if let Some(secret) = form.placeholder("code") {
        say(format!("or type the secret by hand: {}", secret.expose()));
    }
}

fn print_recovery_codes(codes: &[Sensitive]) {
    if codes.is_empty() {
        return;
    }
    ui::out(
        "Recovery codes: each works once in place of a code if the phone is lost.\n\
         They are shown ONLY NOW: store them somewhere safe.",
    );
    for code in codes {
        ui::out(format!("    {}", code.expose()));
    }
    ui::note("latch: store the recovery codes above now; they cannot be shown again");
}
