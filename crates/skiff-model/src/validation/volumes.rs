//! `ValidateVolumes` and `validateVolumeSource` with the per-source checks
//! (pkg/apis/core/validation/validation.go, read at 1.33; no 1.34–1.37 change of the volume
//! sources skiff validates is known, see `crate::gates`). Path quirks of upstream are kept:
//! `gcePersistentDisk` is validated under `persistentDisk`, `cephfs` under `cephfs` but
//! reported as `cephFS` when it is a second source, and the typo `downwarAPI`.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, ProjectedVolumeSource, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::container::{
    validate_object_field_selector, validate_pull_policy, validate_resource_field_selector,
    VolumeMap, VOLUME_FIELD_PATHS,
};
use super::names::{self, go_string_slice};
use super::paths::{
    validate_local_descending_path, validate_local_non_reserved_path, validate_path_no_backsteps,
};
use super::{opt, validate_dns1123_label};
use crate::field::{BadValue, ErrorList, FieldError, Path};
use crate::quantity::Quantity;

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const MORE_THAN_ONE: &str = "may not specify more than 1 volume type";

/// `ValidateVolumes`: returns the volumes that validated cleanly and the errors.
pub fn validate_volumes<'a>(
    volumes: &'a [Volume],
    meta: &ObjectMeta,
    path: &Path,
) -> (VolumeMap<'a>, ErrorList) {
    let mut errs = ErrorList::new();
    let mut all_names: HashSet<&str> = HashSet::new();
    let mut vols = VolumeMap::new();
    let pod_name = opt(&meta.name);
    let created_pvcs: HashSet<String> = if pod_name.is_empty() {
        HashSet::new()
    } else {
        volumes
            .iter()
            .filter(|v| v.ephemeral.is_some())
            .map(|v| format!("{pod_name}-{}", v.name))
            .collect()
    };
    for (i, vol) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        let mut el = validate_volume_source(vol, &p, pod_name);
        if vol.name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            el.extend(validate_dns1123_label(&vol.name, &name_path));
        }
        if all_names.contains(vol.name.as_str()) {
            el.push(FieldError::duplicate(&name_path, vol.name.as_str()));
        }
        if el.is_empty() {
            all_names.insert(vol.name.as_str());
            vols.insert(vol.name.as_str(), vol);
        } else {
            errs.extend(el);
        }
        if let Some(pvc) = &vol.persistent_volume_claim {
            if created_pvcs.contains(&pvc.claim_name) {
                errs.push(FieldError::invalid(
                    &p.child("persistentVolumeClaim").child("claimName"),
                    pvc.claim_name.as_str(),
                    "must not reference a PVC that gets created for an ephemeral volume",
                ));
            }
        }
    }
    (vols, errs)
}

fn mode_errs(mode: Option<i32>, path: &Path) -> ErrorList {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![FieldError::invalid(path, m, FILE_MODE_MSG)],
        _ => Vec::new(),
    }
}

fn required_if_empty(value: &str, path: &Path) -> ErrorList {
    if value.is_empty() {
        vec![FieldError::required(path, "")]
    } else {
        Vec::new()
    }
}

/// Counts the sources of one volume: the first present one is validated, each further one
/// is `Forbidden` (`validateVolumeSource`).
struct OneSource<'a> {
    count: usize,
    path: &'a Path,
}

impl OneSource<'_> {
    fn check<T>(
        &mut self,
        source: Option<&T>,
        field: &str,
        errs: &mut ErrorList,
        validate: impl FnOnce(&T) -> ErrorList,
    ) {
        let Some(source) = source else { return };
        if self.count > 0 {
            errs.push(FieldError::forbidden(
                &self.path.child(field),
                MORE_THAN_ONE,
            ));
        } else {
            self.count += 1;
            errs.extend(validate(source));
        }
    }
}

