//! Strategic merge patch: the semantics of k8s.io/apimachinery
//! `pkg/util/strategicpatch/patch.go` (`StrategicMergeMapPatch` with `MergeParallelList` and
//! `IgnoreUnmatchedNulls`, what kube-apiserver applies), written from its description and
//! behaviour, not translated. No crate implements it.
//!
//! The per-field metadata (`patchStrategy` `merge`/`replace`/`retainKeys`, `patchMergeKey`)
//! comes from the OpenAPI document's `x-kubernetes-patch-strategy` /
//! `x-kubernetes-patch-merge-key`, found by walking the schema of the object's kind through
//! `$ref`/`allOf`; never from a field's name. A field the schema does not know merges like a
//! JSON merge patch (maps merge, lists are replaced); kube-apiserver fails the patch there
//! instead, and the registry's strict decoding rejects the unknown field afterwards anyway.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::PatchError;
use crate::openapi;

/// `$patch`: `replace`, `delete` (and `merge`, which upstream refuses inside lists).
const DIRECTIVE: &str = "$patch";
/// `$retainKeys`: the keys of the map that survive (fields with `retainKeys` strategy).
const RETAIN_KEYS: &str = "$retainKeys";
/// `$deleteFromPrimitiveList/<field>`: values to remove from a merged list of scalars.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
/// `$setElementOrder/<field>`: the order of a merged list's items after the patch.
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Depth bound of patch and object nesting (hostile bodies; kube objects nest ~12 deep).
const MAX_DEPTH: usize = 100;

/// Where in the schema a value is: the schema node describing it (None: unknown, so no patch
/// metadata).
type Schema = Option<&'static Value>;

/// A list field's or map field's patch metadata.
#[derive(Default, Debug)]
struct PatchMeta {
    /// `merge`, `replace` or empty (the other strategy than `retainKeys`).
    strategy: String,
    merge_key: Option<String>,
}

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError::BadRequest(msg.into())
}
fn invalid(msg: impl Into<String>) -> PatchError {
    PatchError::Invalid(msg.into())
}

/// Applies `patch` to `original`, an object of core/v1 `kind`.
pub fn strategic_merge(kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(bad("invalid JSON document"));
    };
    let original = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let schema = openapi::schema_for_kind(kind);
    merge_map(original, patch.clone(), schema, 0).map(Value::Object)
}

/// The properties node of a schema (after `$ref`/`allOf`).
fn resolved(schema: Schema) -> Schema {
    schema.map(openapi::resolve)
}

