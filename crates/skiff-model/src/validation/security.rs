//! Security-context fields shared by the pod and its containers: seccomp and AppArmor
//! profiles, Windows options (pkg/apis/core/validation/validation.go). A leaf: the pod-level
//! (`podspec`) and container-level (`container`) validation both call it.

use k8s_openapi::api::core::v1::{AppArmorProfile, SeccompProfile, WindowsSecurityContextOptions};

use super::names;
use super::paths::validate_local_descending_path;
use crate::field::{BadValue, ErrorList, FieldError, Path};

/// `validateSeccompProfileField`.
pub fn validate_seccomp_profile_field(sp: Option<&SeccompProfile>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(sp) = sp else { return errs };
    match sp.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(FieldError::required(
            &path.child("type"),
            "type is required when seccompProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    if sp.type_ == "Localhost" {
        match &sp.localhost_profile {
            None => errs.push(FieldError::required(
                &path.child("localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(lp) => errs.extend(validate_local_descending_path(
                lp,
                &path.child("localhostProfile"),
            )),
        }
    } else if sp.localhost_profile.is_some() {
        // Upstream prints the struct with %#v (a pointer address inside); stand-in text.
        errs.push(FieldError::invalid(
            &path.child("localhostProfile"),
            BadValue::Raw(format!(
                "core.SeccompProfile{{Type:{}}}",
                crate::field::go_quote(&sp.type_)
            )),
            "can only be set when seccomp type is Localhost",
        ));
    }
    errs
}

/// `ValidateAppArmorProfileField`.
pub fn validate_app_armor_profile(profile: Option<&AppArmorProfile>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(profile) = profile else { return errs };
    let lp_path = path.child("localhostProfile");
    match profile.type_.as_str() {
        "Localhost" => match &profile.localhost_profile {
            None => errs.push(FieldError::required(
                &lp_path,
                "must be set when AppArmor type is Localhost",
            )),
            Some(lp) => {
                let trimmed = lp.trim();
                if trimmed != lp {
                    errs.push(FieldError::invalid(
                        &lp_path,
                        lp.as_str(),
                        "must not be padded with whitespace",
                    ));
                } else if trimmed.is_empty() {
                    errs.push(FieldError::required(
                        &lp_path,
                        "must be set when AppArmor type is Localhost",
                    ));
                }
                if lp.len() > 4095 {
                    errs.push(FieldError::too_long(&lp_path, 4095));
                }
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(lp) = &profile.localhost_profile {
                errs.push(FieldError::invalid(
                    &lp_path,
                    lp.as_str(),
                    "can only be set when AppArmor type is Localhost",
                ));
            }
        }
        "" => errs.push(FieldError::required(
            &path.child("type"),
            "type is required when appArmorProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    errs
}

/// `validateWindowsSecurityContextOptions`.
pub fn validate_windows_options(
    wo: Option<&WindowsSecurityContextOptions>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(wo) = wo else { return errs };
    if let Some(name) = &wo.gmsa_credential_spec_name {
        for msg in names::is_dns1123_subdomain(name) {
            errs.push(FieldError::invalid(
                &path.child("gmsaCredentialSpecName"),
                name.as_str(),
                msg,
            ));
        }
    }
    if let Some(spec) = &wo.gmsa_credential_spec {
        let p = path.child("gmsaCredentialSpec");
        if spec.is_empty() {
            errs.push(FieldError::invalid(
                &p,
                spec.as_str(),
                "gmsaCredentialSpec cannot be an empty string",
            ));
        } else if spec.len() > 64 * 1024 {
            errs.push(FieldError::invalid(
                &p,
                spec.as_str(),
                "gmsaCredentialSpec size must be under 64 KiB",
            ));
        }
    }
    if let Some(user) = &wo.run_as_user_name {
        let p = path.child("runAsUserName");
        let parts: Vec<&str> = user.split('\\').collect();
        if user.is_empty() {
            errs.push(FieldError::invalid(
                &p,
                user.as_str(),
                "runAsUserName cannot be an empty string",
            ));
        } else if user.chars().any(char::is_control) {
            errs.push(FieldError::invalid(
                &p,
                user.as_str(),
                "runAsUserName cannot contain control characters",
            ));
        } else if parts.len() > 2 {
            errs.push(FieldError::invalid(
                &p,
                user.as_str(),
                "runAsUserName cannot contain more than one backslash",
            ));
        } else {
            let (has_domain, domain, name) = match parts.as_slice() {
                [d, u] => (true, *d, *u),
                [u] => (false, "", *u),
                _ => (false, "", ""),
            };
            if domain.len() >= 256 {
                errs.push(FieldError::invalid(
                    &p,
                    user.as_str(),
                    "runAsUserName's Domain length must be under 256 characters",
                ));
            }
            if has_domain && !(is_netbios_domain(domain) || is_windows_dns_domain(domain)) {
                errs.push(FieldError::invalid(
                    &p,
                    user.as_str(),
                    "runAsUserName's Domain doesn't match the NetBios nor the DNS format",
                ));
            }
            if name.is_empty() {
                errs.push(FieldError::invalid(
                    &p,
                    user.as_str(),
                    "runAsUserName's User cannot be empty",
                ));
            } else if name.len() > 104 {
                errs.push(FieldError::invalid(
                    &p,
                    user.as_str(),
                    "runAsUserName's User length must not be longer than 104 characters",
                ));
            }
            if !name.is_empty() && name.chars().all(|c| c == '.' || c == ' ') {
                errs.push(FieldError::invalid(
                    &p,
                    user.as_str(),
                    "runAsUserName's User cannot contain only periods or spaces",
                ));
            }
            if name.chars().any(|c| "\"/\\:;|=,+*?<>@[]".contains(c)) {
                errs.push(FieldError::invalid(
                    &p,
                    user.as_str(),
                    "runAsUserName's User cannot contain the following characters: \"/\\:;|=,+*?<>@[]",
                ));
            }
        }
    }
    errs
}

fn is_netbios_domain(d: &str) -> bool {
    const BAD: &str = "\\/:*?\"<>|";
    let chars: Vec<char> = d.chars().collect();
    match chars.split_first() {
        Some((first, rest)) => {
            !BAD.contains(*first)
                && *first != '.'
                && rest.len() <= 14
                && rest.iter().all(|c| !BAD.contains(*c))
        }
        None => false,
    }
}

fn is_windows_dns_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}