/// `validateVolumeSource`: exactly one source; each extra one is Forbidden.
fn validate_volume_source(v: &Volume, path: &Path, pod_name: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut count = 0;
    if let Some(ed) = &v.empty_dir {
        count += 1;
        if let Some(limit) = &ed.size_limit {
            if Quantity::parse(&limit.0).map_or(true, |q| q.is_negative()) {
                errs.push(FieldError::forbidden(
                    &path.child("emptyDir").child("sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
    }
    let mut sources = OneSource { count, path };

    sources.check(v.host_path.as_ref(), "hostPath", &mut errs, |hp| {
        let p = path.child("hostPath");
        if hp.path.is_empty() {
            return vec![FieldError::required(&p.child("path"), "")];
        }
        let mut e = validate_path_no_backsteps(&hp.path, &p.child("path"));
        if let Some(t) = &hp.type_ {
            const TYPES: &[&str] = &[
                "",
                "BlockDevice",
                "CharDevice",
                "Directory",
                "DirectoryOrCreate",
                "File",
                "FileOrCreate",
                "Socket",
            ];
            if !TYPES.contains(&t.as_str()) {
                e.push(FieldError::not_supported(
                    &p.child("type"),
                    t.as_str(),
                    TYPES,
                ));
            }
        }
        e
    });
    sources.check(v.git_repo.as_ref(), "gitRepo", &mut errs, |g| {
        let p = path.child("gitRepo");
        let mut e = required_if_empty(&g.repository, &p.child("repository"));
        e.extend(validate_local_descending_path(
            opt(&g.directory),
            &p.child("directory"),
        ));
        e
    });
    sources.check(
        v.gce_persistent_disk.as_ref(),
        "gcePersistentDisk",
        &mut errs,
        |pd| {
            let p = path.child("persistentDisk");
            let mut e = required_if_empty(&pd.pd_name, &p.child("pdName"));
            let part = pd.partition.unwrap_or(0);
            if !(0..=255).contains(&part) {
                e.push(FieldError::invalid(
                    &p.child("partition"),
                    part,
                    names::inclusive_range_error(1, 255),
                ));
            }
            e
        },
    );
    sources.check(
        v.aws_elastic_block_store.as_ref(),
        "awsElasticBlockStore",
        &mut errs,
        |pd| {
            let p = path.child("awsElasticBlockStore");
            let mut e = required_if_empty(&pd.volume_id, &p.child("volumeID"));
            let part = pd.partition.unwrap_or(0);
            if !(0..=255).contains(&part) {
                e.push(FieldError::invalid(
                    &p.child("partition"),
                    part,
                    names::inclusive_range_error(1, 255),
                ));
            }
            e
        },
    );
    sources.check(v.secret.as_ref(), "secret", &mut errs, |s| {
        let p = path.child("secret");
        let mut e = required_if_empty(opt(&s.secret_name), &p.child("secretName"));
        e.extend(mode_errs(s.default_mode, &p.child("defaultMode")));
        e.extend(key_to_paths(
            s.items.as_deref().unwrap_or_default(),
            &p.child("items"),
        ));
        e
    });
    sources.check(v.nfs.as_ref(), "nfs", &mut errs, |n| {
        let p = path.child("nfs");
        let mut e = required_if_empty(&n.server, &p.child("server"));
        e.extend(required_if_empty(&n.path, &p.child("path")));
        if !n.path.starts_with('/') {
            e.push(FieldError::invalid(
                &p.child("path"),
                n.path.as_str(),
                "must be an absolute path",
            ));
        }
        e
    });
    sources.check(v.iscsi.as_ref(), "iscsi", &mut errs, |is| {
        let p = path.child("iscsi");
        let mut e = required_if_empty(&is.target_portal, &p.child("targetPortal"));
        if is.iqn.is_empty() {
            e.push(FieldError::required(&p.child("iqn"), ""));
        } else {
            e.extend(iqn_errors(
                &is.iqn,
                &p.child("iqn"),
                "must be valid format starting with iqn, eui, or naa",
            ));
        }
        if !(0..=255).contains(&is.lun) {
            e.push(FieldError::invalid(
                &p.child("lun"),
                is.lun,
                names::inclusive_range_error(0, 255),
            ));
        }
        if (is.chap_auth_discovery == Some(true) || is.chap_auth_session == Some(true))
            && is.secret_ref.is_none()
        {
            e.push(FieldError::required(&p.child("secretRef"), ""));
        }
        if let Some(init) = &is.initiator_name {
            let ip = p.child("initiatorname");
            if !has_iqn_prefix(init) {
                e.push(FieldError::invalid(
                    &ip,
                    init.as_str(),
                    "must be valid format starting with iqn, eui, or naa",
                ));
            }
            e.extend(iqn_format_errors(init, &ip));
        }
        e
    });
    if let Some(is) = &v.iscsi {
        if is.initiator_name.is_some() && v.name.len() + 1 + is.target_portal.len() > 64 {
            errs.push(FieldError::invalid(
                &path.child("name"),
                v.name.as_str(),
                "Total length of <volume name>:<iscsi.targetPortal> must be under 64 characters if iscsi.initiatorName is specified.",
            ));
        }
    }
    sources.check(v.glusterfs.as_ref(), "glusterfs", &mut errs, |g| {
        let p = path.child("glusterfs");
        let mut e = required_if_empty(&g.endpoints, &p.child("endpoints"));
        e.extend(required_if_empty(&g.path, &p.child("path")));
        e
    });
    sources.check(v.flocker.as_ref(), "flocker", &mut errs, |f| {
        let p = path.child("flocker");
        let (name, uuid) = (opt(&f.dataset_name), opt(&f.dataset_uuid));
        let mut e = ErrorList::new();
        if name.is_empty() && uuid.is_empty() {
            e.push(FieldError::required(
                &p,
                "one of datasetName and datasetUUID is required",
            ));
        }
        if !name.is_empty() && !uuid.is_empty() {
            e.push(FieldError::invalid(
                &p,
                "resource",
                "datasetName and datasetUUID can not be specified simultaneously",
            ));
        }
        if name.contains('/') {
            e.push(FieldError::invalid(
                &p.child("datasetName"),
                name,
                "must not contain '/'",
            ));
        }
        e
    });
    sources.check(
        v.persistent_volume_claim.as_ref(),
        "persistentVolumeClaim",
        &mut errs,
        |c| {
            required_if_empty(
                &c.claim_name,
                &path.child("persistentVolumeClaim").child("claimName"),
            )
        },
    );
    sources.check(v.rbd.as_ref(), "rbd", &mut errs, |r| {
        let p = path.child("rbd");
        let mut e = ErrorList::new();
        if r.monitors.is_empty() {
            e.push(FieldError::required(&p.child("monitors"), ""));
        }
        e.extend(required_if_empty(&r.image, &p.child("image")));
        e
    });
    sources.check(v.cinder.as_ref(), "cinder", &mut errs, |c| {
        let p = path.child("cinder");
        let mut e = required_if_empty(&c.volume_id, &p.child("volumeID"));
        if let Some(s) = &c.secret_ref {
            e.extend(required_if_empty(
                &s.name,
                &p.child("secretRef").child("name"),
            ));
        }
        e
    });
    sources.check(v.cephfs.as_ref(), "cephFS", &mut errs, |c| {
        if c.monitors.is_empty() {
            vec![FieldError::required(
                &path.child("cephfs").child("monitors"),
                "",
            )]
        } else {
            Vec::new()
        }
    });
    sources.check(v.quobyte.as_ref(), "quobyte", &mut errs, |q| {
        let p = path.child("quobyte");
        let mut e = ErrorList::new();
        const REGISTRY_MSG: &str = "must be a host:port pair or multiple pairs separated by commas";
        if q.registry.is_empty() {
            e.push(FieldError::required(&p.child("registry"), REGISTRY_MSG));
        } else if opt(&q.tenant).len() >= 65 {
            e.push(FieldError::required(
                &p.child("tenant"),
                "must be a UUID and may not exceed a length of 64 characters",
            ));
        } else {
            for pair in q.registry.split(',') {
                if !is_host_port(pair) {
                    e.push(FieldError::invalid(
                        &p.child("registry"),
                        q.registry.as_str(),
                        REGISTRY_MSG,
                    ));
                }
            }
        }
        e.extend(required_if_empty(&q.volume, &p.child("volume")));
        e
    });
    sources.check(v.downward_api.as_ref(), "downwarAPI", &mut errs, |d| {
        let p = path.child("downwardAPI");
        let mut e = mode_errs(d.default_mode, &p.child("defaultMode"));
        for file in d.items.iter().flatten() {
            e.extend(downward_api_file(file, &p));
        }
        e
    });
    sources.check(v.fc.as_ref(), "fc", &mut errs, |fc| {
        let p = path.child("fc");
        let wwns = fc.target_wwns.as_deref().unwrap_or_default();
        let wwids = fc.wwids.as_deref().unwrap_or_default();
        let mut e = ErrorList::new();
        if wwns.is_empty() && wwids.is_empty() {
            e.push(FieldError::required(
                &p.child("targetWWNs"),
                "must specify either targetWWNs or wwids, but not both",
            ));
        }
        if !wwns.is_empty() && !wwids.is_empty() {
            e.push(FieldError::invalid(
                &p.child("targetWWNs"),
                BadValue::Raw(go_string_slice(wwns)),
                "targetWWNs and wwids can not be specified simultaneously",
            ));
        }
        if !wwns.is_empty() {
            match fc.lun {
                None => e.push(FieldError::required(
                    &p.child("lun"),
                    "lun is required if targetWWNs is specified",
                )),
                Some(l) if !(0..=255).contains(&l) => e.push(FieldError::invalid(
                    &p.child("lun"),
                    l,
                    names::inclusive_range_error(0, 255),
                )),
                _ => {}
            }
        }
        e
    });
    sources.check(v.flex_volume.as_ref(), "flexVolume", &mut errs, |f| {
        let p = path.child("flexVolume");
        let mut e = required_if_empty(&f.driver, &p.child("driver"));
        for k in f.options.iter().flat_map(|o| o.keys()) {
            let ns = k.split_once('/').map_or(k.as_str(), |(head, _)| head);
            let normalized = format!(".{}", ns.to_lowercase());
            if normalized.ends_with(".kubernetes.io") || normalized.ends_with(".k8s.io") {
                e.push(FieldError::invalid(
                    &p.child("options").key(k),
                    k.as_str(),
                    "kubernetes.io and k8s.io namespaces are reserved",
                ));
            }
        }
        e
    });
    sources.check(v.config_map.as_ref(), "configMap", &mut errs, |c| {
        let p = path.child("configMap");
        let mut e = required_if_empty(&c.name, &p.child("name"));
        e.extend(mode_errs(c.default_mode, &p.child("defaultMode")));
        e.extend(key_to_paths(
            c.items.as_deref().unwrap_or_default(),
            &p.child("items"),
        ));
        e
    });
    sources.check(v.azure_file.as_ref(), "azureFile", &mut errs, |a| {
        let p = path.child("azureFile");
        let mut e = required_if_empty(&a.secret_name, &p.child("secretName"));
        e.extend(required_if_empty(&a.share_name, &p.child("shareName")));
        e
    });
    sources.check(v.vsphere_volume.as_ref(), "vsphereVolume", &mut errs, |s| {
        required_if_empty(
            &s.volume_path,
            &path.child("vsphereVolume").child("volumePath"),
        )
    });
    sources.check(
        v.photon_persistent_disk.as_ref(),
        "photonPersistentDisk",
        &mut errs,
        |s| required_if_empty(&s.pd_id, &path.child("photonPersistentDisk").child("pdID")),
    );
    sources.check(
        v.portworx_volume.as_ref(),
        "portworxVolume",
        &mut errs,
        |s| {
            required_if_empty(
                &s.volume_id,
                &path.child("portworxVolume").child("volumeID"),
            )
        },
    );
    sources.check(v.azure_disk.as_ref(), "azureDisk", &mut errs, |a| {
        let p = path.child("azureDisk");
        let mut e = required_if_empty(&a.disk_name, &p.child("diskName"));
        e.extend(required_if_empty(&a.disk_uri, &p.child("diskURI")));
        if let Some(mode) = &a.caching_mode {
            if !["None", "ReadOnly", "ReadWrite"].contains(&mode.as_str()) {
                e.push(FieldError::not_supported(
                    &p.child("cachingMode"),
                    mode.as_str(),
                    &["None", "ReadOnly", "ReadWrite"],
                ));
            }
        }
        if let Some(kind) = &a.kind {
            if !["Dedicated", "Managed", "Shared"].contains(&kind.as_str()) {
                e.push(FieldError::not_supported(
                    &p.child("kind"),
                    kind.as_str(),
                    &["Dedicated", "Managed", "Shared"],
                ));
            }
            if kind == "Managed" && !a.disk_uri.starts_with("/subscriptions/") {
                e.push(FieldError::not_supported(
                    &p.child("diskURI"),
                    a.disk_uri.as_str(),
                    &["/subscriptions/{sub-id}/resourcegroups/{group-name}/providers/microsoft.compute/disks/{disk-id}"],
                ));
            }
            if kind != "Managed" && !a.disk_uri.starts_with("https://") {
                e.push(FieldError::not_supported(
                    &p.child("diskURI"),
                    a.disk_uri.as_str(),
                    &["https://{account-name}.blob.core.windows.net/{container-name}/{disk-name}.vhd"],
                ));
            }
        }
        e
    });
    sources.check(v.storageos.as_ref(), "storageos", &mut errs, |s| {
        let p = path.child("storageos");
        let mut e = ErrorList::new();
        let vn = opt(&s.volume_name);
        if vn.is_empty() {
            e.push(FieldError::required(&p.child("volumeName"), ""));
        } else {
            e.extend(validate_dns1123_label(vn, &p.child("volumeName")));
        }
        let vns = opt(&s.volume_namespace);
        if !vns.is_empty() {
            e.extend(validate_dns1123_label(vns, &p.child("volumeNamespace")));
        }
        if let Some(r) = &s.secret_ref {
            e.extend(required_if_empty(
                &r.name,
                &p.child("secretRef").child("name"),
            ));
        }
        e
    });
    sources.check(v.projected.as_ref(), "projected", &mut errs, |pr| {
        projected(pr, &path.child("projected"))
    });
    sources.check(v.scale_io.as_ref(), "scaleIO", &mut errs, |s| {
        let p = path.child("scaleIO");
        let mut e = required_if_empty(&s.gateway, &p.child("gateway"));
        e.extend(required_if_empty(&s.system, &p.child("system")));
        e.extend(required_if_empty(
            opt(&s.volume_name),
            &p.child("volumeName"),
        ));
        e
    });
    sources.check(v.csi.as_ref(), "csi", &mut errs, |c| {
        let p = path.child("csi");
        let dp = p.child("driver");
        let mut e = ErrorList::new();
        if c.driver.is_empty() {
            e.push(FieldError::required(&dp, ""));
        }
        if c.driver.len() > 63 {
            e.push(FieldError::too_long(&dp, 63));
        }
        for msg in names::is_dns1123_subdomain(&c.driver.to_lowercase()) {
            e.push(FieldError::invalid(&dp, c.driver.as_str(), msg));
        }
        if let Some(r) = &c.node_publish_secret_ref {
            if r.name.is_empty() {
                e.push(FieldError::required(
                    &p.child("nodePublishSecretRef").child("name"),
                    "",
                ));
            } else {
                for msg in names::name_is_dns_subdomain(&r.name, false) {
                    e.push(FieldError::invalid(&p.child("name"), r.name.as_str(), msg));
                }
            }
        }
        e
    });
    sources.check(v.ephemeral.as_ref(), "ephemeral", &mut errs, |eph| {
        let p = path.child("ephemeral");
        let mut e = ErrorList::new();
        // Only the presence of the template is checked; the embedded PVC spec is not.
        if eph.volume_claim_template.is_none() {
            e.push(FieldError::required(&p.child("volumeClaimTemplate"), ""));
        }
        if !pod_name.is_empty() && !v.name.is_empty() {
            let pvc = format!("{pod_name}-{}", v.name);
            for msg in names::name_is_dns_subdomain(&pvc, false) {
                e.push(FieldError::invalid(
                    &path.child("name"),
                    v.name.as_str(),
                    format!("PVC name {}: {msg}", crate::field::go_quote(&pvc)),
                ));
            }
        }
        e
    });
    sources.check(v.image.as_ref(), "image", &mut errs, |img| {
        let p = path.child("image");
        let mut e = required_if_empty(opt(&img.reference), &p.child("reference"));
        e.extend(validate_pull_policy(
            opt(&img.pull_policy),
            &p.child("pullPolicy"),
        ));
        e
    });
    if sources.count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    errs
}

/// `validateKeyToPath` over a list.
fn key_to_paths(items: &[KeyToPath], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, kp) in items.iter().enumerate() {
        errs.extend(key_to_path(kp, &path.index(i)));
    }
    errs
}

/// `validateKeyToPath`.
fn key_to_path(kp: &KeyToPath, path: &Path) -> ErrorList {
    let mut errs = required_if_empty(&kp.key, &path.child("key"));
    errs.extend(required_if_empty(&kp.path, &path.child("path")));
    errs.extend(validate_local_non_reserved_path(
        &kp.path,
        &path.child("path"),
    ));
    errs.extend(mode_errs(kp.mode, &path.child("mode")));
    errs
}

/// `validateDownwardAPIVolumeFile`; `path` is the volume's (or projection's) path: upstream
/// does not index the item.
fn downward_api_file(file: &DownwardAPIVolumeFile, path: &Path) -> ErrorList {
    let mut errs = required_if_empty(&file.path, &path.child("path"));
    errs.extend(validate_local_non_reserved_path(
        &file.path,
        &path.child("path"),
    ));
    if let Some(fr) = &file.field_ref {
        errs.extend(validate_object_field_selector(
            fr,
            VOLUME_FIELD_PATHS,
            &path.child("fieldRef"),
        ));
        if file.resource_field_ref.is_some() {
            errs.push(FieldError::invalid(
                path,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if let Some(rf) = &file.resource_field_ref {
        errs.extend(validate_resource_field_selector(
            rf,
            &path.child("resourceFieldRef"),
            true,
        ));
    } else {
        errs.push(FieldError::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    errs.extend(mode_errs(file.mode, &path.child("mode")));
    errs
}

/// `validateProjectedVolumeSource` / `validateProjectionSources`.
fn projected(pr: &ProjectedVolumeSource, path: &Path) -> ErrorList {
    let mut errs = mode_errs(pr.default_mode, &path.child("defaultMode"));
    let mut all_paths: HashSet<String> = HashSet::new();
    for (i, source) in pr.sources.iter().flatten().enumerate() {
        let mut n = 0;
        let sp = path.child("sources").index(i);
        for (kind, name, items) in [
            (
                "secret",
                source
                    .secret
                    .as_ref()
                    .map(|s| (s.name.as_str(), s.items.as_deref())),
            ),
            (
                "configMap",
                source
                    .config_map
                    .as_ref()
                    .map(|s| (s.name.as_str(), s.items.as_deref())),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|(n, it)| (k, n, it.unwrap_or_default())))
        {
            n += 1;
            let pp = sp.child(kind);
            errs.extend(required_if_empty(name, &pp.child("name")));
            for (j, kp) in items.iter().enumerate() {
                errs.extend(key_to_path(kp, &pp.child("items").index(j)));
                if !kp.path.is_empty() && !all_paths.insert(kp.path.clone()) {
                    errs.push(FieldError::invalid(
                        path,
                        name,
                        "conflicting duplicate paths",
                    ));
                }
            }
        }
        if let Some(d) = &source.downward_api {
            n += 1;
            let pp = sp.child("downwardAPI");
            for file in d.items.iter().flatten() {
                errs.extend(downward_api_file(file, &pp));
                if !file.path.is_empty() && !all_paths.insert(file.path.clone()) {
                    errs.push(FieldError::invalid(
                        path,
                        file.path.as_str(),
                        "conflicting duplicate paths",
                    ));
                }
            }
        }
        if let Some(t) = &source.service_account_token {
            n += 1;
            let pp = sp.child("serviceAccountToken");
            let exp = t.expiration_seconds.unwrap_or(0);
            if exp < 600 {
                errs.push(FieldError::invalid(
                    &pp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                errs.push(FieldError::invalid(
                    &pp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            if t.path.is_empty() {
                errs.push(FieldError::required(&path.child("path"), ""));
            } else {
                errs.extend(validate_local_non_reserved_path(
                    &t.path,
                    &path.child("path"),
                ));
            }
        }
        if let Some(ctb) = &source.cluster_trust_bundle {
            n += 1;
            let pp = sp.child("clusterTrustBundle");
            match (&ctb.name, &ctb.signer_name) {
                (Some(_), Some(_)) => errs.push(FieldError::invalid(
                    &pp,
                    BadValue::Raw("core.ClusterTrustBundleProjection{...}".to_string()),
                    "only one of name and signerName may be used",
                )),
                (Some(name), None) => {
                    if name.is_empty() {
                        errs.push(FieldError::required(
                            &pp.child("name"),
                            "must be a valid object name",
                        ));
                    }
                    if ctb.label_selector.is_some() {
                        errs.push(FieldError::invalid(
                            &pp.child("labelSelector"),
                            BadValue::Raw("v1.LabelSelector{...}".to_string()),
                            "labelSelector must be unset if name is specified",
                        ));
                    }
                }
                (None, Some(signer)) => {
                    if signer.is_empty() {
                        errs.push(FieldError::required(
                            &pp.child("signerName"),
                            "must be a valid signer name",
                        ));
                    }
                    errs.extend(super::podspec::validate_label_selector(
                        ctb.label_selector.as_ref(),
                        &pp.child("labelSelector"),
                    ));
                }
                (None, None) => errs.push(FieldError::required(
                    &pp,
                    "either name or signerName must be specified",
                )),
            }
            errs.extend(required_if_empty(&ctb.path, &pp.child("path")));
            errs.extend(validate_local_non_reserved_path(
                &ctb.path,
                &pp.child("path"),
            ));
            if !all_paths.insert(ctb.path.clone()) {
                errs.push(FieldError::invalid(
                    path,
                    ctb.path.as_str(),
                    "conflicting duplicate paths",
                ));
            }
        }
        if n > 1 {
            errs.push(FieldError::forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
    errs
}

fn has_iqn_prefix(s: &str) -> bool {
    s.starts_with("iqn") || s.starts_with("eui") || s.starts_with("naa")
}

/// The iSCSI IQN checks of `validateISCSIVolumeSource`.
fn iqn_errors(iqn: &str, path: &Path, prefix_msg: &str) -> ErrorList {
    if !has_iqn_prefix(iqn) {
        return vec![FieldError::invalid(path, iqn, prefix_msg)];
    }
    iqn_format_errors(iqn, path)
}

fn iqn_format_errors(s: &str, path: &Path) -> ErrorList {
    let ok = if s.starts_with("iqn") {
        matches_iqn(s)
    } else if let Some(rest) = s.strip_prefix("eui") {
        matches_any_then_alnum(rest, 16)
    } else if let Some(rest) = s.strip_prefix("naa") {
        matches_any_then_alnum(rest, 32)
    } else {
        true
    };
    if ok {
        Vec::new()
    } else {
        vec![FieldError::invalid(path, s, "must be valid format")]
    }
}

/// `^eui.[[:alnum:]]{16}$`: one arbitrary character, then exactly n alphanumerics.
fn matches_any_then_alnum(rest: &str, n: usize) -> bool {
    let mut chars = rest.chars();
    chars.next().is_some() && {
        let tail: Vec<char> = chars.collect();
        tail.len() == n && tail.iter().all(|c| c.is_ascii_alphanumeric())
    }
}

/// `iqn\.\d{4}-\d{2}\.([[:alnum:]-.]+)(:[^,;*&$|\s]+)$`, unanchored at the start.
fn matches_iqn(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len()).any(|start| {
        let Some(rest) = s.get(start..) else {
            return false;
        };
        let Some(r) = rest.strip_prefix("iqn.") else {
            return false;
        };
        let rb = r.as_bytes();
        if rb.len() < 8
            || !rb.iter().take(4).all(u8::is_ascii_digit)
            || rb.get(4) != Some(&b'-')
            || !rb.iter().skip(5).take(2).all(u8::is_ascii_digit)
            || rb.get(7) != Some(&b'.')
        {
            return false;
        }
        let Some(tail) = r.get(8..) else { return false };
        let Some((left, right)) = tail.split_once(':') else {
            return false;
        };
        !left.is_empty()
            && left
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
            && !right.is_empty()
            && right
                .chars()
                .all(|c| !",;*&$|".contains(c) && !c.is_whitespace())
    })
}

/// `net.SplitHostPort` succeeds (roughly: `host:port`, `[v6]:port`).
fn is_host_port(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        return rest
            .split_once("]:")
            .is_some_and(|(h, p)| !h.contains(']') && !p.contains(':'));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => !host.contains(':') && !port.contains(':'),
        None => false,
    }
}
