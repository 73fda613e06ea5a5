//! The files of configMap, secret, downwardAPI and projected volumes (upstream `MakePayload`
//! in `pkg/volume/configmap/configmap.go` and `pkg/volume/secret/secret.go`, `CollectData` in
//! `pkg/volume/downwardapi/downwardapi.go`, `collectData` in `pkg/volume/projected`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, DownwardAPIVolumeFile, DownwardAPIVolumeSource, KeyToPath,
    ProjectedVolumeSource, Secret, SecretVolumeSource, ServiceAccountTokenProjection,
};

use super::atomic::{clean, FileProjection, Payload};
use super::cluster_identity::TokenRequest;
use super::downward;
use super::SetupCtx;

/// `v1.ConfigMapVolumeSourceDefaultMode` and friends.
const DEFAULT_MODE: i32 = 0o644;

/// A Secret's bytes as the API server stores them: `stringData` merged over `data` (on
/// create, `stringData` wins and is dropped).
pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// A ConfigMap's `data` and `binaryData`.
fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in cm.data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

fn mode_bits(m: i32) -> u32 {
    u32::try_from(m).unwrap_or(0o644) & 0o7777
}

/// `MakePayload`: every key (no items) or the listed items; a missing key is an error unless
/// `optional`.
fn make_payload(
    items: Option<&[KeyToPath]>,
    data: &BTreeMap<String, Vec<u8>>,
    default_mode: i32,
    optional: bool,
    missing_key: impl Fn(&str) -> String,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(
                    clean(k),
                    FileProjection {
                        data: v.clone(),
                        mode: mode_bits(default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for ktp in items {
                let Some(v) = data.get(&ktp.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(&ktp.key));
                };
                out.insert(
                    clean(&ktp.path),
                    FileProjection {
                        data: v.clone(),
                        mode: mode_bits(ktp.mode.unwrap_or(default_mode)),
                    },
                );
            }
        }
    }
    Ok(out)
}

fn config_map_payload(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: i32,
    ctx: &SetupCtx<'_>,
) -> Result<Payload, String> {
    let data = match ctx.objects.config_maps.get(name) {
        Some(cm) => config_map_data(cm),
        None if optional => BTreeMap::new(),
        None => return Err(format!("configmap {name:?} not found")),
    };
    make_payload(items, &data, default_mode, optional, |k| {
        format!("configmap references non-existent config key: {k}")
    })
}

fn secret_payload(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: i32,
    ctx: &SetupCtx<'_>,
) -> Result<Payload, String> {
    let data = match ctx.objects.secrets.get(name) {
        Some(s) => secret_data(s),
        None if optional => BTreeMap::new(),
        None => return Err(format!("secret {name:?} not found")),
    };
    make_payload(items, &data, default_mode, optional, |k| {
        format!("references non-existent secret key: {k}")
    })
}

pub(super) fn config_map_volume(
    s: &ConfigMapVolumeSource,
    ctx: &SetupCtx<'_>,
) -> Result<Payload, String> {
    config_map_payload(
        &s.name,
        s.items.as_deref(),
        s.optional.unwrap_or(false),
        s.default_mode.unwrap_or(DEFAULT_MODE),
        ctx,
    )
}

pub(super) fn secret_volume(s: &SecretVolumeSource, ctx: &SetupCtx<'_>) -> Result<Payload, String> {
    secret_payload(
        s.secret_name.as_deref().unwrap_or(""),
        s.items.as_deref(),
        s.optional.unwrap_or(false),
        s.default_mode.unwrap_or(DEFAULT_MODE),
        ctx,
    )
}

/// `downwardapi.CollectData`: every item is tried; the errors are aggregated.
fn collect_downward(
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    ctx: &SetupCtx<'_>,
    errs: &mut Vec<String>,
) -> Payload {
    let mut out = Payload::new();
    for item in items {
        let data = if let Some(f) = &item.field_ref {
            downward::pod_metadata_field(ctx.pod, &f.field_path)
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or("");
            match downward::find_container(ctx.pod, name) {
                Some(c) => downward::container_resource_value(r, c, ctx.node),
                None => Err(format!("container {name} not found")),
            }
        } else {
            Ok(String::new())
        };
        match data {
            Ok(d) => {
                out.insert(
                    clean(&item.path),
                    FileProjection {
                        data: d.into_bytes(),
                        mode: mode_bits(item.mode.unwrap_or(default_mode)),
                    },
                );
            }
            Err(e) => errs.push(e),
        }
    }
    out
}

/// `utilerrors.NewAggregate(errs).Error()`.
fn aggregate(errs: Vec<String>) -> Result<(), String> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

pub(super) fn downward_api_volume(
    s: &DownwardAPIVolumeSource,
    ctx: &SetupCtx<'_>,
) -> Result<Payload, String> {
    let mut errs = Vec::new();
    let out = collect_downward(
        s.items.as_deref().unwrap_or_default(),
        s.default_mode.unwrap_or(DEFAULT_MODE),
        ctx,
        &mut errs,
    );
    aggregate(errs)?;
    Ok(out)
}