/// The schema of the value at `key` of an object described by `schema` and the field's patch
/// metadata: a property, or the value schema of a map (`additionalProperties`).
fn field(schema: Schema, key: &str) -> Result<(Schema, PatchMeta), PatchError> {
    let Some(s) = resolved(schema) else {
        return Ok((None, PatchMeta::default()));
    };
    let prop = s
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
    let Some(prop) = prop else {
        return Ok((None, PatchMeta::default()));
    };
    let strategies: Vec<&str> = prop
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .map(|s| s.split(',').collect())
        .unwrap_or_default();
    // Like upstream's extractRetainKeysPatchStrategy: at most `retainKeys` plus one other.
    let strategy = match strategies.as_slice() {
        [] | ["retainKeys"] => "",
        [one] => one,
        ["retainKeys", other] | [other, "retainKeys"] => other,
        _ => {
            return Err(invalid(format!(
                "unexpected patch strategy: {strategies:?}"
            )))
        }
    };
    let meta = PatchMeta {
        strategy: strategy.to_string(),
        merge_key: prop
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    Ok((Some(prop), meta))
}

/// The item schema of a list whose property schema is `prop`.
fn items(prop: Schema) -> Schema {
    resolved(prop).and_then(|p| p.get("items"))
}

/// Go's reflect type of a decoded JSON value, for "same type" checks (all numbers are one
/// type here: kube decodes both sides with the same number handling).
fn type_of(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema,
    depth: usize,
) -> Result<Map<String, Value>, PatchError> {
    if depth > MAX_DEPTH {
        return Err(bad("patch nests too deeply"));
    }
    if let Some(d) = patch.get(DIRECTIVE) {
        return match d.as_str() {
            // The map becomes the patch's content.
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(invalid(format!(
                "unknown patch type: {} in map: {}",
                show(d),
                brief(&Value::Object(patch.clone()))
            ))),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema, depth)?;

    for (k, patch_v) in patch {
        let (key, is_delete_list) = match k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(field) => (field.to_string(), true),
                None => return Err(bad("invalid patch format of primitive list")),
            },
            None => (k, false),
        };
        if patch_v.is_null() {
            // null deletes the key (unmatched nulls are dropped).
            original.remove(&key);
            continue;
        }
        let Some(orig_v) = original.remove(&key) else {
            if !is_delete_list {
                put_patch_value(&mut original, key, patch_v);
            }
            continue;
        };
        if type_of(&orig_v) != type_of(&patch_v) {
            if is_delete_list {
                original.insert(key, orig_v);
            } else {
                put_patch_value(&mut original, key, patch_v);
            }
            continue;
        }
        let merged = match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let (sub, meta) = field(schema, &key)?;
                if meta.strategy == "replace" {
                    Value::Object(p)
                } else {
                    Value::Object(merge_map(o, p, sub, depth + 1)?)
                }
            }
            (Value::Array(o), Value::Array(p)) => {
                let (sub, meta) = field(schema, &key)?;
                if meta.strategy == "merge" || is_delete_list {
                    Value::Array(merge_list(
                        o,
                        p,
                        items(sub),
                        meta.merge_key.as_deref(),
                        is_delete_list,
                        &key,
                        depth + 1,
                    )?)
                } else {
                    Value::Array(p)
                }
            }
            (_, p) => match remove_directives(p) {
                Some(v) => v,
                None => continue,
            },
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A patch value for a key the original lacks (or has with another type): taken as is, less
/// its nulls and directives.
fn put_patch_value(original: &mut Map<String, Value>, key: String, mut v: Value) {
    discard_nulls(&mut v);
    if let Some(v) = remove_directives(v) {
        original.insert(key, v);
    }
}

/// A value for an error message, cut at 512 bytes (a hostile patch must not come back as a
/// multi-megabyte Status).
fn brief(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 512 {
        let mut end = 512;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `$retainKeys`: drop the original's keys not listed; every key the patch sets must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(bad("invalid patch format of retainKeys"));
    };
    let retained: HashSet<&str> = retain.iter().filter_map(Value::as_str).collect();
    let listed = |k: &str| retained.contains(k);
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(bad("invalid patch format of retainKeys"));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's list (if the patch has it) and orders the
/// result: the listed items in the directive's order, the server-only items where they were.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema,
    depth: usize,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for k in keys {
        let Some(order) = patch.remove(&k) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad("invalid patch format of setElementOrder list"));
        };
        let Some(field_name) = k
            .strip_prefix(SET_ELEMENT_ORDER)
            .and_then(|r| r.strip_prefix('/'))
            .map(str::to_string)
        else {
            return Err(bad("invalid patch format of setElementOrder list"));
        };
        let orig_list = match original.get(&field_name) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(bad("invalid patch format of setElementOrder list")),
        };
        let patch_list = match patch.get(&field_name) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(bad("invalid patch format of setElementOrder list")),
        };
        let (sub, meta) = field(schema, &field_name)?;
        let key = meta.merge_key.as_deref();
        validate_order(patch_list.as_deref().unwrap_or_default(), &order, key)?;
        let merged = match (&orig_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                Some(Value::Array(a)) => a,
                _ => continue,
            },
            (Some(o), Some(p)) => {
                if meta.strategy == "merge" {
                    merge_list(
                        o.clone(),
                        p.clone(),
                        items(sub),
                        key,
                        false,
                        &field_name,
                        depth + 1,
                    )?
                } else {
                    p.clone()
                }
            }
            (None, None) => continue,
        };
        let orig_list = orig_list.unwrap_or_default();
        let is_map = element_kind(&[&orig_list, patch_list.as_deref().unwrap_or_default()])? == 5;
        let (listed, server_only) = partition(merged, &order, key, is_map)?;
        let ordered = normalize_order(listed, server_only, &order, &orig_list, key, is_map)?;
        original.insert(field_name.clone(), Value::Array(ordered));
        patch.remove(&field_name);
    }
    Ok(())
}

