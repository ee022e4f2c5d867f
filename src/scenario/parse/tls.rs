//! `tls` of a model table: `true` (the built-in target serves TLS, the harness trusts it), or
//! `{ ca_file, verify, server_name, resume }`. Allowed with an `https://` or `wss://` url or the built-in
//! target; a `ca_file` must exist when the scenario is read.

use super::{Cx, Section};
use crate::scenario::TlsSettings;

/// The section's `tls` for a target that is built in (`builtin`) or has a TLS url (`secure`).
/// `None`: plaintext.
pub(super) fn tls(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    builtin: bool,
    secure: bool,
) -> Option<TlsSettings> {
    let path = s.child("tls");
    let Some(f) = cx.field(s, "tls") else {
        return secure.then(TlsSettings::default);
    };
    let settings = if let Some(on) = f.item.as_bool() {
        on.then(TlsSettings::default)
    } else if let Some(table) = f.item.as_table_like() {
        let mut t = Section {
            path: path.clone(),
            table,
            known: Vec::new(),
        };
        let mut settings = TlsSettings::default();
        if let Some((file, ff)) = cx.string(&mut t, "ca_file") {
            let file = std::path::PathBuf::from(file);
            if builtin {
                cx.problem(
                    ff.line,
                    &t.child("ca_file"),
                    "the built-in target's certificate is made for the run and trusted \
                     already; ca_file is for external servers",
                );
            } else if !file.is_file() {
                cx.problem(
                    ff.line,
                    &t.child("ca_file"),
                    format!("no such file: {}", file.display()),
                );
            }
            settings.ca_file = Some(file);
        }
        if let Some(v) = cx.boolean(&mut t, "verify") {
            settings.verify = v;
        }
        if let Some((name, nf)) = cx.string(&mut t, "server_name") {
            if rustls::pki_types::ServerName::try_from(name).is_err() {
                cx.problem(
                    nf.line,
                    &t.child("server_name"),
                    format!("\"{name}\" is not a host name or address"),
                );
            }
            settings.server_name = Some(name.to_string());
        }
        if let Some(v) = cx.boolean(&mut t, "resume") {
            settings.resume = v;
        }
        cx.finish(t);
        Some(settings)
    } else {
        cx.type_problem(
            f,
            &path,
            "true, false or a table like { ca_file = \"ca.pem\" }",
        );
        return None;
    };
    match settings {
        Some(_) if !builtin && !secure => {
            cx.problem(
                f.line,
                &path,
                "applies to an https:// or wss:// url or url = \"builtin\"; this url is plaintext",
            );
            None
        }
        None if secure => {
            cx.problem(
                f.line,
                &path,
                "an https:// or wss:// url always speaks TLS; remove tls = false",
            );
            None
        }
        other => other,
    }
}