/// The projected payload (`collectData` of pkg/volume/projected).
pub(super) fn projected_volume(
    p: &ProjectedVolumeSource,
    ctx: &SetupCtx<'_>,
) -> Result<Payload, String> {
    let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
    let mut out = Payload::new();
    let mut errs = Vec::new();
    for src in p.sources.iter().flatten() {
        let part = if let Some(cm) = &src.config_map {
            config_map_payload(
                &cm.name,
                cm.items.as_deref(),
                cm.optional.unwrap_or(false),
                mode,
                ctx,
            )
        } else if let Some(s) = &src.secret {
            secret_payload(
                &s.name,
                s.items.as_deref(),
                s.optional.unwrap_or(false),
                mode,
                ctx,
            )
        } else if let Some(d) = &src.downward_api {
            Ok(collect_downward(
                d.items.as_deref().unwrap_or_default(),
                mode,
                ctx,
                &mut errs,
            ))
        } else if let Some(t) = &src.service_account_token {
            service_account_token(t, mode, ctx)
        } else {
            Ok(Payload::new())
        };
        match part {
            Ok(part) => out.extend(part),
            Err(e) => errs.push(e),
        }
    }
    aggregate(errs)?;
    Ok(out)
}

/// The token file of a projection, issued by skiff's signer for the pod's service account
/// (`cluster_identity`). Mode: the projection's defaultMode, but 0600 when the pod has an
/// fsGroup (the kubelet then relies on the ownership change to open it to the group).
fn service_account_token(
    t: &ServiceAccountTokenProjection,
    mode: i32,
    ctx: &SetupCtx<'_>,
) -> Result<Payload, String> {
    let Some(id) = ctx.objects.cluster.as_ref() else {
        return Err(
            "failed to fetch token: skiff's token signer is unavailable (see the warning above)"
                .to_string(),
        );
    };
    let spec = ctx.pod.spec.as_ref();
    let sa = spec
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let node = spec
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim_end().to_string())
                .unwrap_or_default()
        });
    let fs_group = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
        .is_some();
    let token = id.token(&TokenRequest {
        namespace: ctx.pod.metadata.namespace.as_deref().unwrap_or("default"),
        service_account: sa,
        audience: t.audience.as_deref().unwrap_or(""),
        // Defaulted to 3600 and validated to at least 600 before the pod got here.
        expiration_seconds: t.expiration_seconds.unwrap_or(3600),
        pod_name: ctx.pod.metadata.name.as_deref().unwrap_or(""),
        pod_uid: ctx.pod.metadata.uid.as_deref().unwrap_or(""),
        node_name: &node,
        now: std::time::SystemTime::now(),
    })?;
    let mut out = Payload::new();
    out.insert(
        clean(&t.path),
        FileProjection {
            data: token.into_bytes(),
            mode: if fs_group { 0o600 } else { mode_bits(mode) },
        },
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn ktp(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
            user: None,
        }
    }

    #[test]
    fn config_map_items_modes_and_missing_keys() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        let all = make_payload(None, &data, 0o600, false, |k| k.to_string()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["a"].mode, 0o600);
        let items = [ktp("a", "x/y", Some(0o400)), ktp("b", "b", None)];
        let p = make_payload(Some(&items), &data, 0o644, false, |k| k.to_string()).unwrap();
        assert_eq!(p["x/y"].mode, 0o400);
        assert_eq!(p["b"].mode, 0o644);
        let items = [ktp("nope", "n", None)];
        assert_eq!(
            make_payload(Some(&items), &data, 0o644, false, |k| format!(
                "configmap references non-existent config key: {k}"
            ))
            .unwrap_err(),
            "configmap references non-existent config key: nope"
        );
        assert!(
            make_payload(Some(&items), &data, 0o644, true, |k| k.to_string())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn secret_string_data_is_merged_over_data() {
        let s = Secret {
            data: Some(
                [
                    ("a".to_string(), ByteString(b"from-data".to_vec())),
                    ("b".to_string(), ByteString(vec![0, 1, 2])),
                ]
                .into(),
            ),
            string_data: Some([("a".to_string(), "from-string".to_string())].into()),
            ..Default::default()
        };
        let d = secret_data(&s);
        assert_eq!(d["a"], b"from-string");
        assert_eq!(d["b"], vec![0, 1, 2]);
    }

    #[test]
    fn aggregate_errors_like_go() {
        assert_eq!(aggregate(vec![]), Ok(()));
        assert_eq!(aggregate(vec!["a".into()]), Err("a".into()));
        assert_eq!(
            aggregate(vec!["a".into(), "b".into()]),
            Err("[a, b]".into())
        );
    }
}
