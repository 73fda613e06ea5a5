//! Server-side apply, the minimum of images-serve-facts §6.5: the applied configuration is
//! merged into the live object with the strategic-merge-patch keys (associative lists merge by
//! their merge key, lists of scalars with `merge` strategy union, other lists and scalars are
//! replaced) and the manager's `metadata.managedFields` entry (`operation: Apply`) is replaced
//! by one recording the applied field set in FieldsV1 notation (`f:<field>`, `k:{<key>}` for
//! an associative list item, `v:<value>` for a set item, `.` for the item itself).
//!
//! Known gap (no Rust port of sigs.k8s.io/structured-merge-diff exists): no conflict detection
//! between managers (`force` is treated as always true), and fields a manager applied before and
//! leaves out now are only removed when no other manager's entry names them.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::smp;
use super::PatchError;
use crate::openapi;

/// Depth bound of an applied configuration (hostile bodies).
const MAX_DEPTH: usize = 100;

/// See [`super::server_side_apply`].
pub(super) fn server_side_apply(
    kind: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    _force: bool,
) -> Result<Value, PatchError> {
    if manager.is_empty() {
        return Err(PatchError::BadRequest(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
        ));
    }
    let Value::Object(applied_map) = applied else {
        return Err(PatchError::BadRequest(
            "apply patch must be an object".into(),
        ));
    };
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    check_no_directives(applied, "", 0)?;
    let schema = openapi::schema_for_kind(kind);
    let fields = field_set(applied, schema, 0);

    let mut obj = match live {
        None => applied.clone(),
        Some(live) => {
            let mut base = live.clone();
            // Fields this manager applied before and no longer applies, that no other manager
            // names, go away (what apply means for a manager's own fields).
            if let Some(prev) = previous_fields(live, manager) {
                let others = other_managers_fields(live, manager);
                remove_dropped(&mut base, &prev, &fields, &others, 0);
            }
            let mut patch = Map::new();
            for (k, v) in applied_map {
                patch.insert(k.clone(), v.clone());
            }
            smp::strategic_merge(kind, &base, &Value::Object(patch))?
        }
    };

    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1")
        .to_string();
    let entry = json!({
        "apiVersion": api_version,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        "manager": manager,
        "operation": "Apply",
        "time": now_rfc3339(),
    });
    let managed = live
        .and_then(|l| l.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut managed: Vec<Value> = managed
        .into_iter()
        .filter(|e| !(e["manager"] == manager && e["operation"] == "Apply"))
        .collect();
    managed.push(entry);
    if let Some(Value::Object(meta)) = obj
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
    {
        meta.insert("managedFields".into(), Value::Array(managed));
    }
    Ok(obj)
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// An apply configuration has no patch directives: a `$`-key is a field no schema declares.
fn check_no_directives(v: &Value, path: &str, depth: usize) -> Result<(), PatchError> {
    if depth > MAX_DEPTH {
        return Err(PatchError::BadRequest(
            "apply patch nests too deeply".into(),
        ));
    }
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                if k.starts_with('$') {
                    return Err(PatchError::BadRequest(format!(
                        "failed to create typed patch object: {p}: field not declared in schema"
                    )));
                }
                check_no_directives(v, &p, depth + 1)?;
            }
        }
        Value::Array(a) => {
            for x in a {
                check_no_directives(x, path, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The property schema (with patch extensions) of `key` in an object of `schema`.
fn prop(schema: Option<&'static Value>, key: &str) -> Option<&'static Value> {
    let s = openapi::resolve(schema?);
    s.get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

/// The FieldsV1 set of an applied object: `{"f:spec": {"f:containers": {"k:{\"name\":\"c\"}":
/// {".": {}, "f:image": {}}}}}`.
pub(super) fn field_set(v: &Value, schema: Option<&'static Value>, depth: usize) -> Value {
    field_set_in(v, schema, depth, false)
}

/// The metadata fields kube-apiserver leaves out of managed field sets.
const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "selfLink",
    "managedFields",
];

fn field_set_in(
    v: &Value,
    schema: Option<&'static Value>,
    depth: usize,
    parent_is_metadata: bool,
) -> Value {
    let mut out = Map::new();
    let Value::Object(m) = v else {
        return Value::Object(out);
    };
    if depth > MAX_DEPTH {
        return Value::Object(out);
    }
    for (k, val) in m {
        // Identity and server-owned fields are not tracked (kube-apiserver strips them before
        // it computes a manager's set; status belongs to the status subresource).
        if depth == 0 && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
            continue;
        }
        if depth == 1 && parent_is_metadata && STRIPPED_META.contains(&k.as_str()) {
            continue;
        }
        let p = prop(schema, k);
        let child = match val {
            Value::Object(_) => field_set_in(val, p, depth + 1, depth == 0 && k == "metadata"),
            Value::Array(items) => list_set(items, p, depth + 1),
            _ => json!({}),
        };
        if depth == 0 && k == "metadata" && child.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        out.insert(format!("f:{k}"), child);
    }
    Value::Object(out)
}

fn list_set(items: &[Value], p: Option<&'static Value>, depth: usize) -> Value {
    let ext = |k: &str| p.and_then(|p| p.get(k));
    let strategy = ext("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .unwrap_or("");
    let merge = strategy.split(',').any(|s| s == "merge");
    let list_type = ext("x-kubernetes-list-type").and_then(Value::as_str);
    // kube-openapi's conversion: the list type and map keys when given, else the patch
    // metadata (merge with a key: a map keyed by it; merge without: a set), else atomic.
    let keys: Vec<String> = match (list_type, ext("x-kubernetes-list-map-keys")) {
        (Some("map"), Some(Value::Array(k))) => k
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        (Some("set" | "atomic"), _) => Vec::new(),
        _ => ext("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .map(|k| vec![k.to_string()])
            .unwrap_or_default(),
    };
    let is_set = list_type == Some("set") || (list_type.is_none() && merge && keys.is_empty());
    if keys.is_empty() && !is_set {
        return json!({}); // atomic: the list is one field
    }
    let item_schema = p.map(openapi::resolve).and_then(|p| p.get("items"));
    let item_props = item_schema
        .map(openapi::resolve)
        .and_then(|s| s.get("properties"));
    let mut out = Map::new();
    for it in items {
        match it {
            Value::Object(m) if !keys.is_empty() => {
                // `k:{"containerPort":80,"protocol":"TCP"}`: the key fields in name order, a
                // missing one from its schema default.
                let mut sorted: Vec<&String> = keys.iter().collect();
                sorted.sort();
                let mut parts = Vec::with_capacity(sorted.len());
                for k in sorted {
                    let v = m.get(k).or_else(|| {
                        item_props
                            .and_then(|ps| ps.get(k))
                            .and_then(|s| s.get("default"))
                    });
                    if let Some(v) = v {
                        parts.push(format!("{}:{v}", Value::String(k.clone())));
                    }
                }
                if parts.is_empty() {
                    continue;
                }
                let mut fs = match field_set(it, item_schema, depth + 1) {
                    Value::Object(f) => f,
                    _ => Map::new(),
                };
                fs.insert(".".into(), json!({}));
                out.insert(format!("k:{{{}}}", parts.join(",")), Value::Object(fs));
            }
            scalar if is_set && !scalar.is_object() && !scalar.is_array() => {
                out.insert(format!("v:{scalar}"), json!({}));
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// An associative list item's identity: its values of the key fields, as text.
fn item_id(keys: &[String], item: &Value) -> String {
    keys.iter()
        .map(|k| item.get(k.as_str()).unwrap_or(&Value::Null).to_string())
        .collect::<Vec<_>>()
        .join("\u{0}")
}

/// This manager's previous Apply field set.
fn previous_fields(live: &Value, manager: &str) -> Option<Value> {
    live.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
        .map(|e| e["fieldsV1"].clone())
}

/// The union of the other managers' field sets (as a list of sets).
fn other_managers_fields(live: &Value, manager: &str) -> Vec<Value> {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|e| !(e["manager"] == manager && e["operation"] == "Apply"))
                .map(|e| e["fieldsV1"].clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes from `obj` the fields in `prev` but not in `now` that no set in `others` names.
/// Walks objects by `f:` keys and associative lists by `k:` keys; `v:` set items are removed
/// from their list.
fn remove_dropped(obj: &mut Value, prev: &Value, now: &Value, others: &[Value], depth: usize) {
    let Some(prev) = prev.as_object() else { return };
    if depth > MAX_DEPTH {
        return;
    }
    if let Value::Array(list) = obj {
        remove_dropped_items(list, prev, now, others, depth);
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (pk, pchild) in prev {
        let Some(field) = pk.strip_prefix("f:") else {
            continue;
        };
        let other_children: Vec<Value> = others.iter().filter_map(|o| o.get(pk).cloned()).collect();
        match now.get(pk) {
            None if other_children.is_empty() => {
                map.remove(field);
            }
            None => {}
            Some(nc) => {
                if let Some(child) = map.get_mut(field) {
                    remove_dropped(child, pchild, nc, &other_children, depth + 1);
                }
            }
        }
    }
}

/// A kept associative list item to walk into: its key field names and id, this manager's
/// previous and current sets for it, the other managers' sets for it.
struct Walk<'a> {
    names: Vec<String>,
    id: String,
    prev: &'a Value,
    now: &'a Value,
    others: Vec<Value>,
}

/// [`remove_dropped`] for a list: `k:` items and `v:` values no longer applied go in one pass;
/// kept items are found through an index (linear in the list, whatever the number of keys).
fn remove_dropped_items(
    list: &mut Vec<Value>,
    prev: &Map<String, Value>,
    now: &Value,
    others: &[Value],
    depth: usize,
) {
    // (key field names, item id) of items to drop / to walk into
    let mut drop: HashSet<(Vec<String>, String)> = HashSet::new();
    let mut walk: Vec<Walk> = Vec::new();
    let mut drop_values: HashSet<String> = HashSet::new();
    for (pk, pchild) in prev {
        let other_children: Vec<Value> = others.iter().filter_map(|o| o.get(pk).cloned()).collect();
        if let Some(id) = pk.strip_prefix("k:") {
            let Ok(Value::Object(id)) = serde_json::from_str::<Value>(id) else {
                continue;
            };
            let names: Vec<String> = id.keys().cloned().collect();
            let want = item_id(&names, &Value::Object(id));
            match now.get(pk) {
                None if other_children.is_empty() => {
                    drop.insert((names, want));
                }
                None => {}
                Some(nc) => walk.push(Walk {
                    names,
                    id: want,
                    prev: pchild,
                    now: nc,
                    others: other_children,
                }),
            }
        } else if let Some(val) = pk.strip_prefix("v:") {
            if now.get(pk).is_none() && other_children.is_empty() {
                if let Ok(v) = serde_json::from_str::<Value>(val) {
                    drop_values.insert(v.to_string());
                }
            }
        }
    }
    let signatures: HashSet<Vec<String>> = drop
        .iter()
        .map(|(n, _)| n.clone())
        .chain(walk.iter().map(|w| w.names.clone()))
        .collect();
    if !drop.is_empty() || !drop_values.is_empty() {
        list.retain(|it| {
            if it.is_object() {
                !signatures
                    .iter()
                    .any(|names| drop.contains(&(names.clone(), item_id(names, it))))
            } else {
                !drop_values.contains(&it.to_string())
            }
        });
    }
    if walk.is_empty() {
        return;
    }
    let mut index: HashMap<(Vec<String>, String), usize> = HashMap::new();
    for (i, it) in list.iter().enumerate() {
        for names in &signatures {
            index
                .entry((names.clone(), item_id(names, it)))
                .or_insert(i);
        }
    }
    for w in walk {
        if let Some(&i) = index.get(&(w.names, w.id)) {
            if let Some(it) = list.get_mut(i) {
                remove_dropped(it, w.prev, w.now, &w.others, depth + 1);
            }
        }
    }
}
