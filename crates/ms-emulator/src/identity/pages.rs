//! HTML for the sign-in, MFA, consent and error pages. Element ids mimic Microsoft's real pages
//! (`i0116`, `i0118`, `idSIButton9`, `idTxtBx_SAOTCC_OTC`, `idBtn_Accept`, …) so browser tests
//! written against the emulator read like tests against login.microsoftonline.com.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:'Segoe UI',Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}\
.box{background:#fff;max-width:440px;margin:60px auto;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}\
.logo{font-weight:600;color:#737373;margin-bottom:16px}h1{font-size:24px;font-weight:600;margin:0 0 12px}\
input[type=email],input[type=text],input[type=password]{width:100%;padding:6px 0;margin:8px 0 16px;border:0;border-bottom:1px solid #666;font-size:15px}\
button{padding:6px 20px;margin:8px 4px 0 0;font-size:15px;border:0;background:#0067b8;color:#fff;cursor:pointer}\
button.secondary{background:#ccc;color:#000}.error{color:#e81123;margin:8px 0}.hint{background:#fff4ce;padding:8px;margin:12px 0}\
.small{font-size:12px;color:#666}ul{padding-left:20px}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head>\
<body><div class=\"box\"><div class=\"logo\">Microsoft (emulator)</div>{body}</div></body></html>",
        esc(title)
    )
}

fn error_div(id: &str, text: Option<&str>) -> String {
    match text {
        Some(t) => format!(
            "<div id=\"{id}\" class=\"error\" role=\"alert\">{}</div>",
            esc(t)
        ),
        None => String::new(),
    }
}

/// Errors shown on the sign-in page.
#[derive(Default)]
pub struct SignInErrors<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

/// The sign-in page: `#i0116` (login), `#i0118` (passwd), `#idSIButton9` (submit).
pub fn sign_in(
    segment: &str,
    ctx: &str,
    login: &str,
    app_name: &str,
    errors: SignInErrors<'_>,
) -> Response {
    let body = format!(
        "<h1>Sign in</h1><p class=\"small\">to continue to {app}</p>\
<form method=\"post\" action=\"/{seg}/login\" id=\"credentials\">\
<input type=\"hidden\" name=\"ctx\" value=\"{ctx}\">{uerr}\
<input id=\"i0116\" name=\"login\" type=\"email\" value=\"{login}\" placeholder=\"Email, phone, or Skype\" autocomplete=\"username\" required>\
{perr}<input id=\"i0118\" name=\"passwd\" type=\"password\" placeholder=\"Password\" autocomplete=\"current-password\">\
<button id=\"idSIButton9\" type=\"submit\">Sign in</button></form>",
        app = esc(app_name),
        seg = esc(segment),
        ctx = esc(ctx),
        login = esc(login),
        uerr = error_div("usernameError", errors.username),
        perr = error_div("passwordError", errors.password),
    );
    Html(layout("Sign in to your account", &body)).into_response()
}

/// "Pick an account" for `prompt=select_account` with an SSO session.
pub fn pick_account(segment: &str, ctx: &str, upn: &str) -> Response {
    let body = format!(
        "<h1>Pick an account</h1><form method=\"post\" action=\"/{seg}/login\">\
<input type=\"hidden\" name=\"ctx\" value=\"{ctx}\">\
<button id=\"emulator-account-tile\" type=\"submit\" name=\"action\" value=\"continue\">{upn}</button>\
<button id=\"otherTile\" class=\"secondary\" type=\"submit\" name=\"action\" value=\"other\">Use another account</button></form>",
        seg = esc(segment),
        ctx = esc(ctx),
        upn = esc(upn),
    );
    Html(layout("Sign in to your account", &body)).into_response()
}

/// The MFA page: hint `#emulator-mfa-hint`, input `#idTxtBx_SAOTCC_OTC`, submit `#idSubmit_SAOTCC_Continue`.
pub fn mfa(segment: &str, ctx: &str, upn: &str, code: &str, error: Option<&str>) -> Response {
    let body = format!(
        "<h1>Enter code</h1><p class=\"small\">{upn}</p>\
<p>Enter the code displayed in the Microsoft Authenticator app on your mobile device.</p>\
<div id=\"emulator-mfa-hint\" class=\"hint\">Emulator demo: the code is <b>{code}</b></div>\
<form method=\"post\" action=\"/{seg}/SAS/ProcessAuth\"><input type=\"hidden\" name=\"ctx\" value=\"{ctx}\">{err}\
<input id=\"idTxtBx_SAOTCC_OTC\" name=\"otc\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" placeholder=\"Code\">\
<button id=\"idSubmit_SAOTCC_Continue\" type=\"submit\" name=\"action\" value=\"verify\">Verify</button></form>",
        upn = esc(upn),
        code = esc(code),
        seg = esc(segment),
        ctx = esc(ctx),
        err = error_div("idSpan_SAOTCC_Error_OTC", error),
    );
    Html(layout("Verify your identity", &body)).into_response()
}

/// "More information required" (MFA not registered): only `#idBtn_Back` proceeds.
pub fn mfa_registration_required(segment: &str, ctx: &str, upn: &str) -> Response {
    let body = format!(
        "<h1>More information required</h1><p class=\"small\">{upn}</p>\
<p>Your organization needs more information to keep your account secure.</p>\
<p class=\"small\">The emulator cannot register security info; go back and register MFA for this user through the control API.</p>\
<form method=\"post\" action=\"/{seg}/SAS/ProcessAuth\"><input type=\"hidden\" name=\"ctx\" value=\"{ctx}\">\
<button id=\"idBtn_Back\" class=\"secondary\" type=\"submit\" name=\"action\" value=\"back\">Back</button>\
<button id=\"idSubmit_ProofUp_Redirect\" type=\"button\" disabled>Next</button></form>",
        upn = esc(upn),
        seg = esc(segment),
        ctx = esc(ctx),
    );
    Html(layout("More information required", &body)).into_response()
}

/// Plain words for a requested scope.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Sign you in".to_owned(),
        "profile" => "View your basic profile".to_owned(),
        "email" => "View your email address".to_owned(),
        "offline_access" => "Maintain access to data you have given it access to".to_owned(),
        s if s
            .to_ascii_lowercase()
            .starts_with(super::tokens::PARTNER_CENTER) =>
        {
            "Access Partner Center as you (Microsoft Partner Center)".to_owned()
        }
        s => {
            let name = s.rsplit('/').next().unwrap_or(s);
            let words = match name {
                "User.Read" => "Sign you in and read your profile",
                "User.Read.All" => "Read all users' full profiles",
                "Directory.Read.All" => "Read directory data",
                "DelegatedAdminRelationship.Read.All" => {
                    "Read Delegated Admin relationships with customers"
                }
                ".default" => "All permissions the app has been configured with",
                other => other,
            };
            format!("{words} (Microsoft Graph)")
        }
    }
}

/// The consent page: permissions listed in `#emulator-permissions`, `#idBtn_Accept`, `#idBtn_Back`.
pub fn consent(segment: &str, ctx: &str, upn: &str, app_name: &str, scopes: &[String]) -> Response {
    let items: String = scopes
        .iter()
        .map(|s| format!("<li title=\"{}\">{}</li>", esc(s), esc(&describe_scope(s))))
        .collect();
    let body = format!(
        "<p class=\"small\">{upn}</p><h1>Permissions requested</h1>\
<p><b id=\"emulator-app-name\">{app}</b> <span class=\"small\">unverified</span></p>\
<p>This app would like to:</p><ul id=\"emulator-permissions\">{items}</ul>\
<p class=\"small\">Accepting these permissions means that you allow this app to use your data as specified in their terms of service and privacy statement.</p>\
<form method=\"post\" action=\"/{seg}/Consent/Set\"><input type=\"hidden\" name=\"ctx\" value=\"{ctx}\">\
<button id=\"idBtn_Back\" class=\"secondary\" type=\"submit\" name=\"decision\" value=\"cancel\">Cancel</button>\
<button id=\"idBtn_Accept\" type=\"submit\" name=\"decision\" value=\"accept\">Accept</button></form>",
        upn = esc(upn),
        app = esc(app_name),
        seg = esc(segment),
        ctx = esc(ctx),
    );
    Html(layout("Permissions requested", &body)).into_response()
}

/// An error page that cannot redirect (bad client or redirect URI): `#emulator-error` holds "AADSTSn: …".
pub fn error(headline: &str, trace_id: &str, correlation_id: &str, timestamp: &str) -> Response {
    let body = format!(
        "<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>\
<div id=\"emulator-error\" class=\"error\">{}</div>\
<p class=\"small\">Request Id: {trace}<br>Correlation Id: {corr}<br>Timestamp: {ts}</p>",
        esc(headline),
        trace = esc(trace_id),
        corr = esc(correlation_id),
        ts = esc(timestamp),
    );
    (
        StatusCode::BAD_REQUEST,
        Html(layout("Sign in to your account", &body)),
    )
        .into_response()
}

/// The auto-submitting form of `response_mode=form_post`.
pub fn form_post(action: &str, fields: &[(&str, String)]) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\" />",
                esc(k),
                esc(v)
            )
        })
        .collect();
    Html(format!(
        "<html><head><title>Working...</title></head><body onload=\"document.forms[0].submit()\">\
<form method=\"POST\" name=\"hiddenform\" action=\"{}\">{inputs}\
<noscript><p>Script is disabled. Click Submit to continue.</p><input type=\"submit\" value=\"Submit\" /></noscript>\
</form></body></html>",
        esc(action)
    ))
    .into_response()
}