/// The items of the patch list (less deletions and directives) must appear in the
/// `$setElementOrder` list, in its relative order.
fn validate_order(
    patch_list: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), PatchError> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = patch_list
        .iter()
        .filter(|v| key.is_none() || !is_directive(v, "delete"))
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if key_equal(items[pi], &order[oi], key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(bad(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            brief(&Value::Array(patch_list.to_vec())),
            brief(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn is_directive(v: &Value, d: &str) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some(d)
}

/// Two items are the same item: equal scalars, or maps with equal merge-key values.
fn key_equal(a: &Value, b: &Value, key: Option<&str>) -> Result<bool, PatchError> {
    let Some(key) = key else {
        return Ok(a == b);
    };
    Ok(merge_key_value(a, key)? == merge_key_value(b, key)?)
}

fn merge_key_value<'a>(v: &'a Value, key: &str) -> Result<&'a Value, PatchError> {
    match v {
        Value::Object(m) => m.get(key).ok_or_else(|| no_merge_key(v, key)),
        other => Err(invalid(format!(
            "expected a map, but received a {}",
            kind_name(other)
        ))),
    }
}

fn no_merge_key(v: &Value, key: &str) -> PatchError {
    invalid(format!(
        "map: {} does not contain declared merge key: {key}",
        brief(v)
    ))
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// The common element type of the lists (a `type_of` code); lists of lists are refused.
fn element_kind(lists: &[&[Value]]) -> Result<u8, PatchError> {
    let mut kind = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let t = type_of(v);
        if t == 4 {
            return Err(invalid("lists of lists are not supported"));
        }
        match kind {
            None => kind = Some(t),
            Some(k) if k != t => return Err(invalid("list element types are not identical")),
            _ => {}
        }
    }
    kind.ok_or_else(|| invalid("no elements in any of the given slices"))
}

/// An item's identity as text, for hashing (JSON values are not `Hash`): the merge key's value
/// for maps (a missing key is `null`, as Go's lookup yields nil), the value itself for scalars.
/// Text equality is Go's interface equality here: `"1"`, `1` and `1.0` all differ.
fn ident(v: &Value, key: Option<&str>, is_map: bool) -> String {
    if is_map {
        v.get(key.unwrap_or_default())
            .unwrap_or(&Value::Null)
            .to_string()
    } else {
        v.to_string()
    }
}

/// First position of each identity in `order` (hash lookups keep hostile lists of 10⁵ items
/// linear, not quadratic).
fn positions(order: &[Value], key: Option<&str>, is_map: bool) -> HashMap<String, usize> {
    let mut m = HashMap::with_capacity(order.len());
    for (i, v) in order.iter().enumerate() {
        m.entry(ident(v, key, is_map)).or_insert(i);
    }
    m
}

/// Merges a list field with `merge` strategy (or a `$deleteFromPrimitiveList` list).
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    item_schema: Schema,
    merge_key: Option<&str>,
    is_delete_list: bool,
    field_name: &str,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    if depth > MAX_DEPTH {
        return Err(bad("patch nests too deeply"));
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let is_map = element_kind(&[&original, &patch])? == 5;
    if !is_map {
        let in_patch: HashSet<String> = patch.iter().map(|v| ident(v, None, false)).collect();
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !in_patch.contains(&ident(v, None, false)))
                .collect());
        }
        // A set of scalars: the union, each value once.
        let mut seen = HashSet::with_capacity(original.len() + patch.len());
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if seen.insert(ident(v, None, false)) {
                merged.push(v.clone());
            }
        }
        let (listed, server_only) = partition(merged, &patch, None, false)?;
        return normalize_order(listed, server_only, &patch, &original, None, false);
    }
    let Some(key) = merge_key else {
        return Err(invalid(format!(
            "cannot merge lists without merge key for {field_name}"
        )));
    };
    let (original, patch) = special_elements(original, patch, key)?;
    let mut merged = original.clone();
    let mut at: HashMap<String, usize> = HashMap::with_capacity(merged.len());
    for (i, o) in merged.iter().enumerate() {
        if !o.is_object() {
            return Err(invalid(format!("value for key {i} is not a map")));
        }
        at.entry(ident(o, Some(key), true)).or_insert(i);
    }
    for p in &patch {
        merge_key_value(p, key)?;
        let id = ident(p, Some(key), true);
        match (at.get(&id), p) {
            (Some(&i), Value::Object(pm)) => {
                let o = match std::mem::take(&mut merged[i]) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                merged[i] = Value::Object(merge_map(o, pm.clone(), item_schema, depth + 1)?);
            }
            _ => {
                at.insert(id, merged.len());
                merged.push(p.clone());
            }
        }
    }
    let (listed, server_only) = partition(merged, &patch, Some(key), true)?;
    normalize_order(listed, server_only, &patch, &original, Some(key), true)
}

