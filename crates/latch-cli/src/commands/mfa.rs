//! `latch mfa …`: enrol a second factor (QR code in the terminal), disable it,
//! regenerate recovery codes.

use std::path::Path;

use latch_client::protocol::{FlowForm, Sensitive, SetupFlowState};
use serde_json::json;
use terminal_size::{Height, Width};

use super::Ctx;
use crate::cli::MfaCommand;
use crate::fail::{Failure, Outcome};
use crate::ui;

/// How many times a wrong code may be retyped on a terminal.
const CODE_ATTEMPTS: u32 = 3;

pub(crate) async fn run(ctx: &mut Ctx, cmd: MfaCommand) -> Outcome {
    match cmd {
        MfaCommand::Setup {
            user,
            module,
            qr_png,
        } => setup(ctx, &user, &module, qr_png.as_deref()).await,
        MfaCommand::Disable { user, module } => {
            let user = ctx.resolve_user(&user).await?;
            ctx.client.mfa_disable(&user.id, &module).await?;
            if ctx.json {
                ui::json(&json!({ "user_id": user.id, "module_id": module, "result": "disabled" }));
            } else {
                ui::out(format!("{module} disabled for {}", ui::name(&user)));
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
                    ui::name(&user)
                ));
                print_recovery_codes(&codes);
            }
            Ok(())
        }
    }
}

async fn setup(ctx: &mut Ctx, user: &str, module: &str, qr_png: Option<&Path>) -> Outcome {
    let user = ctx.resolve_user(user).await?;
    let mut state = ctx.client.mfa_setup_start(&user.id, module).await?;
    let mut attempts = 0;
    loop {
        let form = match state {
            SetupFlowState::Form(form) => form,
            SetupFlowState::Abort { reason, .. } => {
                return Err(Failure::Denied(format!(
                    "{module} setup for {} ended: {}",
                    ui::name(&user),
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
                        ui::name(&user)
                    ));
                    print_recovery_codes(&recovery_codes);
                }
                return Ok(());
            }
        };
        if attempts == 0 {
            if let Some(path) = qr_png
                && let Err(e) = write_png(&form, path)
            {
                let _ = ctx.client.mfa_setup_abort(&form.flow_id).await;
                return Err(e);
            }
            show_enrolment(ctx, &form, qr_png);
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

/// The otpauth URI and the secret, then the QR code right above the prompt, so that on
/// a screen of 24 lines the whole code stays visible while the code is typed. With
/// `--json` this goes to stderr, so stdout holds only the JSON result.
fn show_enrolment(ctx: &Ctx, form: &FlowForm, png: Option<&Path>) {
    let say = |line: String| {
        if ctx.json {
            ui::note(line);
        } else {
            ui::out(line);
        }
    };
    if let Some(url) = form.placeholder("url") {
        say(format!("Open this URI on the phone: {}", url.expose()));
    }
    if let Some(secret) = form.placeholder("code") {
        say(format!("or type the secret by hand:  {}", secret.expose()));
    }
    if let Some(path) = png {
        say(format!(
            "or scan the QR code in {} (delete it afterwards: it holds the secret)",
            path.display()
        ));
    }
    let glyphs = form
        .placeholder("qr_terminal")
        .map(Sensitive::expose)
        .unwrap_or_default();
    let Some(painted) = ui::paint_qr(glyphs) else {
        say("(no QR code offered: use the URI or the secret above)".to_owned());
        return;
    };
    // The QR code and the prompt below it must fit the terminal, else the top scrolls
    // away and what is left does not scan.
    let (columns, lines) = ui::text_size(glyphs);
    let screen = if ctx.json {
        terminal_size::terminal_size_of(std::io::stderr())
    } else {
        terminal_size::terminal_size_of(std::io::stdout())
    };
    if let Some((Width(width), Height(height))) = screen
        && (usize::from(width) < columns || usize::from(height) < lines + 1)
    {
        say(format!(
            "The terminal is too small for the QR code: it needs {columns} columns and {} \
             lines, this one has {width}×{height}. Enlarge the window and run the setup again, \
             {}or use the URI or the secret above.",
            lines + 1,
            if png.is_some() {
                ""
            } else {
                "or pass --qr-png FILE to get the QR code as an image, "
            }
        ));
        return;
    }
    say("or scan this QR code with your authenticator app:".to_owned());
    if ctx.json {
        ui::note_raw(&painted);
    } else {
        ui::out_raw(&painted);
    }
}

/// Writes the setup form's QR code (`qr_png`, base64) to a new file, readable by its
/// owner only.
fn write_png(form: &FlowForm, path: &Path) -> Result<(), Failure> {
    use base64::Engine as _;
    let png = form
        .placeholder("qr_png")
        .filter(|p| !p.is_empty())
        .and_then(|p| {
            base64::engine::general_purpose::STANDARD
                .decode(p.expose())
                .ok()
        })
        .ok_or_else(|| Failure::Other("the daemon offered no PNG of the QR code".to_owned()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options
        .open(path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, &png));
    written.map_err(|e| {
        Failure::Usage(format!(
            "cannot write the QR code to {}: {e} (the file must not exist yet)",
            path.display()
        ))
    })
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