/// List items with `$patch`: `delete` removes the original items with that merge key value,
/// `replace` makes the list the patch's other items, `merge` is refused (as upstream).
/// Returns the original after deletions and the patch without directive items.
fn special_elements(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut deleted = HashSet::new();
    let mut replace = false;
    for p in patch {
        match p.get(DIRECTIVE) {
            None => plain.push(p),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let kv = p.get(key).ok_or_else(|| no_merge_key(&p, key))?;
                    deleted.insert(kv.to_string());
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(invalid(
                        "merging lists cannot yet be specified in the patch",
                    ))
                }
                _ => {
                    let shown = show(d);
                    return Err(invalid(format!(
                        "unknown patch type: {shown} in map: {}",
                        brief(&p)
                    )));
                }
            },
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    let original = if deleted.is_empty() {
        original
    } else {
        original
            .into_iter()
            .filter(|o| !o.get(key).is_some_and(|v| deleted.contains(&v.to_string())))
            .collect()
    };
    Ok((original, plain))
}

/// Splits `merged` into the items present in `by` (by merge key for maps) and the others.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
    is_map: bool,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let present: HashSet<String> = by.iter().map(|b| ident(b, key, is_map)).collect();
    let mut listed = Vec::new();
    let mut others = Vec::new();
    for v in merged {
        if is_map {
            merge_key_value(&v, key.unwrap_or_default())?;
        }
        if present.contains(&ident(&v, key, is_map)) {
            listed.push(v);
        } else {
            others.push(v);
        }
    }
    Ok((listed, others))
}

/// Sorts the patch's items by `patch_order` and the server-only items by `server_order`, then
/// interleaves them: a server-only item goes before the first patch item that comes after it
/// in the server's order (a patch item the server's order lacks goes first).
fn normalize_order(
    listed: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let listed = sort_by_order(listed, patch_order, key, is_map)?;
    let server_only = sort_by_order(server_only, server_order, key, is_map)?;
    let pos = positions(server_order, key, is_map);
    let at = |v: &Value| pos.get(&ident(v, key, is_map)).copied();
    let mut out = Vec::with_capacity(listed.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = listed.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!((at(l), at(r)), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Stable sort by position in `order` (items not in it keep their place at the end); for maps
/// every item must carry the merge key and `$patch: delete` items go last.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let mut items = items;
    let mut deletes = Vec::new();
    if is_map {
        let k = key.unwrap_or_default();
        for v in items.iter().chain(order.iter()) {
            merge_key_value(v, k)?;
        }
        let (keep, del): (Vec<Value>, Vec<Value>) =
            items.into_iter().partition(|v| !is_directive(v, "delete"));
        items = keep;
        deletes = del;
    }
    let pos = positions(order, key, is_map);
    items.sort_by_cached_key(|v| {
        pos.get(&ident(v, key, is_map))
            .copied()
            .unwrap_or(usize::MAX)
    });
    items.extend(deletes);
    Ok(items)
}

/// Drops every map carrying `$patch` (and the keys holding one); None when `v` itself is one.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Removes null map values at every depth (a null for a key the original lacks is dropped).
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}
